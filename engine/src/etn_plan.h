// Index tables of an ETN derived once from its hyperparameters: radial channels and
// feature offsets, spherical harmonics as monomial combinations, the Clebsch-Gordan
// couplings, and the coupling paths of every core with their weight offsets.
#pragma once

#include <cstddef>
#include <vector>

#include "monomials.h"
#include "spherical.h"

namespace mlipc {

struct EtnModel;

// Largest lmax the engine accepts: the z vectors of the chain live on the stack.
constexpr int kEtnMaxLmax = 8;

// One coupling path (L x l -> L') of a core: a block of rin x nin x rout weights
// w[a][c][a'] (a' fastest) that couple copy a of irrep L of the incoming bond with input
// channel c of order l into copy a' of irrep L' of the outgoing bond.
struct EtnPath {
    int L, l, Lp;
    int rin, nin, rout;
    int hin, hout;  // offsets of h_k[L][0][0] and h_{k+1}[L'][0][0] in the bond array
    int xin;        // first of the nin entries of EtnPlan::xoff (the X index of each channel)
    int cg0, cg1;   // entries of CouplingTable::entries
    size_t w;       // offset of the block in the core's weights
    size_t g;       // offset of the block in the parameter vector
};

struct EtnPlan {
    int S = 1, lmax = 0, K = 0, nrb = 0;
    Monomials mono;
    SphericalHarmonics Y;
    CouplingTable cg;
    // Radial channels, ordered (l, c) with c < max_k shape[k][l] (core k reads the first
    // shape[k][l] of them): their order l and the X index of their m = -l.
    int n_channels = 0;
    std::vector<int> chan_l, chan_x;
    // X = [1, features of every channel]: n_x = 1 + sum_channels (2 l + 1).
    int n_x = 1;
    // Bonds h_0 .. h_K concatenated (h_0 = h_K = one scalar): h_b starts at bond_off[b].
    std::vector<int> bond_off;
    std::vector<int> xoff;
    std::vector<std::vector<EtnPath>> paths;  // per core
    std::vector<size_t> core_size;            // weights of each core
    std::vector<size_t> core_param;           // offset of each core in the parameter vector
    size_t n_radial = 0, species_param = 0, n_params = 0;
    // Throws FormatError when a core has no coupling path (its weights would be empty).
    explicit EtnPlan(const EtnModel& m);
};

}  // namespace mlipc
