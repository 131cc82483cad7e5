// Neighbour lists with every periodic image within the cutoff.
#include "dataset.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "errors.h"

namespace mlipc {

namespace {

struct Vec3 { double x, y, z; };

Vec3 cross(const double* a, const double* b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

// Appends the neighbours of every atom of one configuration.  For a periodic cell the
// lattice shifts n (integer triple) needed for a pair are bounded per direction by
// |frac_j - frac_i + n_d| * h_d <= cutoff, h_d the spacing between lattice planes, so
// cells smaller than the cutoff get as many images (of other atoms and of the atom
// itself) as reach it.
void neighbours_of_config(Dataset& ds, int64_t k, const double* pos, double rc) {
    const int64_t a0 = ds.atom_offset[k];
    const int n = ds.atoms_in(k);
    const double rc2 = rc * rc;
    const double* L = &ds.cells[9 * k];
    std::vector<double> frac;
    double inv[9] = {0};
    int reach[3] = {0, 0, 0};
    double h[3] = {0, 0, 0};
    if (ds.periodic[k]) {
        Vec3 c0 = cross(L + 3, L + 6), c1 = cross(L + 6, L), c2 = cross(L, L + 3);
        double vol = L[0] * c0.x + L[1] * c0.y + L[2] * c0.z;
        if (!(std::fabs(vol) > 1e-10))
            throw data_error("configuration " + std::to_string(k) + ": the cell has zero volume");
        // Rows of the inverse-transpose: frac_d = (c_d . r) / vol.
        double cs[3][3] = {{c0.x, c0.y, c0.z}, {c1.x, c1.y, c1.z}, {c2.x, c2.y, c2.z}};
        for (int d = 0; d < 3; ++d) {
            for (int e = 0; e < 3; ++e) inv[3 * d + e] = cs[d][e] / vol;
            double norm = std::sqrt(cs[d][0] * cs[d][0] + cs[d][1] * cs[d][1] + cs[d][2] * cs[d][2]);
            h[d] = std::fabs(vol) / norm;
            reach[d] = int(std::ceil(rc / h[d])) + 1;
        }
        frac.resize(3 * size_t(n));
        for (int i = 0; i < n; ++i)
            for (int d = 0; d < 3; ++d) {
                const double* r = pos + 3 * (a0 + i);
                frac[3 * i + d] = inv[3 * d] * r[0] + inv[3 * d + 1] * r[1] + inv[3 * d + 2] * r[2];
            }
    }
    for (int i = 0; i < n; ++i) {
        const double* ri = pos + 3 * (a0 + i);
        const int64_t start = int64_t(ds.nbr.size());
        for (int j = 0; j < n; ++j) {
            const double* rj = pos + 3 * (a0 + j);
            const double d0[3] = {rj[0] - ri[0], rj[1] - ri[1], rj[2] - ri[2]};
            if (!ds.periodic[k]) {
                double r2 = d0[0] * d0[0] + d0[1] * d0[1] + d0[2] * d0[2];
                if (j != i && r2 < rc2) {
                    if (r2 < 1e-20)
                        throw data_error("configuration " + std::to_string(k) + ": atoms " + std::to_string(i) +
                                         " and " + std::to_string(j) + " are at the same position");
                    ds.nbr.push_back(j);
                    ds.vec.insert(ds.vec.end(), d0, d0 + 3);
                }
                continue;
            }
            int lo[3], hi[3];
            for (int d = 0; d < 3; ++d) {
                double df = frac[3 * j + d] - frac[3 * i + d];
                lo[d] = int(std::ceil(-rc / h[d] - df - 1e-9));
                hi[d] = int(std::floor(rc / h[d] - df + 1e-9));
                lo[d] = std::max(lo[d], -reach[d] - int(std::ceil(std::fabs(df))));
                hi[d] = std::min(hi[d], reach[d] + int(std::ceil(std::fabs(df))));
            }
            for (int n0 = lo[0]; n0 <= hi[0]; ++n0)
                for (int n1 = lo[1]; n1 <= hi[1]; ++n1)
                    for (int n2 = lo[2]; n2 <= hi[2]; ++n2) {
                        double v[3];
                        for (int e = 0; e < 3; ++e)
                            v[e] = d0[e] + n0 * L[e] + n1 * L[3 + e] + n2 * L[6 + e];
                        double r2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                        if (r2 >= rc2) continue;
                        if (r2 < 1e-20) {
                            if (j == i && n0 == 0 && n1 == 0 && n2 == 0) continue;
                            throw data_error("configuration " + std::to_string(k) + ": atoms " + std::to_string(i) +
                                             " and " + std::to_string(j) + " (or a periodic image) overlap");
                        }
                        ds.nbr.push_back(j);
                        ds.vec.insert(ds.vec.end(), v, v + 3);
                    }
        }
        ds.pair_offset[a0 + i + 1] = int64_t(ds.nbr.size());
        ds.max_neighbours = std::max(ds.max_neighbours, int(ds.nbr.size() - start));
    }
}

}  // namespace

Dataset build_dataset(int64_t n_cfg, const int64_t* n_atoms, const double* cells,
                      const int32_t* periodic, const double* positions, const int32_t* types,
                      double cutoff) {
    if (n_cfg <= 0) throw data_error("empty data set: no configurations");
    if (!n_atoms || !positions || !types) throw argument_error("n_atoms, positions and types must not be NULL");
    if (!(cutoff > 0) || !std::isfinite(cutoff)) throw argument_error("cutoff must be positive and finite");
    Dataset ds;
    ds.cutoff = cutoff;
    ds.n_cfg = n_cfg;
    ds.atom_offset.assign(n_cfg + 1, 0);
    ds.periodic.assign(n_cfg, 0);
    ds.cells.assign(9 * n_cfg, 0.0);
    for (int64_t k = 0; k < n_cfg; ++k) {
        if (n_atoms[k] <= 0)
            throw data_error("configuration " + std::to_string(k) + " has no atoms");
        ds.atom_offset[k + 1] = ds.atom_offset[k] + n_atoms[k];
        ds.max_atoms = std::max<int>(ds.max_atoms, int(n_atoms[k]));
        ds.periodic[k] = periodic ? (periodic[k] != 0) : 1;
        if (ds.periodic[k]) {
            if (!cells) throw argument_error("cells must not be NULL for periodic configurations");
            for (int e = 0; e < 9; ++e) {
                ds.cells[9 * k + e] = cells[9 * k + e];
                if (!std::isfinite(cells[9 * k + e]))
                    throw data_error("configuration " + std::to_string(k) + ": non-finite cell");
            }
        }
    }
    const int64_t na = ds.atom_offset.back();
    ds.types.assign(types, types + na);
    for (int64_t a = 0; a < na; ++a) {
        if (types[a] < 0) {
            int64_t k = std::upper_bound(ds.atom_offset.begin(), ds.atom_offset.end(), a) - ds.atom_offset.begin() - 1;
            throw data_error("configuration " + std::to_string(k) + ", atom " + std::to_string(a - ds.atom_offset[k]) +
                             ": negative species index " + std::to_string(types[a]));
        }
        ds.max_type = std::max(ds.max_type, types[a]);
        for (int e = 0; e < 3; ++e)
            if (!std::isfinite(positions[3 * a + e])) {
                int64_t k = std::upper_bound(ds.atom_offset.begin(), ds.atom_offset.end(), a) - ds.atom_offset.begin() - 1;
                throw data_error("configuration " + std::to_string(k) + ", atom " +
                                 std::to_string(a - ds.atom_offset[k]) + ": non-finite position");
            }
    }
    ds.pair_offset.assign(na + 1, 0);
    for (int64_t k = 0; k < n_cfg; ++k) neighbours_of_config(ds, k, positions, cutoff);
    ds.nbr.shrink_to_fit();
    ds.vec.shrink_to_fit();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    ds.energies.assign(n_cfg, nan);
    ds.forces.assign(3 * na, nan);
    ds.stresses.assign(6 * n_cfg, nan);
    ds.has_energy.assign(n_cfg, 0);
    ds.has_forces.assign(n_cfg, 0);
    ds.has_stress.assign(n_cfg, 0);
    return ds;
}

void set_labels(Dataset& ds, const double* energies, const double* forces, const double* stresses) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int64_t k = 0; k < ds.n_cfg; ++k) {
        ds.energies[k] = energies ? energies[k] : nan;
        ds.has_energy[k] = std::isfinite(ds.energies[k]);
        bool ok = forces != nullptr;
        for (int64_t q = 3 * ds.atom_offset[k]; q < 3 * ds.atom_offset[k + 1]; ++q) {
            ds.forces[q] = forces ? forces[q] : nan;
            ok = ok && std::isfinite(ds.forces[q]);
        }
        ds.has_forces[k] = ok;
        ok = stresses != nullptr;
        for (int e = 0; e < 6; ++e) {
            ds.stresses[6 * k + e] = stresses ? stresses[6 * k + e] : nan;
            ok = ok && std::isfinite(ds.stresses[6 * k + e]);
        }
        ds.has_stress[k] = ok;
    }
}

}  // namespace mlipc
