// Per-atom ETN kernels.  Per-neighbour arrays are laid out [row][neighbour] so that the
// inner loops run over neighbours with unit stride and vectorise; the chain of cores
// (etn_chain.h) runs once per site on the features.
#include "etn_kernel.h"

#include <algorithm>

#include "neighbour_geometry.h"
#include "radial_basis.h"

namespace mlipc {

namespace {

// Neighbours handled together in the blocked radial loops (one vector register of
// doubles), and radial basis functions per block of the radial gradient.
constexpr int kLanes = 8, kXi = 8;

}  // namespace

void EtnWorkspace::reserve(const EtnPlan& p, int s) {
    stride = s;
    for (auto* v : {&r, &ux, &uy, &uz, &re, &uex, &uey, &uez, &A, &B, &Cx, &Cy, &Cz}) v->assign(s, 0.0);
    // Padding read by the blocked radial loops: kLanes past a row, rows up to a multiple of kXi.
    Xr.assign(s + kLanes, 0.0);
    Yr.assign(s + kLanes, 0.0);
    const size_t q_rows = (p.nrb + kXi - 1) / kXi * kXi;
    const int nY = p.Y.count();
    Q.assign(q_rows * s + kLanes, 0.0);
    dQ.assign(q_rows * s + kLanes, 0.0);
    R.assign(size_t(p.n_channels) * s, 0.0);
    dR.assign(size_t(p.n_channels) * s, 0.0);
    H.assign(size_t(p.mono.count) * s, 0.0);
    Y.assign(size_t(nY) * s, 0.0);
    Ye.assign(size_t(nY) * s, 0.0);
    Bm.assign(size_t(nY) * s, 0.0);
    dY.assign(3 * size_t(nY) * s, 0.0);
    X.assign(p.n_x, 0.0);
    Xbar.assign(p.n_x, 0.0);
    Xd.assign(p.n_x, Dual{});
    Xbd.assign(p.n_x, Dual{});
    h.assign(p.bond_off.back(), 0.0);
    hbar.assign(p.bond_off.back(), 0.0);
    hd.assign(p.bond_off.back(), Dual{});
    hbd.assign(p.bond_off.back(), Dual{});
}

namespace {

// R[ch][j] = sum_xi c[t_i][t_j][ch][xi] Q_xi(r_j) and dR, one species run at a time so
// that the coefficients are constant along the neighbours, kLanes neighbours at a time
// so that the sums over xi stay in registers.  Reads up to kLanes - 1 values past a run
// (EtnWorkspace pads Q and dQ); what it computes there is not stored.
void radial_functions(const EtnModel& m, const EtnPlan& p, EtnWorkspace& ws, int ti, const Neighbours& nb) {
    const int s = ws.stride, nrb = p.nrb;
    const double* Q = ws.Q.data();
    const double* dQ = ws.dQ.data();
    for (int t = 0; t < p.S; ++t) {
        const int j0 = nb.species_off[t], j1 = nb.species_off[t + 1];
        const double* c = &m.radial_coeffs[(size_t(ti) * p.S + t) * p.n_channels * nrb];
        for (int j = j0; j < j1; j += kLanes) {
            const int lanes = std::min(kLanes, j1 - j);
            for (int ch = 0; ch < p.n_channels; ++ch) {
                const double* cc = c + size_t(ch) * nrb;
                double v[kLanes] = {}, d[kLanes] = {};
                for (int xi = 0; xi < nrb; ++xi) {
                    const double w = cc[xi];
                    const double* q = Q + size_t(xi) * s + j;
                    const double* dq = dQ + size_t(xi) * s + j;
#pragma omp simd
                    for (int b = 0; b < kLanes; ++b) {
                        v[b] += w * q[b];
                        d[b] += w * dq[b];
                    }
                }
                double* R = ws.R.data() + size_t(ch) * s + j;
                double* dR = ws.dR.data() + size_t(ch) * s + j;
                for (int b = 0; b < lanes; ++b) {
                    R[b] = v[b];
                    dR[b] = d[b];
                }
            }
        }
    }
}

// rows[i][j] = sum_t coef[t] H[mono[t]][j] for t in off[i] .. off[i+1]: the harmonics
// (or their partial derivatives) as combinations of monomials.
void combine_monomials(const std::vector<int>& off, const std::vector<int>& mono, const std::vector<double>& coef,
                       const double* H, int n, int s, double* rows) {
    for (size_t i = 0; i + 1 < off.size(); ++i) {
        double* __restrict y = rows + i * s;
        std::fill(y, y + n, 0.0);
        for (int t = off[i]; t < off[i + 1]; ++t) {
            const double c = coef[t];
            const double* __restrict h = H + size_t(mono[t]) * s;
#pragma omp simd
            for (int j = 0; j < n; ++j) y[j] += c * h[j];
        }
    }
}

// For one channel: g_t[xi] += sum_{j of species t} Q_xi(r_j) X[j] - Q'_xi(r_j) Y[j] with
// g_t = g + t * n_channels * size, the radial coefficients of species pair (t_i, t).
// Blocks of kXi basis functions x kLanes neighbours are summed in registers; lanes past
// a species run are masked (the rows are padded, see EtnWorkspace::reserve).
void radial_gradient(const EtnPlan& p, const EtnWorkspace& ws, const Neighbours& nb, const double* X,
                     const double* Y, double* g) {
    const int s = ws.stride;
    for (int t = 0; t < p.S; ++t) {
        const int j0 = nb.species_off[t], j1 = nb.species_off[t + 1];
        double* gt = g + size_t(t) * p.n_channels * p.nrb;
        for (int x0 = 0; x0 < p.nrb; x0 += kXi) {
            double acc[kXi][kLanes] = {};
            for (int j = j0; j < j1; j += kLanes) {
                double xm[kLanes], ym[kLanes];
                for (int b = 0; b < kLanes; ++b) {
                    const bool in = j + b < j1;
                    xm[b] = in ? X[j + b] : 0.0;
                    ym[b] = in ? Y[j + b] : 0.0;
                }
                for (int xi = 0; xi < kXi; ++xi) {
                    const double* q = ws.Q.data() + size_t(x0 + xi) * s + j;
                    const double* dq = ws.dQ.data() + size_t(x0 + xi) * s + j;
#pragma omp simd
                    for (int b = 0; b < kLanes; ++b) acc[xi][b] += xm[b] * q[b] - ym[b] * dq[b];
                }
            }
            for (int xi = 0; xi < kXi && x0 + xi < p.nrb; ++xi) {
                double sum = 0;
                for (int b = 0; b < kLanes; ++b) sum += acc[xi][b];
                gt[x0 + xi] += sum;
            }
        }
    }
}

double dot(const double* __restrict a, const double* __restrict b, int n) {
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int j = 0; j < n; ++j) acc += a[j] * b[j];
    return acc;
}

// Geometry, radial functions, harmonics (with derivatives when `derivatives`) and the
// features X = [1, A[ch][m] = sum_j R_ch(r_j) Y_lm(u_j)] of one site.
void site_features(const EtnModel& m, const EtnPlan& p, EtnWorkspace& ws, int ti, const Neighbours& nb,
                   bool derivatives) {
    const int s = ws.stride, n = nb.n;
    double* r = ws.r.data();
    double* const u3[3] = {ws.ux.data(), ws.uy.data(), ws.uz.data()};
    unit_vectors(nb.vec.data(), n, r, u3);
    radial_basis_values(m.radial, r, n, s, ws.Q.data(), ws.dQ.data());
    radial_functions(m, p, ws, ti, nb);
    p.mono.eval(u3, n, s, ws.H.data());
    combine_monomials(p.Y.off, p.Y.mono, p.Y.coef, ws.H.data(), n, s, ws.Y.data());
    if (derivatives) combine_monomials(p.Y.doff, p.Y.dmono, p.Y.dcoef, ws.H.data(), n, s, ws.dY.data());
    double* X = ws.X.data();
    X[0] = 1.0;
    for (int ch = 0; ch < p.n_channels; ++ch) {
        const int l = p.chan_l[ch];
        const double* R = ws.R.data() + size_t(ch) * s;
        for (int mm = 0; mm <= 2 * l; ++mm) X[p.chan_x[ch] + mm] = dot(R, ws.Y.data() + size_t(l * l + mm) * s, n);
    }
}

}  // namespace

void etn_prepare_grad(const EtnModel& m, EtnWorkspace& ws, int ti, const Neighbours& nb) {
    site_features(m, *m.plan, ws, ti, nb, true);
}

double etn_site_energy(const EtnModel& m, EtnWorkspace& ws, int ti, const Neighbours& nb, double* dVdv) {
    const EtnPlan& p = *m.plan;
    const int s = ws.stride, n = nb.n;
    site_features(m, p, ws, ti, nb, dVdv != nullptr);
    const double* r = ws.r.data();
    const double* const u3[3] = {ws.ux.data(), ws.uy.data(), ws.uz.data()};
    const double* X = ws.X.data();
    const double V = m.species_coeffs[ti] + chain_forward(p, m.cores, X, ws.h.data());
    if (!dVdv) return V;

    // dV/dX, then dV/dv_j = A_j u + (C_j - B_j u) / r with A = sum_ch R'_ch G_ch,
    // G_ch = dV/dR_ch = sum_m Xbar_ch,m Y_lm, and the angular parts through
    // Bm_lm = dV/dY_lm = sum_ch Xbar_ch,m R_ch.
    chain_backward(p, m.cores, X, ws.h.data(), ws.hbar.data(), ws.Xbar.data());
    const double* Xbar = ws.Xbar.data();
    const int nY = p.Y.count();
    double* __restrict A = ws.A.data();
    double* __restrict G = ws.Xr.data();
    double* Bm = ws.Bm.data();
    std::fill(A, A + n, 0.0);
    std::fill(Bm, Bm + size_t(nY) * s, 0.0);
    for (int ch = 0; ch < p.n_channels; ++ch) {
        const int l = p.chan_l[ch];
        const double* xb = Xbar + p.chan_x[ch];
        const double* __restrict R = ws.R.data() + size_t(ch) * s;
        const double* __restrict dR = ws.dR.data() + size_t(ch) * s;
        std::fill(G, G + n, 0.0);
        for (int mm = 0; mm <= 2 * l; ++mm) {
            const double w = xb[mm];
            const double* __restrict y = ws.Y.data() + size_t(l * l + mm) * s;
            double* __restrict bm = Bm + size_t(l * l + mm) * s;
#pragma omp simd
            for (int j = 0; j < n; ++j) {
                G[j] += w * y[j];
                bm[j] += w * R[j];
            }
        }
#pragma omp simd
        for (int j = 0; j < n; ++j) A[j] += dR[j] * G[j];
    }
    double* __restrict B = ws.B.data();
    double* const C[3] = {ws.Cx.data(), ws.Cy.data(), ws.Cz.data()};
    std::fill(B, B + n, 0.0);
    for (int d = 0; d < 3; ++d) std::fill(C[d], C[d] + n, 0.0);
    for (int l = 0; l <= p.lmax; ++l)
        for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
            const double* __restrict bm = Bm + size_t(lm) * s;
            const double* __restrict y = ws.Y.data() + size_t(lm) * s;
#pragma omp simd
            for (int j = 0; j < n; ++j) B[j] += l * bm[j] * y[j];
            for (int d = 0; d < 3; ++d) {
                const double* __restrict dy = ws.dY.data() + size_t(3 * lm + d) * s;
                double* __restrict Cd = C[d];
#pragma omp simd
                for (int j = 0; j < n; ++j) Cd[j] += bm[j] * dy[j];
            }
        }
    assemble_site_gradient(n, r, u3, A, B, C, dVdv);
    return V;
}

void etn_site_grad(const EtnModel& m, EtnWorkspace& ws, int ti, const Neighbours& nb, const double* delta, double a,
                   double* grad) {
    const EtnPlan& p = *m.plan;
    const int s = ws.stride, n = nb.n, nY = p.Y.count();
    const double* r = ws.r.data();
    const double* const u3[3] = {ws.ux.data(), ws.uy.data(), ws.uz.data()};
    double* re = ws.re.data();
    double* const ue3[3] = {ws.uex.data(), ws.uey.data(), ws.uez.data()};
    unit_vector_duals(delta, n, r, u3, re, ue3);
    // Y^eps = sum_d dY/du_d u_d^eps.
    for (int lm = 0; lm < nY; ++lm) {
        double* __restrict ye = ws.Ye.data() + size_t(lm) * s;
        const double* __restrict d0 = ws.dY.data() + size_t(3 * lm) * s;
        const double* __restrict d1 = d0 + s;
        const double* __restrict d2 = d1 + s;
#pragma omp simd
        for (int j = 0; j < n; ++j) ye[j] = d0[j] * ue3[0][j] + d1[j] * ue3[1][j] + d2[j] * ue3[2][j];
    }
    // Dual features: A^eps = sum_j R'_ch r^eps Y + R_ch Y^eps.
    Dual* Xd = ws.Xd.data();
    Xd[0] = Dual{1.0, 0.0};
    double* __restrict Rre = ws.Yr.data();
    for (int ch = 0; ch < p.n_channels; ++ch) {
        const int l = p.chan_l[ch];
        const double* __restrict R = ws.R.data() + size_t(ch) * s;
        const double* __restrict dR = ws.dR.data() + size_t(ch) * s;
#pragma omp simd
        for (int j = 0; j < n; ++j) Rre[j] = dR[j] * re[j];
        for (int mm = 0; mm <= 2 * l; ++mm) {
            const int lm = l * l + mm;
            const double* y = ws.Y.data() + size_t(lm) * s;
            const double* ye = ws.Ye.data() + size_t(lm) * s;
            Xd[p.chan_x[ch] + mm] = Dual{ws.X[p.chan_x[ch] + mm], dot(Rre, y, n) + dot(R, ye, n)};
        }
    }
    chain_forward(p, m.cores, Xd, ws.hd.data());
    chain_backward(p, m.cores, Xd, ws.hd.data(), ws.hbd.data(), ws.Xbd.data(), a, grad);
    grad[p.species_param + ti] += a;

    // Radial coefficients: dV/dc[ti][tj][ch][xi] = sum_{j of species tj} Q_xi G_ch with
    // G_ch = sum_m Xbar_ch,m Y_lm; its a * value - eps-part is
    // sum_j Q_xi (a G - G^eps) - Q'_xi r^eps G.
    const Dual* Xbd = ws.Xbd.data();
    double* __restrict Xr = ws.Xr.data();
    double* __restrict Yr = ws.Yr.data();
    for (int ch = 0; ch < p.n_channels; ++ch) {
        const int l = p.chan_l[ch];
        const Dual* xb = Xbd + p.chan_x[ch];
        std::fill(Xr, Xr + n, 0.0);
        std::fill(Yr, Yr + n, 0.0);
        for (int mm = 0; mm <= 2 * l; ++mm) {
            const int lm = l * l + mm;
            const double gv = xb[mm].v, ge = xb[mm].e;
            const double* __restrict y = ws.Y.data() + size_t(lm) * s;
            const double* __restrict ye = ws.Ye.data() + size_t(lm) * s;
#pragma omp simd
            for (int j = 0; j < n; ++j) {
                Yr[j] += gv * y[j];                           // G
                Xr[j] += (a * gv - ge) * y[j] - gv * ye[j];   // a G - G^eps
            }
        }
#pragma omp simd
        for (int j = 0; j < n; ++j) Yr[j] *= re[j];
        radial_gradient(p, ws, nb, Xr, Yr, grad + (size_t(ti) * p.S * p.n_channels + ch) * p.nrb);
    }
}

}  // namespace mlipc
