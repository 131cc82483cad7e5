// ETN behind the Potential interface of potential.h, evaluated by the shared
// configuration loops of config_loop.h.
#include "config_loop.h"
#include "errors.h"
#include "etn_kernel.h"
#include "etn_model.h"
#include "potential.h"

namespace mlipc {

namespace {

// ETN's site kernels in the form config_loop.h takes; neighbours grouped by species.
struct EtnKernel {
    using Workspace = EtnWorkspace;
    const EtnModel& m;
    double cutoff;
    int species_count;
    size_t n_params;
    bool by_species = true;
    explicit EtnKernel(const EtnModel& model)
        : m(model), cutoff(model.radial.max_dist), species_count(model.species_count), n_params(model.n_params()) {}
    void reserve(Workspace& ws, int stride) const { ws.reserve(*m.plan, stride); }
    double site_energy(Workspace& ws, int ti, const Neighbours& nb, double* dVdv) const {
        return etn_site_energy(m, ws, ti, nb, dVdv);
    }
    void prepare_grad(Workspace& ws, int ti, const Neighbours& nb) const { etn_prepare_grad(m, ws, ti, nb); }
    void site_grad(Workspace& ws, int ti, const Neighbours& nb, const double* delta, double a, double* grad) const {
        etn_site_grad(m, ws, ti, nb, delta, a, grad);
    }
};

class EtnPotential final : public ModelPotential<EtnModel> {
public:
    using ModelPotential::ModelPotential;
    std::string kind() const override { return "etn"; }
    std::string info_json() const override { return etn_info_json(m_); }
    void save(const std::string& path) const override {
        if (!has_extension(path, ".json"))
            throw argument_error("cannot tell the format of '" + path +
                                 "' from its extension: an ETN is saved as JSON (.json)");
        write_etn(m_, path);
    }
    void predict(const Dataset& ds, const int64_t* idx, int64_t n_idx, double* E, double* F,
                 double* S) const override {
        predict_configs(EtnKernel(m_), ds, idx, n_idx, E, F, S);
    }
    double loss_grad(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* w,
                     double* grad) const override {
        return loss_grad_configs(EtnKernel(m_), ds, idx, n_idx, w, grad);
    }
    void jt_product(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* uE, const double* uF,
                    const double* uS, double* grad) const override {
        jt_product_configs(EtnKernel(m_), ds, idx, n_idx, uE, uF, uS, grad);
    }
    // The species coefficients and the last core: V_i = s[t_i] + h_K with h_K linear in
    // core K, so the predictions are linear and homogeneous in them (the trailing block).
    int64_t n_linear() const override {
        const auto g = m_.groups();
        return int64_t(g[g.size() - 2].size + g.back().size);
    }
    void linear_system(const Dataset&, const int64_t*, int64_t, const double*, double*, double*,
                       double*) const override {
        throw unsupported_error(kNoLinearKernel);
    }
    void linear_design(const Dataset&, const int64_t*, int64_t, double*, double*, double*) const override {
        throw unsupported_error(kNoLinearKernel);
    }

private:
    static constexpr const char* kNoLinearKernel =
        "the engine assembles the linear system and design of MTP only; an ETN's predictions are linear in its "
        "species coefficients and last core (n_linear, info's linear_groups), so a caller builds the design "
        "from predictions, one per linear parameter (optbench does)";
};

}  // namespace

std::unique_ptr<Potential> make_potential(EtnModel m) { return std::make_unique<EtnPotential>(std::move(m)); }

}  // namespace mlipc
