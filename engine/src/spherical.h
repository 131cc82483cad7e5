// Real spherical harmonics Y_lm (orthonormal on the unit sphere) written as homogeneous
// polynomials of degree l in the components of the unit vector u, and the real
// Clebsch-Gordan coefficients that couple two of them, for ETN.
//
// Index of (l, m): lm = l^2 + l + m, m = -l..l (m < 0: the sin(|m| phi) harmonics).
// As polynomials, r^l Y_lm(v/r) are the regular solid harmonics, so the same tables give
// Y on the sphere and the Euler-identity derivatives of neighbour_geometry.h.
#pragma once

#include <vector>

#include "monomials.h"

namespace mlipc {

struct SphericalHarmonics {
    int lmax = 0;
    // Y_lm = sum coef[t] H[mono[t]] for t in off[lm] .. off[lm+1] (monomials of degree l).
    std::vector<int> off, mono;
    std::vector<double> coef;
    // dY_lm/du_d (the polynomial's partial derivative) = sum dcoef[t] H[dmono[t]] for t in
    // doff[3 lm + d] .. doff[3 lm + d + 1] (monomials of degree l - 1).
    std::vector<int> doff, dmono;
    std::vector<double> dcoef;
    SphericalHarmonics(int lmax, const Monomials& monomials);
    int count() const { return (lmax + 1) * (lmax + 1); }
};

// One nonzero real Clebsch-Gordan coefficient <L M; l m | L' M'>, the m's as 0..2l offsets.
struct Coupling {
    int M, m, Mp;
    double c;
};

// The couplings (L x l -> L') for every L, l, L' <= lmax obeying the triangle rule with
// L + l + L' even, the parity-preserving ones: the model stays invariant under improper
// rotations (O(3)), since (-1)^L (-1)^l = (-1)^L'.  Normalised like Clebsch-Gordan
// coefficients: sum over M, m, M' of c^2 = 2L' + 1, so coupling is a partial isometry.
struct CouplingTable {
    int lmax = 0;
    std::vector<int> off;  // (L, l, L') -> entries off[i] .. off[i+1]; empty when not allowed
    std::vector<Coupling> entries;
    explicit CouplingTable(const SphericalHarmonics& Y, const Monomials& monomials);
    int index(int L, int l, int Lp) const { return (L * (lmax + 1) + l) * (lmax + 1) + Lp; }
    bool allowed(int L, int l, int Lp) const { return off[index(L, l, Lp) + 1] > off[index(L, l, Lp)]; }
};

}  // namespace mlipc
