#include "radial_basis.h"

#include <cmath>
#include <cstddef>

namespace mlipc {

std::string radial_basis_problem(const RadialBasis& b) {
    if (b.size < 2) return "radial_basis_size must be >= 2";
    if (!(b.min_dist >= 0.0) || !(b.max_dist > b.min_dist) || !std::isfinite(b.max_dist))
        return "need 0 <= min_dist < max_dist (got min_dist=" + std::to_string(b.min_dist) +
               ", max_dist=" + std::to_string(b.max_dist) + ")";
    if (!std::isfinite(b.scaling)) return "scaling is not finite";
    return "";
}

// Needs b.size >= 2 (both models check it).
void radial_basis_values(const RadialBasis& b, const double* r, int n, int stride, double* Q, double* dQ) {
    const double R = b.max_dist, mult = 2.0 / (b.max_dist - b.min_dist), sc = b.scaling;
    const double shift = (b.min_dist + b.max_dist) / (b.max_dist - b.min_dist);
    const int s = stride;
    double* __restrict q0 = Q;
    double* __restrict d0 = dQ;
#pragma omp simd
    for (int j = 0; j < n; ++j) {
        double ksi = mult * r[j] - shift, d = r[j] - R;
        q0[j] = sc * d * d;
        d0[j] = sc * 2 * d;
        q0[s + j] = sc * ksi * d * d;
        d0[s + j] = sc * (mult * d * d + 2 * ksi * d);
    }
    // Chebyshev recurrence T_{xi} = 2 ksi T_{xi-1} - T_{xi-2}, applied to T (R - r)^2.
    for (int xi = 2; xi < b.size; ++xi) {
        double* __restrict q = Q + size_t(xi) * s;
        double* __restrict dq = dQ + size_t(xi) * s;
#pragma omp simd
        for (int j = 0; j < n; ++j) {
            double ksi = mult * r[j] - shift;
            q[j] = 2 * ksi * q[j - s] - q[j - 2 * s];
            dq[j] = 2 * (mult * q[j - s] + ksi * dq[j - s]) - dq[j - 2 * s];
        }
    }
}

}  // namespace mlipc
