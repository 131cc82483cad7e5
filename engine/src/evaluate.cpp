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
#include "mtp_linear.h"

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

void check_indices(const Dataset& ds, const int64_t* idx, int64_t n_idx) {
    if (n_idx < 0) throw argument_error("negative number of configuration indices");
    if (!idx) return;
    for (int64_t q = 0; q < n_idx; ++q)
        if (idx[q] < 0 || idx[q] >= ds.n_cfg)
            throw argument_error("configuration index " + std::to_string(idx[q]) + " at position " +
                                 std::to_string(q) + " is outside 0.." + std::to_string(ds.n_cfg - 1));
}

// Weights of the listed configurations: finite, >= 0, and zero where a label is missing.
void check_weights(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* weights) {
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
    check_weights(ds, idx, n_idx, weights);
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

namespace mlipc {

int64_t n_linear(const MtpModel& m) { return int64_t(m.species_count) + int64_t(m.alpha_moment_mapping.size()); }

void linear_system(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
                   const double* weights, double* A, double* b, double* r0) {
    check_indices(ds, idx, n_idx);
    check_compatible(m, ds);
    check_weights(ds, idx, n_idx, weights);
    const MtpPlan p(m);
    const LinPlan lp(p);
    const int S = p.S, nsc = lp.nsc;
    const size_t nl = size_t(S) + nsc;
    const int nth = n_threads();
    std::vector<Workspace> ws(nth);
    std::vector<LinWorkspace> lws(nth);
    std::vector<std::vector<double>> vec(nth), JF(nth), JS(nth), er(nth), At(nth), bt(nth);
    std::vector<std::vector<int>> nbl(nth);
    std::vector<double> rt(nth, 0.0);
    for (int t = 0; t < nth; ++t) {
        ws[t].reserve(p, ds.max_neighbours);
        lws[t].reserve(p, lp, ws[t].stride);
        vec[t].assign(3 * size_t(ws[t].stride), 0.0);
        nbl[t].assign(ws[t].stride, 0);
        JF[t].assign(size_t(nsc) * 3 * ds.max_atoms, 0.0);
        JS[t].assign(size_t(nsc) * 9, 0.0);
        er[t].assign(nl, 0.0);
        if (A) At[t].assign(nl * nl, 0.0);
        bt[t].assign(nl, 0.0);
    }
    for_configs(idx, n_idx, [&](int64_t, int64_t k, int tid) {
        const double* w = weights + 3 * k;
        const bool needJ = w[1] > 0 || w[2] > 0;
        if (!(w[0] > 0) && !needJ) return;  // every term skipped, as in loss_grad
        Workspace& W = ws[tid];
        LinWorkspace& LW = lws[tid];
        const int na = ds.atoms_in(k);
        const int64_t a0 = ds.atom_offset[k], n3 = 3 * int64_t(na);
        double* e = er[tid].data();
        double* jf = JF[tid].data();
        double* js = JS[tid].data();
        std::fill(e, e + nl, 0.0);
        if (needJ) {
            std::fill(jf, jf + size_t(nsc) * n3, 0.0);
            std::fill(js, js + size_t(nsc) * 9, 0.0);
        }
        // The rows of the Jacobian: energy e (species counts, sums of the scalars), forces
        // jf and virial js (moment coefficients only; species coefficients give none).
        for (int i = 0; i < na; ++i) {
            const int n = gather(m, ds, a0, a0 + i, W, vec[tid]);
            const int ti = ds.types[a0 + i];
            site_energy(m, p, W, ti, n, W.tj.data(), vec[tid].data(), nullptr, false);
            e[ti] += 1.0;
            for (int q = 0; q < nsc; ++q) e[S + q] += W.mom[p.mapping[q]];
            if (!needJ) continue;
            for (int j = 0; j < n; ++j) nbl[tid][j] = ds.nbr[W.pair[j]];
            site_linear(p, lp, W, LW, i, n, vec[tid].data(), nbl[tid].data(), n3, jf, js);
        }
        double* Ak = A ? At[tid].data() : nullptr;
        double* bk = bt[tid].data();
        double r = 0;
        if (w[0] > 0) {
            const double y = ds.energies[k];
            for (size_t a = 0; a < nl; ++a) {
                if (e[a] == 0.0) continue;
                bk[a] += w[0] * y * e[a];
                if (Ak) {
                    const double ea = w[0] * e[a];
                    double* row = Ak + a * nl;
                    for (size_t c = a; c < nl; ++c) row[c] += ea * e[c];
                }
            }
            r += w[0] * y * y;
        }
        if (needJ) {
            const double wF = w[1] > 0 ? w[1] : 0.0, wS = w[2] > 0 ? w[2] : 0.0;
            const double* y = wF > 0 ? &ds.forces[3 * a0] : nullptr;
            // Virial: MLIP's 6 components, off-diagonals counted twice as in the loss.
            double ys[6] = {0}, ws6[6] = {0};
            int sc[6] = {0};
            for (int c = 0; c < 6; ++c) {
                const int x = voigt[c][0], z = voigt[c][1];
                sc[c] = 3 * x + z;
                if (wS > 0) {
                    ys[c] = ds.stresses[6 * k + c];
                    ws6[c] = wS * (x == z ? 1.0 : 2.0);
                    r += ws6[c] * ys[c] * ys[c];
                }
            }
            if (y) {
                double yy = 0;
                for (int64_t c = 0; c < n3; ++c) yy += y[c] * y[c];
                r += wF * yy;
            }
            for (int q = 0; q < nsc; ++q) {
                const double* __restrict fq = jf + size_t(q) * n3;
                const double* sq = js + size_t(q) * 9;
                double bq = 0;
                if (y) {
                    double acc = 0;
#pragma omp simd reduction(+ : acc)
                    for (int64_t c = 0; c < n3; ++c) acc += fq[c] * y[c];
                    bq += wF * acc;
                }
                for (int c = 0; c < 6; ++c) bq += ws6[c] * sq[sc[c]] * ys[c];
                bk[S + q] += bq;
                if (!Ak) continue;
                double* row = Ak + (S + q) * nl + S;
                for (int l = q; l < nsc; ++l) {
                    const double* __restrict fl = jf + size_t(l) * n3;
                    const double* sl = js + size_t(l) * 9;
                    double acc = 0;
                    if (wF > 0) {
#pragma omp simd reduction(+ : acc)
                        for (int64_t c = 0; c < n3; ++c) acc += fq[c] * fl[c];
                        acc *= wF;
                    }
                    for (int c = 0; c < 6; ++c) acc += ws6[c] * sq[sc[c]] * sl[sc[c]];
                    row[l] += acc;
                }
            }
        }
        rt[tid] += r;
    });
    // Per-thread sums added in thread order; the upper triangle mirrored.
    if (A) {
        std::fill(A, A + nl * nl, 0.0);
        for (int t = 0; t < nth; ++t)
            for (size_t q = 0; q < nl * nl; ++q) A[q] += At[t][q];
        for (size_t a = 0; a < nl; ++a)
            for (size_t c = a + 1; c < nl; ++c) A[c * nl + a] = A[a * nl + c];
    }
    if (b) {
        std::fill(b, b + nl, 0.0);
        for (int t = 0; t < nth; ++t)
            for (size_t q = 0; q < nl; ++q) b[q] += bt[t][q];
    }
    if (r0) {
        double s = 0;
        for (int t = 0; t < nth; ++t) s += rt[t];
        *r0 = s;
    }
}

}  // namespace mlipc
