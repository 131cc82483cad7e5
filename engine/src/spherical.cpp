#include "spherical.h"

#include <array>
#include <cmath>
#include <map>

namespace mlipc {

namespace {

using Poly = std::map<std::array<int, 3>, double>;  // exponents (a, b, c) -> coefficient

Poly multiply(const Poly& p, const Poly& q) {
    Poly out;
    for (const auto& [ka, va] : p)
        for (const auto& [kb, vb] : q) out[{ka[0] + kb[0], ka[1] + kb[1], ka[2] + kb[2]}] += va * vb;
    return out;
}

double factorial(int n) {
    double f = 1;
    for (int k = 2; k <= n; ++k) f *= k;
    return f;
}

double binomial(int n, int k) { return factorial(n) / (factorial(k) * factorial(n - k)); }

// r^l Y_lm as a polynomial: the harmonic-polynomial form of the real spherical harmonics,
//   sqrt((2l+1)/4pi) sqrt((2 - delta_m0) (l-|m|)!/(l+|m|)!) Pi_l^|m|(z, r) {A_|m|, B_|m|}(x, y),
//   Pi_l^m = sum_k (-1)^k 2^-l C(l,k) C(2l-2k,l) (l-2k)!/(l-2k-m)! r^2k z^(l-2k-m),
//   A_m + i B_m = (x + i y)^m  (A for m >= 0, B for m < 0).
Poly solid_harmonic(int l, int m) {
    const int am = std::abs(m);
    Poly ab;
    for (int p = 0; p <= am; ++p) {
        // Re / Im of i^(am - p): the powers of i y in (x + i y)^am.
        const int q = (am - p) % 4;
        const double re = q == 0 ? 1 : q == 2 ? -1 : 0, im = q == 1 ? 1 : q == 3 ? -1 : 0;
        const double c = binomial(am, p) * (m >= 0 ? re : im);
        if (c != 0) ab[{p, am - p, 0}] += c;
    }
    Poly pi;
    for (int k = 0; 2 * k <= l - am; ++k) {
        const double c = (k % 2 ? -1.0 : 1.0) * std::ldexp(1.0, -l) * binomial(l, k) * binomial(2 * l - 2 * k, l) *
                         factorial(l - 2 * k) / factorial(l - 2 * k - am);
        Poly r2k{{{0, 0, l - 2 * k - am}, c}};
        for (int t = 0; t < k; ++t) r2k = multiply(r2k, Poly{{{2, 0, 0}, 1.0}, {{0, 2, 0}, 1.0}, {{0, 0, 2}, 1.0}});
        for (const auto& [e, v] : r2k) pi[e] += v;
    }
    const double norm = std::sqrt((2 * l + 1) / (4 * M_PI) * (m == 0 ? 1.0 : 2.0) * factorial(l - am) / factorial(l + am));
    Poly out;
    for (const auto& [e, v] : multiply(pi, ab))
        if (v != 0) out[e] = norm * v;
    return out;
}

// Gauss-Legendre nodes and weights on [-1, 1] (Newton on P_n from the Chebyshev guess).
void gauss_legendre(int n, std::vector<double>& x, std::vector<double>& w) {
    x.assign(n, 0.0);
    w.assign(n, 0.0);
    for (int i = 0; i < n; ++i) {
        double z = std::cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1;
        for (int it = 0; it < 100; ++it) {
            double p0 = 1, p1 = z;
            for (int k = 2; k <= n; ++k) {
                const double p2 = ((2 * k - 1) * z * p1 - (k - 1) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            dp = n * (z * p1 - p0) / (z * z - 1);
            const double step = p1 / dp;
            z -= step;
            if (std::fabs(step) < 1e-16) break;
        }
        x[i] = z;
        w[i] = 2 / ((1 - z * z) * dp * dp);
    }
}

}  // namespace

SphericalHarmonics::SphericalHarmonics(int lmax_, const Monomials& monomials) : lmax(lmax_) {
    off.push_back(0);
    doff.push_back(0);
    for (int l = 0; l <= lmax; ++l)
        for (int m = -l; m <= l; ++m) {
            const Poly p = solid_harmonic(l, m);
            for (const auto& [e, v] : p) {
                mono.push_back(monomials.index(e[0], e[1], e[2]));
                coef.push_back(v);
            }
            off.push_back(int(mono.size()));
            for (int d = 0; d < 3; ++d) {
                Poly dp;
                for (const auto& [e, v] : p)
                    if (e[d] > 0) dp[{e[0] - (d == 0), e[1] - (d == 1), e[2] - (d == 2)}] += v * e[d];
                for (const auto& [e, v] : dp) {
                    dmono.push_back(monomials.index(e[0], e[1], e[2]));
                    dcoef.push_back(v);
                }
                doff.push_back(int(dmono.size()));
            }
        }
}

CouplingTable::CouplingTable(const SphericalHarmonics& Y, const Monomials& monomials) : lmax(Y.lmax) {
    // Product quadrature exact for polynomials of degree 3 lmax on the sphere: Gauss-Legendre
    // in z, the trapezoidal rule in phi.
    const int D = 3 * lmax, nz = D / 2 + 1, nphi = D + 1;
    std::vector<double> zs, wz;
    gauss_legendre(nz, zs, wz);
    const int nq = nz * nphi;
    std::vector<double> ux(nq), uy(nq), uz(nq), wq(nq);
    for (int a = 0; a < nz; ++a)
        for (int b = 0; b < nphi; ++b) {
            const int q = a * nphi + b;
            const double phi = 2 * M_PI * b / nphi, s = std::sqrt(1 - zs[a] * zs[a]);
            ux[q] = s * std::cos(phi);
            uy[q] = s * std::sin(phi);
            uz[q] = zs[a];
            wq[q] = wz[a] * 2 * M_PI / nphi;
        }
    std::vector<double> H(size_t(monomials.count) * nq), Yq(size_t(Y.count()) * nq, 0.0);
    const double* const u[3] = {ux.data(), uy.data(), uz.data()};
    monomials.eval(u, nq, nq, H.data());
    for (int lm = 0; lm < Y.count(); ++lm)
        for (int t = Y.off[lm]; t < Y.off[lm + 1]; ++t)
            for (int q = 0; q < nq; ++q) Yq[size_t(lm) * nq + q] += Y.coef[t] * H[size_t(Y.mono[t]) * nq + q];

    const int n = lmax + 1;
    off.assign(size_t(n) * n * n + 1, 0);
    std::vector<double> g;
    for (int L = 0; L <= lmax; ++L)
        for (int l = 0; l <= lmax; ++l)
            for (int Lp = 0; Lp <= lmax; ++Lp) {
                const int i = index(L, l, Lp);
                off[i + 1] = off[i];
                if (Lp < std::abs(L - l) || Lp > L + l || (L + l + Lp) % 2) continue;
                // Gaunt integrals: the invariant of L x l x L' (unique up to scale).
                g.assign(size_t(2 * L + 1) * (2 * l + 1) * (2 * Lp + 1), 0.0);
                double norm2 = 0;
                for (int M = 0; M <= 2 * L; ++M)
                    for (int m = 0; m <= 2 * l; ++m)
                        for (int Mp = 0; Mp <= 2 * Lp; ++Mp) {
                            const double* a = &Yq[size_t(L * L + M) * nq];
                            const double* b = &Yq[size_t(l * l + m) * nq];
                            const double* c = &Yq[size_t(Lp * Lp + Mp) * nq];
                            double s = 0;
                            for (int q = 0; q < nq; ++q) s += wq[q] * a[q] * b[q] * c[q];
                            g[(size_t(M) * (2 * l + 1) + m) * (2 * Lp + 1) + Mp] = s;
                            norm2 += s * s;
                        }
                const double scale = std::sqrt((2 * Lp + 1) / norm2);
                for (int M = 0; M <= 2 * L; ++M)
                    for (int m = 0; m <= 2 * l; ++m)
                        for (int Mp = 0; Mp <= 2 * Lp; ++Mp) {
                            const double c = scale * g[(size_t(M) * (2 * l + 1) + m) * (2 * Lp + 1) + Mp];
                            if (std::fabs(c) > 1e-12) entries.push_back({M, m, Mp, c});
                        }
                off[i + 1] = int(entries.size());
            }
}

}  // namespace mlipc
