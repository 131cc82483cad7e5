// Monomials u_x^a u_y^b u_z^c of a neighbour's unit vector u, all degrees 0..max_deg,
// shared by MTP (its basic moments) and ETN (its spherical harmonics are fixed
// combinations of them).  Rows are laid out [monomial][neighbour].
#pragma once

#include <vector>

namespace mlipc {

struct Monomials {
    int max_deg = 0;
    int count = 0;
    std::vector<int> parent, dir;  // H[q] = H[parent[q]] * u[dir[q]] (q >= 1)
    std::vector<int> down;         // 3 per monomial: index with that exponent lowered by 1, -1 if none
    std::vector<int> pow;          // 3 per monomial: the exponents (a, b, c)
    std::vector<int> deg;          // a + b + c
    // Ordered by degree, then a descending, then b descending.
    explicit Monomials(int max_degree = 0);
    int index(int a, int b, int c) const;  // -1 when a + b + c > max_deg or an exponent is negative

    // H[q * stride + j] for q < count, j < n, from the unit vectors u[0..2][j].
    void eval(const double* const u[3], int n, int stride, double* H) const;
    // The eps-parts He of H when u carries eps-parts ue: He_q = He_parent u_dir + H_parent ue_dir.
    void eval_dual(const double* const u[3], const double* const ue[3], const double* H, int n, int stride,
                   double* He) const;
};

}  // namespace mlipc
