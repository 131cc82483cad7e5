// The radial basis shared by MTP and ETN: MLIP's RBChebyshev,
//   Q_xi(r) = scaling * T_xi(ksi) * (max_dist - r)^2,  ksi = (2r - min_dist - max_dist) / (max_dist - min_dist),
// with T_xi the Chebyshev polynomials of the first kind (xi = 0 .. size-1).  Distances in
// Angstrom; Q is dimensionless up to `scaling` (A^-2 in effect: (max_dist - r)^2 carries A^2).
#pragma once

#include <string>

namespace mlipc {

struct RadialBasis {
    int size = 8;
    double min_dist = 2.0;
    double max_dist = 5.0;
    double scaling = 1.0;
};

// The first inconsistency of the settings (size >= 2, 0 <= min_dist < max_dist, finite
// values) as a message, or "" when there is none.
std::string radial_basis_problem(const RadialBasis& b);

// Q[xi * stride + j] = Q_xi(r[j]) and dQ[...] = dQ_xi/dr (A^-1) for j < n.  Arrays are
// laid out [xi][neighbour] so the loops over neighbours vectorise.
void radial_basis_values(const RadialBasis& b, const double* r, int n, int stride, double* Q, double* dQ);

// The radial coefficient that makes a radial function f = c * Q_xi bounded by `scaling`
// on [min_dist, max_dist]: 1 / (max_dist - min_dist)^2 (A^-2).  Both models start from
// it: without it unit coefficients give features of O(1e2) per neighbour shell.
inline double unit_radial_coeff(const RadialBasis& b) {
    return 1.0 / ((b.max_dist - b.min_dist) * (b.max_dist - b.min_dist));
}

}  // namespace mlipc
