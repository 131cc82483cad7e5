// MTP behind the Potential interface of potential.h.
#include "evaluate.h"
#include "mtp_model.h"
#include "potential.h"

namespace mlipc {

namespace {

class MtpPotential final : public ModelPotential<MtpModel> {
public:
    using ModelPotential::ModelPotential;
    std::string kind() const override { return "mtp"; }
    std::string info_json() const override { return mtp_info_json(m_); }
    void save(const std::string& path) const override {
        if (!has_extension(path, ".mtp") && !has_extension(path, ".almtp"))
            throw argument_error("cannot tell the format of '" + path +
                                 "' from its extension: an MTP is saved as .mtp (MLIP-2) or .almtp (MLIP-3)");
        write_mtp(m_, path);
    }
    void predict(const Dataset& ds, const int64_t* idx, int64_t n_idx, double* E, double* F,
                 double* S) const override {
        mlipc::predict(m_, ds, idx, n_idx, E, F, S);
    }
    double loss_grad(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* w,
                     double* grad) const override {
        return mlipc::loss_grad(m_, ds, idx, n_idx, w, grad);
    }
    void jt_product(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* uE, const double* uF,
                    const double* uS, double* grad) const override {
        mlipc::jt_product(m_, ds, idx, n_idx, uE, uF, uS, grad);
    }
    int64_t n_linear() const override { return mlipc::n_linear(m_); }
    void linear_system(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* w, double* A, double* b,
                       double* r0) const override {
        mlipc::linear_system(m_, ds, idx, n_idx, w, A, b, r0);
    }
    void linear_design(const Dataset& ds, const int64_t* idx, int64_t n_idx, double* dE, double* dF,
                       double* dS) const override {
        mlipc::linear_design(m_, ds, idx, n_idx, dE, dF, dS);
    }
};

}  // namespace

std::unique_ptr<Potential> make_potential(MtpModel m) { return std::make_unique<MtpPotential>(std::move(m)); }

}  // namespace mlipc
