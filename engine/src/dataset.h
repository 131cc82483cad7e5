// A training/validation set held by the engine: configurations, labels, and neighbour
// lists within a cutoff built once at creation (memory linear in the number of pairs).
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

}  // namespace mlipc
