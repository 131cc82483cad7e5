// A potential of any kind (MTP, ETN) behind the C ABI: what mlipc_api.cpp calls, so the
// ABI layer never branches on the kind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "dataset.h"
#include "errors.h"
#include "radial_basis.h"

namespace mlipc {

struct MtpModel;
struct EtnModel;

class Potential {
public:
    virtual ~Potential() = default;
    virtual std::string kind() const = 0;  // "mtp" or "etn"
    virtual size_t n_params() const = 0;
    virtual void get_params(double* x) const = 0;
    virtual void set_params(const double* x) = 0;
    virtual void default_params(double* x) const = 0;
    virtual std::string info_json() const = 0;
    // Writes the potential's file; the extension must be one of the kind's formats.
    virtual void save(const std::string& path) const = 0;
    // The radial basis settings outside the parameter vector (scaling, min_dist, max_dist).
    virtual RadialBasis radial() const = 0;
    // Replaces them; throws ArgumentError (naming the setting) when inconsistent.
    virtual void set_radial(const RadialBasis& rb) = 0;
    // See evaluate.h / config_loop.h: energies (eV), forces (eV/A), PlusStress (eV).
    virtual void predict(const Dataset& ds, const int64_t* idx, int64_t n_idx, double* energies, double* forces,
                         double* stresses) const = 0;
    virtual double loss_grad(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* weights,
                             double* grad) const = 0;
    // J^T u of the Jacobian of the predictions (mlipc_jt_product).
    virtual void jt_product(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* uE,
                            const double* uF, const double* uS, double* grad) const = 0;
    // The trailing block of parameters the predictions are linear and homogeneous in
    // (info's linear_groups); the linear least-squares system of mlipc_linear_system and
    // the design of mlipc_linear_design, or MLIPC_ERR_UNSUPPORTED where the kind has no
    // kernel for them.
    virtual int64_t n_linear() const = 0;
    virtual void linear_system(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* weights,
                               double* A, double* b, double* r0) const = 0;
    virtual void linear_design(const Dataset& ds, const int64_t* idx, int64_t n_idx, double* dE, double* dF,
                               double* dS) const = 0;
};

// The parts every model forwards alike: its parameter vector and radial settings.  A
// Model has n_params, get/set/default_params, a RadialBasis `radial` and check(),
// which throws EngineError on inconsistent settings.
template <class Model>
class ModelPotential : public Potential {
public:
    explicit ModelPotential(Model m) : m_(std::move(m)) {}
    size_t n_params() const override { return m_.n_params(); }
    void get_params(double* x) const override { m_.get_params(x); }
    void set_params(const double* x) override { m_.set_params(x); }
    void default_params(double* x) const override { m_.default_params(x); }
    RadialBasis radial() const override { return m_.radial; }
    void set_radial(const RadialBasis& rb) override {
        Model m = m_;
        m.radial = rb;
        try {
            m.check();
        } catch (const EngineError& e) {
            throw argument_error(std::string("radial basis setting: ") + e.what());
        }
        m_ = std::move(m);
    }

protected:
    Model m_;
};

// Whether path ends with ext (e.g. ".json").
bool has_extension(const std::string& path, const std::string& ext);

std::unique_ptr<Potential> make_potential(MtpModel m);
std::unique_ptr<Potential> make_potential(EtnModel m);

// A potential file: ETN JSON when the file starts with '{', else MLIP's .mtp / .almtp.
std::unique_ptr<Potential> load_potential(const std::string& path);
// A spec string "mtp ..." or "etn ..." (mtp_model.h, etn_model.h).
std::unique_ptr<Potential> potential_from_spec(const std::string& spec);

// The value of "scaling", "min_dist" or "max_dist" in b; ArgumentError for other names.
double& radial_setting(RadialBasis& b, const std::string& name);

}  // namespace mlipc
