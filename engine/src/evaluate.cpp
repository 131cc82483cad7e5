#include "evaluate.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "errors.h"
#include "mtp_kernel.h"

namespace mlipc {

namespace {

int g_threads = 0;  // 0: not set, use the OpenMP default

int n_threads() {
#ifdef _OPENMP
    return g_threads > 0 ? g_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

// Neighbours of atom a within the potential's cutoff, copied into the workspace.
int gather(const MtpModel& m, const Dataset& ds, int64_t a0, int64_t a, Workspace& ws,
           std::vector<double>& vec) {
    const double rc2 = m.max_dist * m.max_dist;
    int n = 0;
    for (int64_t q = ds.pair_offset[a]; q < ds.pair_offset[a + 1]; ++q) {
        const double* v = &ds.vec[3 * q];
        if (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] >= rc2) continue;
        ws.tj[n] = ds.types[a0 + ds.nbr[q]];
        ws.pair[n] = q;
        vec[3 * n] = v[0];
        vec[3 * n + 1] = v[1];
        vec[3 * n + 2] = v[2];
        ++n;
    }
    return n;
}

// Energy, forces (3 per atom of the configuration) and the virial S (3x3, MLIP's sign:
// S_ab = -sum_pairs dE/dv_a v_b) of configuration k.
double config_efs(const MtpModel& m, const MtpPlan& p, const Dataset& ds, int64_t k,
                  Workspace& ws, std::vector<double>& vec, std::vector<double>& dv,
                  double* F, double* S) {
    const int64_t a0 = ds.atom_offset[k];
    const int na = ds.atoms_in(k);
    const bool want = F || S;
    if (F) std::fill(F, F + 3 * na, 0.0);
    if (S) std::fill(S, S + 9, 0.0);
    double E = 0;
    for (int i = 0; i < na; ++i) {
        const int n = gather(m, ds, a0, a0 + i, ws, vec);
        E += site_energy(m, p, ws, ds.types[a0 + i], n, ws.tj.data(), vec.data(), want ? dv.data() : nullptr);
        if (!want) continue;
        for (int j = 0; j < n; ++j) {
            const double* g = &dv[3 * j];
            const double* v = &vec[3 * j];
            if (F) {
                const int nb = ds.nbr[ws.pair[j]];
                for (int e = 0; e < 3; ++e) {
                    F[3 * i + e] += g[e];
                    F[3 * nb + e] -= g[e];
                }
            }
            if (S)
                for (int x = 0; x < 3; ++x)
                    for (int y = 0; y < 3; ++y) S[3 * x + y] -= g[x] * v[y];
        }
    }
    return E;
}

// MLIP's 6-component order xx yy zz yz xz xy -> (row, column).
const int voigt[6][2] = {{0, 0}, {1, 1}, {2, 2}, {1, 2}, {0, 2}, {0, 1}};

// Runs body(k, thread_id) for every listed configuration; rethrows the first error.
template <class Body>
void for_configs(const int64_t* idx, int64_t n_idx, Body body) {
    std::exception_ptr err = nullptr;
    const int nth = n_threads();
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

void check_indices(const Dataset& ds, const int64_t* idx, int64_t n_idx) {
    if (n_idx < 0) throw argument_error("negative number of configuration indices");
    if (!idx) return;
    for (int64_t q = 0; q < n_idx; ++q)
        if (idx[q] < 0 || idx[q] >= ds.n_cfg)
            throw argument_error("configuration index " + std::to_string(idx[q]) + " at position " +
                                 std::to_string(q) + " is outside 0.." + std::to_string(ds.n_cfg - 1));
}

}  // namespace

void set_threads(int n) {
    if (n < 1) throw argument_error("number of threads must be >= 1, got " + std::to_string(n));
    g_threads = n;
}

int get_threads() { return n_threads(); }

void check_compatible(const MtpModel& m, const Dataset& ds) {
    if (m.max_dist > ds.cutoff + 1e-12)
        throw argument_error("the data set's neighbour lists were built with cutoff " + std::to_string(ds.cutoff) +
                             " A, smaller than the potential's max_dist " + std::to_string(m.max_dist) +
                             " A: create the data set with a cutoff >= max_dist");
    if (ds.max_type >= m.species_count) {
        for (int64_t a = 0; a < ds.n_atoms(); ++a)
            if (ds.types[a] >= m.species_count) {
                int64_t k = std::upper_bound(ds.atom_offset.begin(), ds.atom_offset.end(), a) - ds.atom_offset.begin() - 1;
                throw data_error("configuration " + std::to_string(k) + ", atom " + std::to_string(a - ds.atom_offset[k]) +
                                 " has species index " + std::to_string(ds.types[a]) + " but the potential has " +
                                 std::to_string(m.species_count) + " species (0.." +
                                 std::to_string(m.species_count - 1) + ")");
            }
    }
}

void predict(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
             double* energies, double* forces, double* stresses) {
    check_indices(ds, idx, n_idx);
    check_compatible(m, ds);
    const MtpPlan p(m);
    std::vector<int64_t> force_off(n_idx + 1, 0);
    for (int64_t q = 0; q < n_idx; ++q) force_off[q + 1] = force_off[q] + 3 * ds.atoms_in(idx ? idx[q] : q);
    const int nth = n_threads();
    std::vector<Workspace> ws(nth);
    std::vector<std::vector<double>> vec(nth), dv(nth);
    for (int t = 0; t < nth; ++t) {
        ws[t].reserve(p, ds.max_neighbours);
        vec[t].assign(3 * size_t(ws[t].stride), 0.0);
        dv[t].assign(3 * size_t(ws[t].stride), 0.0);
    }
    for_configs(idx, n_idx, [&](int64_t q, int64_t k, int tid) {
        double S[9];
        double E = config_efs(m, p, ds, k, ws[tid], vec[tid], dv[tid], forces ? forces + force_off[q] : nullptr,
                              stresses ? S : nullptr);
        if (energies) energies[q] = E;
        if (stresses)
            for (int c = 0; c < 6; ++c) stresses[6 * q + c] = S[3 * voigt[c][0] + voigt[c][1]];
    });
}

double loss_grad(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
                 const double* weights, double* grad) {
    check_indices(ds, idx, n_idx);
    check_compatible(m, ds);
    if (!weights) throw argument_error("weights must not be NULL (3 per configuration: wE, wF, wS)");
    for (int64_t q = 0; q < n_idx; ++q) {
        const int64_t k = idx ? idx[q] : q;
        const double* w = weights + 3 * k;
        for (int c = 0; c < 3; ++c)
            if (!(w[c] >= 0) || !std::isfinite(w[c]))
                throw argument_error("weight " + std::string(c == 0 ? "wE" : c == 1 ? "wF" : "wS") +
                                     " of configuration " + std::to_string(k) + " is " + std::to_string(w[c]) +
                                     ": weights must be finite and >= 0");
        if (w[0] > 0 && !ds.has_energy[k])
            throw data_error("configuration " + std::to_string(k) + " has no energy label but energy weight " +
                             std::to_string(w[0]));
        if (w[1] > 0 && !ds.has_forces[k])
            throw data_error("configuration " + std::to_string(k) + " has missing or non-finite force labels but "
                             "force weight " + std::to_string(w[1]));
        if (w[2] > 0 && !ds.has_stress[k])
            throw data_error("configuration " + std::to_string(k) + " has missing or non-finite stress labels but "
                             "stress weight " + std::to_string(w[2]));
    }
    const MtpPlan p(m);
    const size_t np = m.n_params();
    const int nth = n_threads();
    std::vector<Workspace> ws(nth);
    std::vector<std::vector<double>> vec(nth), dv(nth), F(nth), D(nth), delta(nth), g(nth);
    std::vector<double> L(nth, 0.0);
    for (int t = 0; t < nth; ++t) {
        ws[t].reserve(p, ds.max_neighbours);
        vec[t].assign(3 * size_t(ws[t].stride), 0.0);
        dv[t].assign(3 * size_t(ws[t].stride), 0.0);
        delta[t].assign(3 * size_t(ws[t].stride), 0.0);
        F[t].assign(3 * size_t(ds.max_atoms), 0.0);
        D[t].assign(3 * size_t(ds.max_atoms), 0.0);
        if (grad) g[t].assign(np, 0.0);
    }
    for_configs(idx, n_idx, [&](int64_t, int64_t k, int tid) {
        const double* w = weights + 3 * k;
        const bool needF = w[1] > 0 || w[2] > 0;
        double S[9];
        Workspace& W = ws[tid];
        const int na = ds.atoms_in(k);
        const int64_t a0 = ds.atom_offset[k];
        double E = config_efs(m, p, ds, k, W, vec[tid], dv[tid], needF ? F[tid].data() : nullptr,
                              needF ? S : nullptr);
        double loss = 0, a = 0;
        if (w[0] > 0) {
            const double dE = E - ds.energies[k];
            loss += w[0] * dE * dE;
            a = 2 * w[0] * dE;
        }
        double* Dk = D[tid].data();
        std::fill(Dk, Dk + 3 * na, 0.0);
        if (w[1] > 0)
            for (int q = 0; q < 3 * na; ++q) {
                const double d = F[tid][q] - ds.forces[3 * a0 + q];
                loss += w[1] * d * d;
                Dk[q] = 2 * w[1] * d;
            }
        double Ms[9] = {0};
        if (w[2] > 0) {
            for (int c = 0; c < 6; ++c) {
                const int x = voigt[c][0], y = voigt[c][1];
                const double d = S[3 * x + y] - ds.stresses[6 * k + c];
                loss += w[2] * d * d * (x == y ? 1 : 2);
                Ms[3 * x + y] = Ms[3 * y + x] = 2 * w[2] * d;
            }
        }
        L[tid] += loss;
        if (!grad) return;
        // Second pass: the adjoint directions delta_ij = D_j - D_i + Ms r_ij.
        for (int i = 0; i < na; ++i) {
            const int n = gather(m, ds, a0, a0 + i, W, vec[tid]);
            const int ti = ds.types[a0 + i];
            site_energy(m, p, W, ti, n, W.tj.data(), vec[tid].data(), nullptr, true);
            double* del = delta[tid].data();
            const double* v = vec[tid].data();
            for (int j = 0; j < n; ++j) {
                const int nb = ds.nbr[W.pair[j]];
                for (int e = 0; e < 3; ++e)
                    del[3 * j + e] = Dk[3 * nb + e] - Dk[3 * i + e] + Ms[3 * e] * v[3 * j] +
                                     Ms[3 * e + 1] * v[3 * j + 1] + Ms[3 * e + 2] * v[3 * j + 2];
            }
            site_grad(m, p, W, ti, n, W.tj.data(), del, a, g[tid].data());
        }
    });
    double loss = 0;
    for (int t = 0; t < nth; ++t) loss += L[t];
    if (grad) {
        std::fill(grad, grad + np, 0.0);
        for (int t = 0; t < nth; ++t)
            for (size_t q = 0; q < np; ++q) grad[q] += g[t][q];
    }
    return loss;
}

}  // namespace mlipc
