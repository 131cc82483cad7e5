// Per-atom ETN kernels.  Per-neighbour arrays are laid out [row][neighbour] so that the
// inner loops run over neighbours with unit stride and vectorise; the chain of cores
// (etn_chain.h) runs once per site on the features.
#include "etn_kernel.h"

#include <algorithm>

#include "neighbour_geometry.h"
#include "radial_basis.h"

namespace mlipc {

void EtnWorkspace::reserve(const EtnPlan& p, int s) {
    stride = s;
    for (auto* v : {&r, &ux, &uy, &uz, &re, &uex, &uey, &uez, &A, &B, &Cx, &Cy, &Cz, &Xr, &Yr}) v->assign(s, 0.0);
    const int nY = p.Y.count();
    Q.assign(size_t(p.nrb) * s, 0.0);
    dQ.assign(size_t(p.nrb) * s, 0.0);
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
// that the coefficients are constant along the vectorised loop.
void radial_functions(const EtnModel& m, const EtnPlan& p, EtnWorkspace& ws, int ti, const Neighbours& nb) {
    const int s = ws.stride, nrb = p.nrb;
    const double* Q = ws.Q.data();
    const double* dQ = ws.dQ.data();
    for (int t = 0; t < p.S; ++t) {
        const int j0 = nb.species_off[t], j1 = nb.species_off[t + 1];
        if (j0 == j1) continue;
        const double* c = &m.radial_coeffs[(size_t(ti) * p.S + t) * p.n_channels * nrb];
        for (int ch = 0; ch < p.n_channels; ++ch) {
            const double* cc = c + size_t(ch) * nrb;
            double* __restrict R = ws.R.data() + size_t(ch) * s;
            double* __restrict dR = ws.dR.data() + size_t(ch) * s;
#pragma omp simd
            for (int j = j0; j < j1; ++j) {
                double v = 0, d = 0;
                for (int xi = 0; xi < nrb; ++xi) {
                    v += cc[xi] * Q[size_t(xi) * s + j];
                    d += cc[xi] * dQ[size_t(xi) * s + j];
                }
                R[j] = v;
                dR[j] = d;
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

double dot(const double* __restrict a, const double* __restrict b, int n) {
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int j = 0; j < n; ++j) acc += a[j] * b[j];
    return acc;
}

}  // namespace

double etn_site_energy(const EtnModel& m, EtnWorkspace& ws, int ti, const Neighbours& nb, double* dVdv,
                       bool adjoint) {
    const EtnPlan& p = *m.plan;
    const int s = ws.stride, n = nb.n;
    double* r = ws.r.data();
    double* const u3[3] = {ws.ux.data(), ws.uy.data(), ws.uz.data()};
    unit_vectors(nb.vec.data(), n, r, u3);
    radial_basis_values(m.radial, r, n, s, ws.Q.data(), ws.dQ.data());
    radial_functions(m, p, ws, ti, nb);
    p.mono.eval(u3, n, s, ws.H.data());
    combine_monomials(p.Y.off, p.Y.mono, p.Y.coef, ws.H.data(), n, s, ws.Y.data());
    if (dVdv || adjoint) combine_monomials(p.Y.doff, p.Y.dmono, p.Y.dcoef, ws.H.data(), n, s, ws.dY.data());

    // Features A[ch][m] = sum_j R_ch(r_j) Y_lm(u_j), after the constant X[0] = 1.
    double* X = ws.X.data();
    X[0] = 1.0;
    for (int ch = 0; ch < p.n_channels; ++ch) {
        const int l = p.chan_l[ch];
        const double* R = ws.R.data() + size_t(ch) * s;
        for (int mm = 0; mm <= 2 * l; ++mm) X[p.chan_x[ch] + mm] = dot(R, ws.Y.data() + size_t(l * l + mm) * s, n);
    }
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
        for (int t = 0; t < p.S; ++t) {
            const int j0 = nb.species_off[t], j1 = nb.species_off[t + 1];
            if (j0 == j1) continue;
            double* gc = grad + ((size_t(ti) * p.S + t) * p.n_channels + ch) * p.nrb;
            for (int xi = 0; xi < p.nrb; ++xi) {
                const double* __restrict q = ws.Q.data() + size_t(xi) * s;
                const double* __restrict dq = ws.dQ.data() + size_t(xi) * s;
                double acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int j = j0; j < j1; ++j) acc += q[j] * Xr[j] - dq[j] * Yr[j];
                gc[xi] += acc;
            }
        }
    }
}

}  // namespace mlipc
