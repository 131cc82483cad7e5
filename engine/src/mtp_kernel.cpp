// Per-atom MTP kernels.  Arrays are laid out [row][neighbour] so that the inner loops
// run over neighbours with unit stride and vectorise.
#include "mtp_kernel.h"

#include <algorithm>
#include <cmath>

#include "neighbour_geometry.h"

namespace mlipc {

MtpPlan::MtpPlan(const MtpModel& m) {
    S = m.species_count;
    nrb = m.radial.size;
    nmu = m.radial_funcs_count;
    nbasic = int(m.alpha_index_basic.size());
    nmom = m.alpha_moments_count;
    for (const auto& a : m.alpha_index_basic) max_deg = std::max(max_deg, a[1] + a[2] + a[3]);
    mono = Monomials(max_deg);
    for (const auto& a : m.alpha_index_basic) {
        basic_mu.push_back(a[0]);
        basic_mono.push_back(mono.index(a[1], a[2], a[3]));
        basic_deg.push_back(a[1] + a[2] + a[3]);
    }
    for (const auto& t : m.alpha_index_times) times.insert(times.end(), t.begin(), t.end());
    mapping = m.alpha_moment_mapping;
}

void Workspace::reserve(const MtpPlan& p, int s) {
    if (s <= stride && !mom.empty()) return;
    stride = s;
    for (auto* v : {&r, &ux, &uy, &uz, &re, &uex, &uey, &uez, &A, &B, &Cx, &Cy, &Cz}) v->assign(s, 0.0);
    Q.assign(size_t(p.nrb) * s, 0.0);
    dQ.assign(size_t(p.nrb) * s, 0.0);
    for (auto* v : {&f, &df, &fe, &G, &Ge, &X, &Y}) v->assign(size_t(p.nmu) * s, 0.0);
    H.assign(size_t(p.mono.count) * s, 0.0);
    He.assign(size_t(p.mono.count) * s, 0.0);
    for (auto* v : {&mom, &mome, &adj, &adje}) v->assign(p.nmom, 0.0);
}

double site_energy(const MtpModel& m, const MtpPlan& p, Workspace& ws, int ti, int n,
                   const int* tj, const double* vec, double* dVdv, bool adjoint) {
    const int s = ws.stride;
    double* r = ws.r.data();
    double* const u3[3] = {ws.ux.data(), ws.uy.data(), ws.uz.data()};
    unit_vectors(vec, n, r, u3);
    radial_basis_values(m.radial, r, n, s, ws.Q.data(), ws.dQ.data());

    // Radial functions f_mu(r_j) = sum_xi c[ti][tj][mu][xi] Q_xi(r_j) and derivatives.
    const double* Q = ws.Q.data();
    const double* dQ = ws.dQ.data();
    double* f = ws.f.data();
    double* df = ws.df.data();
    for (int j = 0; j < n; ++j) {
        const double* c = &m.radial_coeffs[(size_t(ti) * p.S + tj[j]) * p.nmu * p.nrb];
        for (int mu = 0; mu < p.nmu; ++mu) {
            double v = 0, d = 0;
            for (int xi = 0; xi < p.nrb; ++xi) {
                v += c[mu * p.nrb + xi] * Q[size_t(xi) * s + j];
                d += c[mu * p.nrb + xi] * dQ[size_t(xi) * s + j];
            }
            f[size_t(mu) * s + j] = v;
            df[size_t(mu) * s + j] = d;
        }
    }
    // Monomials of the unit vector.
    double* H = ws.H.data();
    p.mono.eval(u3, n, s, H);
    // Basic moments, contractions, site energy.
    double* mom = ws.mom.data();
    for (int k = 0; k < p.nbasic; ++k) {
        const double* __restrict fk = f + size_t(p.basic_mu[k]) * s;
        const double* __restrict hk = H + size_t(p.basic_mono[k]) * s;
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < n; ++j) acc += fk[j] * hk[j];
        mom[k] = acc;
    }
    std::fill(mom + p.nbasic, mom + p.nmom, 0.0);
    const int nt = int(p.times.size() / 4);
    const int* t = p.times.data();
    for (int q = 0; q < nt; ++q) mom[t[4 * q + 3]] += t[4 * q + 2] * mom[t[4 * q]] * mom[t[4 * q + 1]];
    double V = m.species_coeffs[ti];
    for (size_t q = 0; q < p.mapping.size(); ++q) V += m.moment_coeffs[q] * mom[p.mapping[q]];
    if (!dVdv && !adjoint) return V;

    // Adjoint of the moments, dV/dM.
    double* adj = ws.adj.data();
    std::fill(adj, adj + p.nmom, 0.0);
    for (size_t q = 0; q < p.mapping.size(); ++q) adj[p.mapping[q]] += m.moment_coeffs[q];
    for (int q = nt - 1; q >= 0; --q) {
        const int i = t[4 * q], jj = t[4 * q + 1];
        const double w = t[4 * q + 2] * adj[t[4 * q + 3]];
        adj[i] += w * mom[jj];
        adj[jj] += w * mom[i];
    }
    if (!dVdv) return V;
    // dV/dv_j = A_j u + (C_j - B_j u) / r with
    //   A = sum_k adj_k f'_mu H_m,  B = sum_k adj_k deg_k f_mu H_m,  C_d = sum_k adj_k a_d f_mu H_{m-e_d}.
    double* __restrict A = ws.A.data();
    double* __restrict B = ws.B.data();
    double* const C[3] = {ws.Cx.data(), ws.Cy.data(), ws.Cz.data()};
    std::fill(A, A + n, 0.0);
    std::fill(B, B + n, 0.0);
    for (int d = 0; d < 3; ++d) std::fill(C[d], C[d] + n, 0.0);
    for (int k = 0; k < p.nbasic; ++k) {
        const double ak = adj[k];
        if (ak == 0.0) continue;
        const int mu = p.basic_mu[k], mo = p.basic_mono[k];
        const double* __restrict fk = f + size_t(mu) * s;
        const double* __restrict dfk = df + size_t(mu) * s;
        const double* __restrict hk = H + size_t(mo) * s;
        const double bk = ak * p.basic_deg[k];
#pragma omp simd
        for (int j = 0; j < n; ++j) {
            A[j] += ak * dfk[j] * hk[j];
            B[j] += bk * fk[j] * hk[j];
        }
        for (int d = 0; d < 3; ++d) {
            const int down = p.mono.down[3 * mo + d];
            if (down < 0) continue;
            const double ck = ak * p.mono.pow[3 * mo + d];
            const double* __restrict hd = H + size_t(down) * s;
            double* __restrict Cd = C[d];
#pragma omp simd
            for (int j = 0; j < n; ++j) Cd[j] += ck * fk[j] * hd[j];
        }
    }
    assemble_site_gradient(n, r, u3, A, B, C, dVdv);
    return V;
}

void site_grad(const MtpModel& m, const MtpPlan& p, Workspace& ws, int ti, int n,
               const int* tj, const double* delta, double a, double* grad) {
    const int s = ws.stride;
    const double* r = ws.r.data();
    const double* const u3[3] = {ws.ux.data(), ws.uy.data(), ws.uz.data()};
    double* re = ws.re.data();
    double* const ue3[3] = {ws.uex.data(), ws.uey.data(), ws.uez.data()};
    // Dual parts of r and u along delta.
    unit_vector_duals(delta, n, r, u3, re, ue3);
    const double* f = ws.f.data();
    const double* df = ws.df.data();
    double* fe = ws.fe.data();
    for (int mu = 0; mu < p.nmu; ++mu) {
        const double* __restrict d = df + size_t(mu) * s;
        double* __restrict e = fe + size_t(mu) * s;
#pragma omp simd
        for (int j = 0; j < n; ++j) e[j] = d[j] * re[j];
    }
    const double* H = ws.H.data();
    double* He = ws.He.data();
    p.mono.eval_dual(u3, ue3, H, n, s, He);
    // Dual moments.
    const double* mom = ws.mom.data();
    double* mome = ws.mome.data();
    for (int k = 0; k < p.nbasic; ++k) {
        const size_t mu = p.basic_mu[k], mo = p.basic_mono[k];
        const double* __restrict fk = f + mu * s;
        const double* __restrict fek = fe + mu * s;
        const double* __restrict hk = H + mo * s;
        const double* __restrict hek = He + mo * s;
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < n; ++j) acc += fek[j] * hk[j] + fk[j] * hek[j];
        mome[k] = acc;
    }
    std::fill(mome + p.nbasic, mome + p.nmom, 0.0);
    const int nt = int(p.times.size() / 4);
    const int* t = p.times.data();
    for (int q = 0; q < nt; ++q) {
        const int i = t[4 * q], jj = t[4 * q + 1], k = t[4 * q + 3];
        mome[k] += t[4 * q + 2] * (mome[i] * mom[jj] + mom[i] * mome[jj]);
    }
    // Species and moment coefficients.
    const size_t off_species = m.n_radial(), off_moment = off_species + p.S;
    grad[off_species + ti] += a;
    for (size_t q = 0; q < p.mapping.size(); ++q)
        grad[off_moment + q] += a * mom[p.mapping[q]] - mome[p.mapping[q]];
    // Dual adjoints (adj itself is left in ws by site_energy).
    const double* adj = ws.adj.data();
    double* adje = ws.adje.data();
    std::fill(adje, adje + p.nmom, 0.0);
    for (int q = nt - 1; q >= 0; --q) {
        const int i = t[4 * q], jj = t[4 * q + 1], k = t[4 * q + 3];
        const double mult = t[4 * q + 2];
        const double w = mult * adj[k], we = mult * adje[k];
        adje[i] += we * mom[jj] + w * mome[jj];
        adje[jj] += we * mom[i] + w * mome[i];
    }
    // G_mu(j) = sum_{k in mu} adj_k H_m(j) and its dual; then
    // dV/dc[mu][xi] = sum_j Q_xi G_mu, whose combination a*val - eps is
    // sum_j Q_xi (a G - G^eps) - Q'_xi r^eps G.
    double* X = ws.X.data();
    double* Y = ws.Y.data();
    double* G = ws.G.data();
    double* Ge = ws.Ge.data();
    std::fill(G, G + size_t(p.nmu) * s, 0.0);
    std::fill(Ge, Ge + size_t(p.nmu) * s, 0.0);
    for (int k = 0; k < p.nbasic; ++k) {
        const double ak = adj[k], aek = adje[k];
        const size_t mu = p.basic_mu[k], mo = p.basic_mono[k];
        const double* __restrict hk = H + mo * s;
        const double* __restrict hek = He + mo * s;
        double* __restrict g = G + mu * s;
        double* __restrict ge = Ge + mu * s;
#pragma omp simd
        for (int j = 0; j < n; ++j) {
            g[j] += ak * hk[j];
            ge[j] += aek * hk[j] + ak * hek[j];
        }
    }
    for (int mu = 0; mu < p.nmu; ++mu) {
        const double* __restrict g = G + size_t(mu) * s;
        const double* __restrict ge = Ge + size_t(mu) * s;
        double* __restrict x = X + size_t(mu) * s;
        double* __restrict y = Y + size_t(mu) * s;
#pragma omp simd
        for (int j = 0; j < n; ++j) {
            x[j] = a * g[j] - ge[j];
            y[j] = re[j] * g[j];
        }
    }
    const double* Q = ws.Q.data();
    const double* dQ = ws.dQ.data();
    for (int j = 0; j < n; ++j) {
        double* gc = grad + (size_t(ti) * p.S + tj[j]) * p.nmu * p.nrb;
        for (int mu = 0; mu < p.nmu; ++mu) {
            const double x = X[size_t(mu) * s + j], y = Y[size_t(mu) * s + j];
            for (int xi = 0; xi < p.nrb; ++xi)
                gc[mu * p.nrb + xi] += Q[size_t(xi) * s + j] * x - dQ[size_t(xi) * s + j] * y;
        }
    }
}

}  // namespace mlipc
