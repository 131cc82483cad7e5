#include "monomials.h"

#include <algorithm>
#include <cstddef>

namespace mlipc {

Monomials::Monomials(int max_degree) : max_deg(max_degree) {
    for (int d = 0; d <= max_deg; ++d)
        for (int a = d; a >= 0; --a)
            for (int b = d - a; b >= 0; --b) {
                pow.insert(pow.end(), {a, b, d - a - b});
                deg.push_back(d);
                ++count;
            }
    parent.assign(count, -1);
    dir.assign(count, -1);
    down.assign(3 * size_t(count), -1);
    for (int q = 0; q < count; ++q) {
        const int* e = &pow[3 * q];
        for (int d = 0; d < 3; ++d)
            if (e[d] > 0) down[3 * q + d] = index(e[0] - (d == 0), e[1] - (d == 1), e[2] - (d == 2));
        for (int d = 0; d < 3; ++d)
            if (down[3 * q + d] >= 0) {
                parent[q] = down[3 * q + d];
                dir[q] = d;
                break;
            }
    }
}

int Monomials::index(int a, int b, int c) const {
    const int d = a + b + c;
    if (a < 0 || b < 0 || c < 0 || d > max_deg) return -1;
    // Degrees below d hold d(d+1)(d+2)/6 monomials; within degree d, a descending then b.
    const int before = d * (d + 1) * (d + 2) / 6;
    const int m = d - a;  // monomials with a larger a: sum_{a'>a} (d - a' + 1)
    return before + m * (m + 1) / 2 + (d - a - b);
}

void Monomials::eval(const double* const u[3], int n, int stride, double* H) const {
    std::fill(H, H + n, 1.0);
    for (int q = 1; q < count; ++q) {
        const double* __restrict hp = H + size_t(parent[q]) * stride;
        const double* __restrict ud = u[dir[q]];
        double* __restrict hq = H + size_t(q) * stride;
#pragma omp simd
        for (int j = 0; j < n; ++j) hq[j] = hp[j] * ud[j];
    }
}

void Monomials::eval_dual(const double* const u[3], const double* const ue[3], const double* H, int n, int stride,
                          double* He) const {
    std::fill(He, He + n, 0.0);
    for (int q = 1; q < count; ++q) {
        const int par = parent[q], d = dir[q];
        const double* __restrict hp = H + size_t(par) * stride;
        const double* __restrict hep = He + size_t(par) * stride;
        const double* __restrict ud = u[d];
        const double* __restrict ued = ue[d];
        double* __restrict heq = He + size_t(q) * stride;
#pragma omp simd
        for (int j = 0; j < n; ++j) heq[j] = hep[j] * ud[j] + hp[j] * ued[j];
    }
}

}  // namespace mlipc
