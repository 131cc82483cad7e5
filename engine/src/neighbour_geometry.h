// Per-neighbour geometry shared by the site kernels of every model: distances and unit
// vectors, their eps-parts along a displacement direction (the dual numbers of the
// adjoint gradient), and the assembly of dV/dv_j from its radial and angular parts.
#pragma once

#include <cmath>

namespace mlipc {

// r[j] = |v_j| (A) and u[.][j] = v_j / r_j for the n neighbour vectors vec (3 per neighbour).
inline void unit_vectors(const double* vec, int n, double* r, double* const u[3]) {
    for (int j = 0; j < n; ++j) {
        const double x = vec[3 * j], y = vec[3 * j + 1], z = vec[3 * j + 2];
        r[j] = std::sqrt(x * x + y * y + z * z);
        const double inv = 1.0 / r[j];
        u[0][j] = x * inv;
        u[1][j] = y * inv;
        u[2][j] = z * inv;
    }
}

// eps-parts of r and u when every v_j moves by eps * delta_j: r^eps = u . delta (A),
// u^eps = (delta - r^eps u) / r (A^-1 times the unit of delta).
inline void unit_vector_duals(const double* delta, int n, const double* r, const double* const u[3], double* re,
                              double* const ue[3]) {
    for (int j = 0; j < n; ++j) {
        const double dx = delta[3 * j], dy = delta[3 * j + 1], dz = delta[3 * j + 2];
        re[j] = u[0][j] * dx + u[1][j] * dy + u[2][j] * dz;
        const double inv = 1.0 / r[j];
        ue[0][j] = (dx - re[j] * u[0][j]) * inv;
        ue[1][j] = (dy - re[j] * u[1][j]) * inv;
        ue[2][j] = (dz - re[j] * u[2][j]) * inv;
    }
}

// dV/dv_j = A_j u_j + (C_j - B_j u_j) / r_j, the gradient of a site energy that depends
// on v_j through r_j (A = dV/dr) and through homogeneous polynomials P(u_j) of degree
// deg: C_d = sum dV/dP * dP/du_d, and B = sum deg dV/dP P, by Euler's identity the
// radial component of C that the constraint |u| = 1 removes.
inline void assemble_site_gradient(int n, const double* r, const double* const u[3], const double* A,
                                   const double* B, const double* const C[3], double* dVdv) {
    for (int j = 0; j < n; ++j) {
        const double inv = 1.0 / r[j];
        const double radial = A[j] - B[j] * inv;
        dVdv[3 * j] = radial * u[0][j] + C[0][j] * inv;
        dVdv[3 * j + 1] = radial * u[1][j] + C[1][j] * inv;
        dVdv[3 * j + 2] = radial * u[2][j] + C[2][j] * inv;
    }
}

}  // namespace mlipc
