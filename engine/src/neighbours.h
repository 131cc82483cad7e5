// The neighbours of one atom within a potential's cutoff, copied out of a data set's
// neighbour lists into per-thread rows that the site kernels of every model read.
#pragma once

#include <cstdint>
#include <vector>

#include "dataset.h"

namespace mlipc {

struct Neighbours {
    int stride = 0;                // row length: the data set's largest count, padded to 4
    int n = 0;                     // neighbours of the current atom
    std::vector<int> tj;           // species of each neighbour
    std::vector<int> nb;           // its atom index within the configuration
    std::vector<double> vec;       // 3 per neighbour: r_j (+ lattice shift) - r_i, A
    std::vector<double> dv;        // 3 per neighbour: dV/dv_j of a kernel, eV/A
    std::vector<double> delta;     // 3 per neighbour: adjoint direction, A
    std::vector<int> species_off;  // species t at species_off[t] .. species_off[t+1] (grouped gathers)
    std::vector<int> species_next; // scratch of the grouping
    // Sizes the rows for atoms with up to max_neighbours neighbours of species_count species.
    void reserve(int max_neighbours, int species_count);
};

// Copies the neighbours of atom a (a0: first atom of its configuration) closer than
// cutoff into nb and returns their number.  by_species: grouped by species, in list
// order within a species (species_off set), so that per-species-pair coefficients are
// contiguous runs; otherwise in list order.
int gather_neighbours(const Dataset& ds, double cutoff, int64_t a0, int64_t a, bool by_species, Neighbours& nb);

// Adds the site gradient g_j = dV/dv_j (nb.dv) of atom i to the forces F (3 per atom of
// the configuration: F_i += g_j, F_j -= g_j, eV/A) and to the virial S (3x3, MLIP's
// PlusStress: S_xy -= g_j,x v_j,y, eV); either may be null.
void scatter_site_gradient(const Neighbours& nb, int i, double* F, double* S);

}  // namespace mlipc
