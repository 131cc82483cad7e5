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

// r_j + n . L - r_i for the lattice image n (rows of L = lattice vectors).  Building and
// update_positions share it, so that updating to the build's own positions reproduces
// the built vectors bit for bit.
inline void image_vector(const double* ri, const double* rj, const double* L, const int32_t* n, double* v) {
    for (int e = 0; e < 3; ++e) v[e] = (rj[e] - ri[e]) + n[0] * L[e] + n[1] * L[3 + e] + n[2] * L[6 + e];
}

std::string where(int64_t k, int64_t i) {
    return "configuration " + std::to_string(k) + ", atom " + std::to_string(i);
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
                        const int32_t shift[3] = {n0, n1, n2};
                        double v[3];
                        image_vector(ri, rj, L, shift, v);
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
    // Kept for update_positions, which recovers each pair's lattice image from them.
    ds.positions.assign(positions, positions + 3 * na);
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

namespace {

// Columns of the inverse of L (rows = lattice vectors), as rows: inv[3d..3d+2] =
// (L_{d+1} x L_{d+2}) / vol, so that the fractional coordinates of a vector s are
// f_d = inv_d . s (s = f . L).  Returns vol.
double inverse_rows(const double* L, double* inv) {
    const Vec3 c[3] = {cross(L + 3, L + 6), cross(L + 6, L), cross(L, L + 3)};
    const double vol = L[0] * c[0].x + L[1] * c[0].y + L[2] * c[0].z;
    for (int d = 0; d < 3; ++d) {
        inv[3 * d] = c[d].x / vol;
        inv[3 * d + 1] = c[d].y / vol;
        inv[3 * d + 2] = c[d].z / vol;
    }
    return vol;
}

// The integer lattice image n of a stored pair, from its vector v = fl(r_j + n . L - r_i)
// (image_vector), the positions ri, rj and the cell L it was computed from, as
// n_d = round(inv_d . (v - (r_j - r_i))).  Exact: r_j - r_i is recomputed from the same
// stored doubles by the same operation, so it is the very d image_vector added to; v
// then differs from d + n . L by image_vector's rounding (six operations, each within
// u = 1.1e-16 relative), at most ~6u (|d| + sum_e |n_e| |L_e|), and the subtraction
// adds u |v - d|.  inv_d has norm 1/h_d (h_d: the spacing of the lattice planes d) and
// is itself computed to a few u relative, so inv_d . (v - d) is n_d to within about
// 1e-15 (|d| + sum_e |n_e| |L_e|) / h_d + 1e-15 |n_d|: ~1e-13 for coordinates and
// cells of 10-100 A with h_d of a few A, far below 1/2, so rounding gives n_d exactly
// unless the cell is degenerate (h_d below ~1e-14 of the coordinates).  Creation and
// update reject zero-volume cells; as a guard against a numerically degenerate one, a
// value more than 1e-6 from an integer is refused (data_error) rather than rounded.
bool recover_image(const double* ri, const double* rj, const double* inv, const double* v, int32_t* n) {
    const double s[3] = {v[0] - (rj[0] - ri[0]), v[1] - (rj[1] - ri[1]), v[2] - (rj[2] - ri[2])};
    for (int d = 0; d < 3; ++d) {
        const double f = inv[3 * d] * s[0] + inv[3 * d + 1] * s[1] + inv[3 * d + 2] * s[2];
        const double r = std::nearbyint(f);
        if (!(std::fabs(f - r) <= 1e-6) || !(std::fabs(r) < 1e9)) return false;
        n[d] = int32_t(r);
    }
    return true;
}

}  // namespace

void update_positions(Dataset& ds, const double* cells, const double* positions) {
    if (!positions) throw argument_error("positions must not be NULL");
    for (int64_t k = 0; k < ds.n_cfg; ++k) {
        if (!ds.periodic[k]) continue;
        if (!cells) throw argument_error("cells must not be NULL for periodic configurations");
        for (int e = 0; e < 9; ++e)
            if (!std::isfinite(cells[9 * k + e]))
                throw numeric_error("configuration " + std::to_string(k) + ": non-finite cell");
        // The next update recovers the images from this cell (as creation requires).
        double inv[9];
        if (!(std::fabs(inverse_rows(cells + 9 * k, inv)) > 1e-10))
            throw data_error("configuration " + std::to_string(k) + ": the cell has zero volume");
    }
    for (int64_t k = 0; k < ds.n_cfg; ++k)
        for (int64_t a = ds.atom_offset[k]; a < ds.atom_offset[k + 1]; ++a)
            for (int e = 0; e < 3; ++e)
                if (!std::isfinite(positions[3 * a + e]))
                    throw numeric_error(where(k, a - ds.atom_offset[k]) + ": non-finite position");
    // Two passes, check then write, so that a failing call leaves the data set as it was
    // (a half-updated list would silently mix two geometries).  The check pass recovers
    // each pair's image n from the stored vector, positions and cell (recover_image) into
    // a scratch array that lives only during this call (12 bytes a pair, freed on return:
    // recovering n again in the write pass instead costs ~1.7x the time of the call; no
    // data set holds per-pair images), and checks the new vector; the write pass
    // computes the new vectors from those images, then the stored positions and cells
    // are replaced.  The new vector comes from image_vector, the expression creation
    // uses, so updating to the build's geometry reproduces it bit for bit.  Molecules:
    // n = 0 and vec = r_j - r_i, as at creation.
    const double* old = ds.positions.data();
    std::vector<int32_t> image(3 * size_t(ds.n_pairs()));
    for (int64_t k = 0; k < ds.n_cfg; ++k) {
        const int64_t a0 = ds.atom_offset[k];
        const bool pbc = ds.periodic[k] != 0;
        const double* L = pbc ? cells + 9 * k : nullptr;
        double inv[9] = {0};
        if (pbc) inverse_rows(&ds.cells[9 * k], inv);
        for (int64_t a = a0; a < ds.atom_offset[k + 1]; ++a) {
            const double* ri = positions + 3 * a;
            for (int64_t p = ds.pair_offset[a]; p < ds.pair_offset[a + 1]; ++p) {
                const int64_t b = a0 + ds.nbr[p];
                const double* rj = positions + 3 * b;
                double v[3];
                int32_t* n = &image[3 * p];
                if (pbc) {
                    if (!recover_image(old + 3 * a, old + 3 * b, inv, &ds.vec[3 * p], n))
                        throw data_error("configuration " + std::to_string(k) +
                                         ": the stored cell is too close to degenerate to recover the "
                                         "lattice image of the pair of atoms " +
                                         std::to_string(a - a0) + " and " + std::to_string(ds.nbr[p]) +
                                         "; create a new data set");
                    image_vector(ri, rj, L, n, v);
                } else {
                    for (int e = 0; e < 3; ++e) v[e] = rj[e] - ri[e];
                }
                if (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < 1e-20)
                    throw data_error(where(k, a - a0) + " and atom " + std::to_string(ds.nbr[p]) +
                                     " (or a periodic image) overlap at the new positions");
            }
        }
    }
    for (int64_t k = 0; k < ds.n_cfg; ++k) {
        const int64_t a0 = ds.atom_offset[k];
        const bool pbc = ds.periodic[k] != 0;
        const double* L = pbc ? cells + 9 * k : nullptr;
        for (int64_t a = a0; a < ds.atom_offset[k + 1]; ++a) {
            const double* ri = positions + 3 * a;
            for (int64_t p = ds.pair_offset[a]; p < ds.pair_offset[a + 1]; ++p) {
                const double* rj = positions + 3 * (a0 + ds.nbr[p]);
                double* v = &ds.vec[3 * p];
                if (pbc) image_vector(ri, rj, L, &image[3 * p], v);
                else for (int e = 0; e < 3; ++e) v[e] = rj[e] - ri[e];
            }
        }
    }
    std::copy(positions, positions + 3 * ds.n_atoms(), ds.positions.begin());
    for (int64_t k = 0; k < ds.n_cfg; ++k)
        if (ds.periodic[k]) std::copy(cells + 9 * k, cells + 9 * k + 9, &ds.cells[9 * k]);
}

}  // namespace mlipc
