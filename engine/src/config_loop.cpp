#include "config_loop.h"

#include <cmath>
#include <string>

#include "errors.h"

namespace mlipc {

namespace {

int g_threads = 0;  // 0: not set, use the OpenMP default

}  // namespace

const int kVoigt[6][2] = {{0, 0}, {1, 1}, {2, 2}, {1, 2}, {0, 2}, {0, 1}};

void set_threads(int n) {
    if (n < 1) throw argument_error("number of threads must be >= 1, got " + std::to_string(n));
    g_threads = n;
}

int get_threads() {
#ifdef _OPENMP
    return g_threads > 0 ? g_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

std::vector<int64_t> force_offsets(const Dataset& ds, const int64_t* idx, int64_t n_idx) {
    std::vector<int64_t> off(n_idx + 1, 0);
    for (int64_t q = 0; q < n_idx; ++q) off[q + 1] = off[q] + 3 * ds.atoms_in(idx ? idx[q] : q);
    return off;
}

void check_indices(const Dataset& ds, const int64_t* idx, int64_t n_idx) {
    if (n_idx < 0) throw argument_error("negative number of configuration indices");
    if (!idx) return;
    for (int64_t q = 0; q < n_idx; ++q)
        if (idx[q] < 0 || idx[q] >= ds.n_cfg)
            throw argument_error("configuration index " + std::to_string(idx[q]) + " at position " +
                                 std::to_string(q) + " is outside 0.." + std::to_string(ds.n_cfg - 1));
}

void check_weights(const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* weights) {
    if (!weights) throw argument_error("weights must not be NULL (3 per configuration: wE, wF, wS)");
    for (int64_t q = 0; q < n_idx; ++q) {
        const int64_t k = idx ? idx[q] : q;
        const double* w = weights + 3 * k;
        for (int c = 0; c < 3; ++c)
            if (!(w[c] >= 0) || !std::isfinite(w[c]))
                throw argument_error("weight " + std::string(c == 0 ? "wE" : c == 1 ? "wF" : "wS") +
                                     " of configuration " + std::to_string(k) + " is " + std::to_string(w[c]) +
                                     ": weights must be finite and >= 0");
        if (w[0] > 0 && !ds.has_energy[k])
            throw data_error("configuration " + std::to_string(k) + " has no energy label but energy weight " +
                             std::to_string(w[0]));
        if (w[1] > 0 && !ds.has_forces[k])
            throw data_error("configuration " + std::to_string(k) + " has missing or non-finite force labels but "
                             "force weight " + std::to_string(w[1]));
        if (w[2] > 0 && !ds.has_stress[k])
            throw data_error("configuration " + std::to_string(k) + " has missing or non-finite stress labels but "
                             "stress weight " + std::to_string(w[2]));
    }
}

void check_compatible(double cutoff, int species_count, const Dataset& ds) {
    if (cutoff > ds.cutoff + 1e-12)
        throw argument_error("the data set's neighbour lists were built with cutoff " + std::to_string(ds.cutoff) +
                             " A, smaller than the potential's max_dist " + std::to_string(cutoff) +
                             " A: create the data set with a cutoff >= max_dist");
    if (ds.max_type >= species_count) {
        for (int64_t a = 0; a < ds.n_atoms(); ++a)
            if (ds.types[a] >= species_count) {
                int64_t k = std::upper_bound(ds.atom_offset.begin(), ds.atom_offset.end(), a) - ds.atom_offset.begin() - 1;
                throw data_error("configuration " + std::to_string(k) + ", atom " + std::to_string(a - ds.atom_offset[k]) +
                                 " has species index " + std::to_string(ds.types[a]) + " but the potential has " +
                                 std::to_string(species_count) + " species (0.." +
                                 std::to_string(species_count - 1) + ")");
            }
    }
}

double config_residuals(const Dataset& ds, int64_t k, const double* w, double E, const double* F, const double* S,
                        double& a, double* D, double* Ms) {
    const int na = ds.atoms_in(k);
    const int64_t a0 = ds.atom_offset[k];
    double loss = 0;
    a = 0;
    if (w[0] > 0) {
        const double dE = E - ds.energies[k];
        loss += w[0] * dE * dE;
        a = 2 * w[0] * dE;
    }
    std::fill(D, D + 3 * na, 0.0);
    if (w[1] > 0)
        for (int q = 0; q < 3 * na; ++q) {
            const double d = F[q] - ds.forces[3 * a0 + q];
            loss += w[1] * d * d;
            D[q] = 2 * w[1] * d;
        }
    std::fill(Ms, Ms + 9, 0.0);
    if (w[2] > 0)
        for (int c = 0; c < 6; ++c) {
            const int x = kVoigt[c][0], y = kVoigt[c][1];
            const double d = S[3 * x + y] - ds.stresses[6 * k + c];
            loss += w[2] * d * d * (x == y ? 1 : 2);
            Ms[3 * x + y] = Ms[3 * y + x] = 2 * w[2] * d;
        }
    return loss;
}

void adjoint_directions(const Neighbours& nb, int i, const double* D, const double* Ms, double* delta) {
    for (int j = 0; j < nb.n; ++j) {
        const int b = nb.nb[j];
        const double* v = &nb.vec[3 * j];
        for (int e = 0; e < 3; ++e)
            delta[3 * j + e] =
                D[3 * b + e] - D[3 * i + e] + Ms[3 * e] * v[0] + Ms[3 * e + 1] * v[1] + Ms[3 * e + 2] * v[2];
    }
}

}  // namespace mlipc
