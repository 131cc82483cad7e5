// Configuration-level evaluation shared by every model kind: energies, forces and
// virials from per-site kernels, and the loss with its adjoint gradient, parallel over
// configurations.
//
// A Kernel supplies, for one model:
//   using Workspace;                       per-thread scratch
//   double cutoff; int species_count; size_t n_params; bool by_species;
//   void reserve(Workspace&, int stride) const;
//   double site_energy(Workspace&, int ti, const Neighbours&, double* dVdv) const;
//   void prepare_grad(Workspace&, int ti, const Neighbours&) const;
//   void site_grad(Workspace&, int ti, const Neighbours&, const double* delta, double a, double* grad) const;
// (the contract of mtp_kernel.h: site_grad adds a dV/dtheta - D_delta dV/dtheta for the
// site last given to prepare_grad).
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dataset.h"
#include "neighbours.h"

namespace mlipc {

// Threads of the configuration loops (n >= 1; ArgumentError otherwise), and the number
// in use (OpenMP's default until set).
void set_threads(int n);
int get_threads();

// Throws EngineError when the data set does not fit a potential of this cutoff (A) and
// species count, or the indices / weights are out of range (messages name the culprit).
void check_compatible(double cutoff, int species_count, const Dataset& ds);
void check_indices(const Dataset& ds, const int64_t* idx, int64_t n_idx);
void check_weights(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* weights);

// Where each listed configuration's forces start in outputs packed like predict's (3 per
// atom, idx order): n_idx + 1 offsets, the last the total.
std::vector<int64_t> force_offsets(const Dataset& ds, const int64_t* idx, int64_t n_idx);

// MLIP's 6-component order xx yy zz yz xz xy -> (row, column).
extern const int kVoigt[6][2];

// The loss terms of configuration k (weights w = wE, wF, wS) at its predicted E (eV),
// F (eV/A, 3 per atom) and virial S (3x3, eV).  Returns the loss and sets the adjoint
// seeds: a = 2 wE dE, D = 2 wF dF (3 per atom), Ms = 2 wS dS (3x3, symmetric).
double config_residuals(const Dataset& ds, int64_t k, const double* w, double E, const double* F, const double* S,
                        double& a, double* D, double* Ms);

// delta_ij = D_j - D_i + Ms v_ij for the neighbours of atom i: the displacement of each
// pair vector along which the adjoint gradient differentiates (A).
void adjoint_directions(const Neighbours& nb, int i, const double* D, const double* Ms, double* delta);

// Runs body(position, configuration, thread) for every listed configuration, dealt to
// threads in a fixed pattern; rethrows the first error.
template <class Body>
void for_configs(const int64_t* idx, int64_t n_idx, Body body) {
    std::exception_ptr err = nullptr;
    const int nth = get_threads();
    (void)nth;  // unused without OpenMP
#pragma omp parallel num_threads(nth)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
#pragma omp for schedule(static, 1)
        for (int64_t q = 0; q < n_idx; ++q) {
            if (err) continue;
            try {
                body(q, idx ? idx[q] : q, tid);
            } catch (...) {
#pragma omp critical(mlipc_error)
                if (!err) err = std::current_exception();
            }
        }
    }
    if (err) std::rethrow_exception(err);
}

// Per-thread scratch of the configuration loops.
template <class Kernel>
struct ThreadScratch {
    typename Kernel::Workspace ws;
    Neighbours nb;
    std::vector<double> F, D, g;
    ThreadScratch(const Kernel& kern, const Dataset& ds, bool with_grad) {
        nb.reserve(ds.max_neighbours, kern.species_count);
        kern.reserve(ws, nb.stride);
        F.assign(3 * size_t(ds.max_atoms), 0.0);
        D.assign(3 * size_t(ds.max_atoms), 0.0);
        if (with_grad) g.assign(kern.n_params, 0.0);
    }
};

// Energy (eV) of configuration k; forces F (3 per atom, eV/A) and the virial S (3x3, eV,
// MLIP's sign) when not null.
template <class Kernel>
double config_efs(const Kernel& kern, const Dataset& ds, int64_t k, typename Kernel::Workspace& ws, Neighbours& nb,
                  double* F, double* S) {
    const int64_t a0 = ds.atom_offset[k];
    const int na = ds.atoms_in(k);
    const bool want = F || S;
    if (F) std::fill(F, F + 3 * na, 0.0);
    if (S) std::fill(S, S + 9, 0.0);
    double E = 0;
    for (int i = 0; i < na; ++i) {
        gather_neighbours(ds, kern.cutoff, a0, a0 + i, kern.by_species, nb);
        E += kern.site_energy(ws, ds.types[a0 + i], nb, want ? nb.dv.data() : nullptr);
        if (want) scatter_site_gradient(nb, i, F, S);
    }
    return E;
}

// Outputs packed in idx order (forces 3 per atom, virials 6 per configuration); any
// pointer may be null.
template <class Kernel>
void predict_configs(const Kernel& kern, const Dataset& ds, const int64_t* idx, int64_t n_idx, double* energies,
                     double* forces, double* stresses) {
    check_indices(ds, idx, n_idx);
    check_compatible(kern.cutoff, kern.species_count, ds);
    const std::vector<int64_t> force_off = force_offsets(ds, idx, n_idx);
    std::vector<ThreadScratch<Kernel>> t;
    for (int i = 0; i < get_threads(); ++i) t.emplace_back(kern, ds, false);
    for_configs(idx, n_idx, [&](int64_t q, int64_t k, int tid) {
        double S[9];
        const double E = config_efs(kern, ds, k, t[tid].ws, t[tid].nb, forces ? forces + force_off[q] : nullptr,
                                    stresses ? S : nullptr);
        if (energies) energies[q] = E;
        if (stresses)
            for (int c = 0; c < 6; ++c) stresses[6 * q + c] = S[3 * kVoigt[c][0] + kVoigt[c][1]];
    });
}

// The loss of mlipc.h and its gradient (grad may be null) by the adjoint method: a
// forward pass for E, F, S, then per site one directional derivative of dV/dtheta along
// the residual displacements.  Deterministic for a given number of threads: the
// per-thread sums are added in thread order.
template <class Kernel>
double loss_grad_configs(const Kernel& kern, const Dataset& ds, const int64_t* idx, int64_t n_idx,
                         const double* weights, double* grad) {
    check_indices(ds, idx, n_idx);
    check_compatible(kern.cutoff, kern.species_count, ds);
    check_weights(ds, idx, n_idx, weights);
    const int nth = get_threads();
    std::vector<ThreadScratch<Kernel>> t;
    for (int i = 0; i < nth; ++i) t.emplace_back(kern, ds, grad != nullptr);
    std::vector<double> L(nth, 0.0);
    for_configs(idx, n_idx, [&](int64_t, int64_t k, int tid) {
        ThreadScratch<Kernel>& T = t[tid];
        const double* w = weights + 3 * k;
        const bool needF = w[1] > 0 || w[2] > 0;
        double S[9], Ms[9], a = 0;
        const double E = config_efs(kern, ds, k, T.ws, T.nb, needF ? T.F.data() : nullptr, needF ? S : nullptr);
        L[tid] += config_residuals(ds, k, w, E, T.F.data(), S, a, T.D.data(), Ms);
        if (!grad) return;
        const int64_t a0 = ds.atom_offset[k];
        for (int i = 0; i < ds.atoms_in(k); ++i) {
            gather_neighbours(ds, kern.cutoff, a0, a0 + i, kern.by_species, T.nb);
            const int ti = ds.types[a0 + i];
            kern.prepare_grad(T.ws, ti, T.nb);
            adjoint_directions(T.nb, i, T.D.data(), Ms, T.nb.delta.data());
            kern.site_grad(T.ws, ti, T.nb, T.nb.delta.data(), a, T.g.data());
        }
    });
    double loss = 0;
    for (int i = 0; i < nth; ++i) loss += L[i];
    if (grad) {
        std::fill(grad, grad + kern.n_params, 0.0);
        for (int i = 0; i < nth; ++i)
            for (size_t q = 0; q < kern.n_params; ++q) grad[q] += t[i].g[q];
    }
    return loss;
}

// J^T u for the Jacobian J of the predictions (energy, forces, PlusStress in Voigt order)
// of the listed configurations with respect to the parameters: grad = sum over q of
// uE[q] dE/dtheta + uF[q] . dF/dtheta + uS[q] . dS/dtheta, with uF packed like predict's
// forces (3 per atom, idx order) and uS 6 per configuration (xx yy zz yz xz xy).  The
// same adjoint pass as loss_grad, seeded with u instead of weighted residuals, so it costs
// one energy+force pass and one directional derivative per site.  uE, uF, uS may be null
// (zero).  Deterministic like loss_grad.
template <class Kernel>
void jt_product_configs(const Kernel& kern, const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* uE,
                        const double* uF, const double* uS, double* grad) {
    check_indices(ds, idx, n_idx);
    check_compatible(kern.cutoff, kern.species_count, ds);
    const std::vector<int64_t> force_off = force_offsets(ds, idx, n_idx);
    const int nth = get_threads();
    std::vector<ThreadScratch<Kernel>> t;
    for (int i = 0; i < nth; ++i) t.emplace_back(kern, ds, true);
    for_configs(idx, n_idx, [&](int64_t q, int64_t k, int tid) {
        ThreadScratch<Kernel>& T = t[tid];
        const int na = ds.atoms_in(k);
        const double a = uE ? uE[q] : 0.0;
        if (uF)
            std::copy(uF + force_off[q], uF + force_off[q + 1], T.D.begin());
        else
            std::fill(T.D.begin(), T.D.begin() + 3 * na, 0.0);
        // u . S over the 6 Voigt components equals Ms : S over the 3x3 (symmetric S):
        // diagonal entries u_c, off-diagonal pairs u_c / 2 each.
        double Ms[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
        if (uS)
            for (int c = 0; c < 6; ++c) {
                const int r = kVoigt[c][0], s = kVoigt[c][1];
                const double v = r == s ? uS[6 * q + c] : 0.5 * uS[6 * q + c];
                Ms[3 * r + s] += v;
                if (r != s) Ms[3 * s + r] += v;
            }
        const int64_t a0 = ds.atom_offset[k];
        for (int i = 0; i < na; ++i) {
            gather_neighbours(ds, kern.cutoff, a0, a0 + i, kern.by_species, T.nb);
            const int ti = ds.types[a0 + i];
            kern.prepare_grad(T.ws, ti, T.nb);
            adjoint_directions(T.nb, i, T.D.data(), Ms, T.nb.delta.data());
            kern.site_grad(T.ws, ti, T.nb, T.nb.delta.data(), a, T.g.data());
        }
    });
    std::fill(grad, grad + kern.n_params, 0.0);
    for (int i = 0; i < nth; ++i)
        for (size_t p = 0; p < kern.n_params; ++p) grad[p] += t[i].g[p];
}

}  // namespace mlipc
