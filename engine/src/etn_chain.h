// The chain of ETN cores, for one site: forward (bond vectors h and the energy h_K) and
// reverse (adjoints of the bonds and of the features X, and the weight gradient).
// Templated on the number type: double for energies and forces, Dual for the adjoint
// loss gradient, where the eps-part is the directional derivative along the residual
// displacements (engine/README.md, "The loss gradient without a force Jacobian").
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "etn_plan.h"

namespace mlipc {

// A dual number value + eps * e, eps^2 = 0.
struct Dual {
    double v = 0, e = 0;
};
inline Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.e * b.v + a.v * b.e}; }
inline Dual operator*(double c, Dual a) { return {c * a.v, c * a.e}; }
inline Dual& operator+=(Dual& a, Dual b) {
    a.v += b.v;
    a.e += b.e;
    return a;
}

// The coupling is bilinear, so the weights are contracted into the inputs first: per
// path and pair of copies (a, a'), y = sum_c w[a][c][a'] x_c, then one Clebsch-Gordan
// product with h_k[L][a], instead of one product per input channel.

// h: all bonds (EtnPlan::bond_off), X: [1, features].  Returns h_K.
template <class T>
T chain_forward(const EtnPlan& p, const std::vector<std::vector<double>>& cores, const T* X, T* h) {
    std::fill(h, h + p.bond_off.back(), T{});
    h[0] = T{1};
    const Coupling* cg = p.cg.entries.data();
    for (int k = 0; k < p.K; ++k) {
        const double* w = cores[k].data();
        for (const EtnPath& q : p.paths[k]) {
            const int dL = 2 * q.L + 1, dl = 2 * q.l + 1, dLp = 2 * q.Lp + 1;
            for (int a = 0; a < q.rin; ++a) {
                const T* hv = h + q.hin + a * dL;
                for (int b = 0; b < q.rout; ++b) {
                    T y[2 * kEtnMaxLmax + 1] = {};
                    for (int c = 0; c < q.nin; ++c) {
                        const double wc = w[q.w + (size_t(a) * q.nin + c) * q.rout + b];
                        const T* xv = X + p.xoff[q.xin + c];
                        for (int m = 0; m < dl; ++m) y[m] += wc * xv[m];
                    }
                    T* ho = h + q.hout + b * dLp;
                    for (int e = q.cg0; e < q.cg1; ++e) ho[cg[e].Mp] += cg[e].c * (hv[cg[e].M] * y[cg[e].m]);
                }
            }
        }
    }
    return h[p.bond_off[p.K]];
}

// Adjoints hbar = dh_K/dh and Xbar = dh_K/dX for the h of chain_forward.  For T = Dual
// and grad != nullptr, also adds a * dh_K/dw - (dh_K/dw)^eps to grad at every core weight
// (EtnPath::g): the weights' share of the adjoint loss gradient.
template <class T>
void chain_backward(const EtnPlan& p, const std::vector<std::vector<double>>& cores, const T* X, const T* h,
                    T* hbar, T* Xbar, double a_E = 0, double* grad = nullptr) {
    std::fill(hbar, hbar + p.bond_off.back(), T{});
    std::fill(Xbar, Xbar + p.n_x, T{});
    hbar[p.bond_off[p.K]] = T{1};
    const Coupling* cg = p.cg.entries.data();
    for (int k = p.K - 1; k >= 0; --k) {
        const double* w = cores[k].data();
        for (const EtnPath& q : p.paths[k]) {
            const int dL = 2 * q.L + 1, dl = 2 * q.l + 1, dLp = 2 * q.Lp + 1;
            for (int a = 0; a < q.rin; ++a) {
                const T* hv = h + q.hin + a * dL;
                T* hb = hbar + q.hin + a * dL;
                for (int b = 0; b < q.rout; ++b) {
                    const T* hbo = hbar + q.hout + b * dLp;
                    // y as in chain_forward, and ybar = d h_K / d y.
                    T y[2 * kEtnMaxLmax + 1] = {}, ybar[2 * kEtnMaxLmax + 1] = {};
                    for (int c = 0; c < q.nin; ++c) {
                        const double wc = w[q.w + (size_t(a) * q.nin + c) * q.rout + b];
                        const T* xv = X + p.xoff[q.xin + c];
                        for (int m = 0; m < dl; ++m) y[m] += wc * xv[m];
                    }
                    for (int e = q.cg0; e < q.cg1; ++e) {
                        const T t = cg[e].c * hbo[cg[e].Mp];
                        if (k > 0) hb[cg[e].M] += t * y[cg[e].m];
                        ybar[cg[e].m] += t * hv[cg[e].M];
                    }
                    for (int c = 0; c < q.nin; ++c) {
                        const size_t at = q.w + (size_t(a) * q.nin + c) * q.rout + b;
                        const int x0 = p.xoff[q.xin + c];
                        for (int m = 0; m < dl; ++m) Xbar[x0 + m] += w[at] * ybar[m];
                        if constexpr (std::is_same_v<T, Dual>) {
                            if (grad) {
                                T g{};
                                for (int m = 0; m < dl; ++m) g += X[x0 + m] * ybar[m];
                                grad[q.g + at - q.w] += a_E * g.v - g.e;
                            }
                        }
                    }
                }
            }
        }
    }
}

}  // namespace mlipc
