// A training/validation set held by the engine: configurations, labels, and neighbour
// lists within a cutoff built once at creation (memory linear in the number of pairs:
// 28 bytes a pair, plus 24 bytes an atom for the positions the pairs were computed from).
#pragma once

#include <cstdint>
#include <vector>

namespace mlipc {

struct Dataset {
    double cutoff = 0.0;
    int64_t n_cfg = 0;
    std::vector<int64_t> atom_offset;   // n_cfg + 1: first atom of each configuration
    std::vector<int32_t> types;         // per atom
    std::vector<int32_t> periodic;      // per configuration
    std::vector<double> cells;          // 9 per configuration (rows = lattice vectors)
    // Full neighbour list (both directions), per atom in CSR form: pairs of atom a are
    // pair_offset[a] .. pair_offset[a+1]; nbr[p] is the neighbour's index within its
    // configuration, vec[3p..3p+2] = r_j (+ lattice shift) - r_i.
    std::vector<int64_t> pair_offset;   // n_atoms + 1
    std::vector<int32_t> nbr;
    std::vector<double> vec;
    // 3 per atom: the positions vec was computed from (at creation, then at each
    // update_positions), with cells above.  update_positions recovers each pair's integer
    // lattice image n from vec, these positions and the cell instead of storing it per
    // pair: 24 bytes an atom rather than 12 bytes a pair (~40 pairs an atom at 5 A).
    std::vector<double> positions;
    int max_neighbours = 0;
    int max_atoms = 0;
    int max_type = -1;

    std::vector<double> energies;  // n_cfg, NaN where missing
    std::vector<double> forces;    // 3 per atom, NaN where missing
    std::vector<double> stresses;  // 6 per configuration, NaN where missing
    std::vector<uint8_t> has_energy, has_forces, has_stress;  // per configuration

    int64_t n_atoms() const { return atom_offset.empty() ? 0 : atom_offset.back(); }
    int64_t n_pairs() const { return int64_t(nbr.size()); }
    int atoms_in(int64_t k) const { return int(atom_offset[k + 1] - atom_offset[k]); }
};

// Throws EngineError (naming the configuration and atom) on bad input.
Dataset build_dataset(int64_t n_cfg, const int64_t* n_atoms, const double* cells,
                      const int32_t* periodic, const double* positions, const int32_t* types,
                      double cutoff);
void set_labels(Dataset& ds, const double* energies, const double* forces, const double* stresses);

// Recomputes every stored pair vector from new positions (3 per atom) and cells (9 per
// configuration; may be null when no configuration is periodic) of the same atoms:
// vec = r_j + n . cell - r_i with each pair's image n, recovered exactly from the stored
// vec, positions and cells (which are then replaced by the new ones).  The pair list
// itself is kept: pairs are neither added nor dropped.  Throws (numeric_error for
// non-finite values, data_error for atoms that now overlap or a zero-volume cell) before
// changing anything, so the data set is unchanged on error.
void update_positions(Dataset& ds, const double* cells, const double* positions);

}  // namespace mlipc
