// The untrained MTP basis of a given level, generated without any template file.
//
// A scalar basis function is a product of moment tensors M_{mu,nu} (radial function mu,
// tensor rank nu, level 2 + 4 mu + nu) whose indices are all contracted between
// different tensors, i.e. a loopless multigraph whose nodes are the tensors (node degree
// = nu).  The level-L basis holds every such function, up to graph isomorphism, with
//   total level <= L,   at most 4 tensors,   nu <= 10,   mu <= min(5, (L - 2) / 4).
// These are the rules MLIP-3's shipped templates (levels 6..28) follow: the generated
// basis has the same scalar functions (not in the same order) and the same radial
// function count, see engine/README.md.
#pragma once

#include <array>
#include <vector>

namespace mlipc {

struct MtpBasis {
    int level = 0;
    int radial_funcs_count = 0;
    std::vector<std::array<int, 4>> alpha_index_basic;  // {mu, a, b, c}
    std::vector<std::array<int, 4>> alpha_index_times;  // {i, j, mult, k}: M_k += mult M_i M_j
    std::vector<int> alpha_moment_mapping;              // moment index of each scalar
    int alpha_moments_count = 0;
};

constexpr int kMtpMinLevel = 2;
constexpr int kMtpMaxLevel = 28;

// Builds the level-`level` basis (an even level in 2..28); throws std::invalid_argument
// for any other level.  Deterministic: the same level always gives the same arrays.
MtpBasis generate_mtp_basis(int level);

}  // namespace mlipc
