#include "evaluate.h"

#include <algorithm>
#include <vector>

#include "config_loop.h"
#include "mtp_kernel.h"
#include "mtp_linear.h"

namespace mlipc {

namespace {

// MTP's site kernels in the form the configuration loops of config_loop.h take.
struct MtpKernel {
    using Workspace = mlipc::Workspace;
    const MtpModel& m;
    MtpPlan p;
    double cutoff;
    int species_count;
    size_t n_params;
    bool by_species = false;
    explicit MtpKernel(const MtpModel& model)
        : m(model), p(model), cutoff(model.radial.max_dist), species_count(model.species_count), n_params(model.n_params()) {}
    void reserve(Workspace& ws, int stride) const { ws.reserve(p, stride); }
    double site_energy(Workspace& ws, int ti, const Neighbours& nb, double* dVdv) const {
        return mlipc::site_energy(m, p, ws, ti, nb.n, nb.tj.data(), nb.vec.data(), dVdv);
    }
    void prepare_grad(Workspace& ws, int ti, const Neighbours& nb) const {
        mlipc::site_energy(m, p, ws, ti, nb.n, nb.tj.data(), nb.vec.data(), nullptr, true);
    }
    void site_grad(Workspace& ws, int ti, const Neighbours& nb, const double* delta, double a, double* grad) const {
        mlipc::site_grad(m, p, ws, ti, nb.n, nb.tj.data(), delta, a, grad);
    }
};

}  // namespace

void predict(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
             double* energies, double* forces, double* stresses) {
    predict_configs(MtpKernel(m), ds, idx, n_idx, energies, forces, stresses);
}

double loss_grad(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
                 const double* weights, double* grad) {
    return loss_grad_configs(MtpKernel(m), ds, idx, n_idx, weights, grad);
}

void jt_product(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* uE,
                const double* uF, const double* uS, double* grad) {
    jt_product_configs(MtpKernel(m), ds, idx, n_idx, uE, uF, uS, grad);
}

int64_t n_linear(const MtpModel& m) { return int64_t(m.species_count) + int64_t(m.alpha_moment_mapping.size()); }

namespace {

// One thread's scratch for the linear kernels: site workspaces, and the rows of one
// configuration's Jacobian with respect to the linear parameters.
struct LinearScratch {
    Workspace W;
    Neighbours nb;
    LinWorkspace LW;
    std::vector<double> e, jf, js;
    LinearScratch(const MtpPlan& p, const LinPlan& lp, const Dataset& ds, size_t nl) {
        nb.reserve(ds.max_neighbours, p.S);
        W.reserve(p, nb.stride);
        LW.reserve(p, lp, W.stride);
        e.assign(nl, 0.0);
        jf.assign(size_t(lp.nsc) * 3 * ds.max_atoms, 0.0);
        js.assign(size_t(lp.nsc) * 9, 0.0);
    }
};

// The rows of the Jacobian of configuration k's predictions with respect to the linear
// parameters, into s: the energy row e (species counts, then the sums of the scalar
// basis functions) and, with needJ, the forces jf ([q][3 * atom + e], moment
// coefficients only: species coefficients give no force) and the virial js ([q][3x + y],
// x <= y).  Returns 3 * atoms.
int64_t config_linear_rows(const MtpModel& m, const MtpPlan& p, const LinPlan& lp, const Dataset& ds, int64_t k,
                           bool needJ, LinearScratch& s) {
    const int S = p.S, nsc = lp.nsc;
    const int na = ds.atoms_in(k);
    const int64_t a0 = ds.atom_offset[k], n3 = 3 * int64_t(na);
    double* e = s.e.data();
    std::fill(s.e.begin(), s.e.end(), 0.0);
    if (needJ) {
        std::fill(s.jf.begin(), s.jf.begin() + size_t(nsc) * n3, 0.0);
        std::fill(s.js.begin(), s.js.end(), 0.0);
    }
    for (int i = 0; i < na; ++i) {
        const int n = gather_neighbours(ds, m.radial.max_dist, a0, a0 + i, false, s.nb);
        const int ti = ds.types[a0 + i];
        site_energy(m, p, s.W, ti, n, s.nb.tj.data(), s.nb.vec.data(), nullptr, false);
        e[ti] += 1.0;
        for (int q = 0; q < nsc; ++q) e[S + q] += s.W.mom[p.mapping[q]];
        if (needJ) site_linear(p, lp, s.W, s.LW, i, n, s.nb.vec.data(), s.nb.nb.data(), n3, s.jf.data(), s.js.data());
    }
    return n3;
}

}  // namespace

void linear_system(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
                   const double* weights, double* A, double* b, double* r0) {
    check_indices(ds, idx, n_idx);
    check_compatible(m.radial.max_dist, m.species_count, ds);
    check_weights(ds, idx, n_idx, weights);
    const MtpPlan p(m);
    const LinPlan lp(p);
    const int S = p.S, nsc = lp.nsc;
    const size_t nl = size_t(S) + nsc;
    const int nth = get_threads();
    std::vector<LinearScratch> scratch;
    for (int t = 0; t < nth; ++t) scratch.emplace_back(p, lp, ds, nl);
    std::vector<std::vector<double>> At(nth), bt(nth);
    std::vector<double> rt(nth, 0.0);
    for (int t = 0; t < nth; ++t) {
        if (A) At[t].assign(nl * nl, 0.0);
        bt[t].assign(nl, 0.0);
    }
    for_configs(idx, n_idx, [&](int64_t, int64_t k, int tid) {
        const double* w = weights + 3 * k;
        const bool needJ = w[1] > 0 || w[2] > 0;
        if (!(w[0] > 0) && !needJ) return;  // every term skipped, as in loss_grad
        LinearScratch& ls = scratch[tid];
        const int64_t n3 = config_linear_rows(m, p, lp, ds, k, needJ, ls);
        const int64_t a0 = ds.atom_offset[k];
        const double* e = ls.e.data();
        const double* jf = ls.jf.data();
        const double* js = ls.js.data();
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
                const int x = kVoigt[c][0], z = kVoigt[c][1];
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

void linear_design(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx, double* dE, double* dF,
                   double* dS) {
    check_indices(ds, idx, n_idx);
    check_compatible(m.radial.max_dist, m.species_count, ds);
    const MtpPlan p(m);
    const LinPlan lp(p);
    const int S = p.S, nsc = lp.nsc;
    const size_t nl = size_t(S) + nsc;
    const std::vector<int64_t> force_off = force_offsets(ds, idx, n_idx);
    std::vector<LinearScratch> scratch;
    for (int t = 0; t < get_threads(); ++t) scratch.emplace_back(p, lp, ds, nl);
    for_configs(idx, n_idx, [&](int64_t q, int64_t k, int tid) {
        LinearScratch& ls = scratch[tid];
        const int64_t n3 = config_linear_rows(m, p, lp, ds, k, dF || dS, ls);
        if (dE) std::copy(ls.e.begin(), ls.e.end(), dE + size_t(q) * nl);
        if (dF) {
            double* rows = dF + size_t(force_off[q]) * nl;
            for (int64_t c = 0; c < n3; ++c) {
                double* row = rows + size_t(c) * nl;
                std::fill(row, row + S, 0.0);
                for (int l = 0; l < nsc; ++l) row[S + l] = ls.jf[size_t(l) * n3 + c];
            }
        }
        if (dS)
            for (int c = 0; c < 6; ++c) {
                double* row = dS + (size_t(6) * q + c) * nl;
                std::fill(row, row + S, 0.0);
                const int sc = 3 * kVoigt[c][0] + kVoigt[c][1];
                for (int l = 0; l < nsc; ++l) row[S + l] = ls.js[size_t(l) * 9 + sc];
            }
    });
}

}  // namespace mlipc
