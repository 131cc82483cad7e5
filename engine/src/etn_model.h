// The equivariant tensor network (ETN) potential: its hyperparameters, coefficients,
// spec strings and JSON file.  The definition, parameter layout, count formula and
// initialisation are written out in engine/README.md ("ETN").
//
// Site energy of atom i (species t_i):
//   V_i = s[t_i] + h_K,   h_0 = 1,   h_{k+1} = core_k(h_k, x_k)   (k = 0 .. K-1)
// with features A[l][c][m] = sum_j R_{l,c}(r_ij; t_i, t_j) Y_lm(u_ij), core inputs
// x_k[l] = (1 if k < K-1 and l = 0) + the first shape[k][l] channels A[l][c], bond vectors h_k of
// ranks[k-1][L] irreps L = 0..lmax (h_0 and h_K scalar), and
//   h_{k+1}[L'][a'][M'] = sum w_k[(L,l,L')][a][c][a'] <L M; l m | L' M'> h_k[L][a][M] x_k[l][c][m].
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "radial_basis.h"

namespace mlipc {

struct EtnPlan;

// lmax when neither lmax nor a per-l list is given.
constexpr int kEtnDefaultLmax = 2;
// Scale of the pseudo-random default core weights of core k, times 1/sqrt(n_in,k), n_in,k
// = sum over the core's paths of (incoming copies x input channels) (README, "Initialisation").
constexpr double kEtnInitScale = 0.1;

struct EtnModel {
    int species_count = 1;
    int lmax = 2;
    std::vector<std::vector<int>> shape;  // K cores x (lmax + 1): core k reads channels 0..shape[k][l]-1 of order l
    std::vector<std::vector<int>> ranks;  // K - 1 bonds x (lmax + 1): copies of irrep L between cores
    RadialBasis radial;

    std::vector<double> radial_coeffs;       // S * S * n_channels * radial.size, order (t_i, t_j, l, c, xi)
    std::vector<double> species_coeffs;      // S (eV)
    std::vector<std::vector<double>> cores;  // K blocks of coupling weights

    // Index tables derived from the hyperparameters (build() makes them).
    std::shared_ptr<const EtnPlan> plan;

    int n_cores() const { return int(shape.size()); }  // K
    // Throws FormatError naming the first inconsistent hyperparameter.
    void check() const;
    // Checks the hyperparameters and derives the plan; then gives empty coefficients the
    // defaults, or checks that given ones have the plan's sizes.  Throws FormatError
    // naming the first inconsistency.
    void build();
    size_t n_params() const;  // README's formula; 0 before build()
    // Parameter vector: radial coefficients, cores 1 .. K-1, species coefficients, core K.
    void get_params(double* x) const;
    void set_params(const double* x);
    // The documented untrained starting point (deterministic).
    void default_params(double* x) const;
    // Offsets of the groups of the parameter vector, in order: {name, offset, size}.
    struct Group {
        std::string name;
        size_t offset, size;
    };
    std::vector<Group> groups() const;
};

// A per-l list: one value stands for every l = 0..lmax; else exactly lmax + 1 values.
std::vector<int> expand_per_l(const std::vector<int>& v, int lmax, const std::string& what);
// lmax implied by per-l lists (their length - 1), kEtnDefaultLmax when all have one value.
int infer_lmax(const std::vector<std::vector<int>>& shape, const std::vector<std::vector<int>>& ranks);

// "etn species=2 lmax=2 shape=1;6;3 ranks=1;1 radial_basis_size=8 min_dist=2.0 max_dist=5.0"
// (README: per-l lists "6,4,2", the study's "[[1],[6,4,2],[3]]").  Throws FormatError.
EtnModel etn_from_spec(const std::string& spec);
// The JSON file of an ETN potential (README, "The ETN file"): read (IoError, or
// FormatError naming path:line) and write (lossless numbers; IoError).
EtnModel read_etn(const std::string& path);
void write_etn(const EtnModel& m, const std::string& path);
// The object of mlipc_potential_info: kind "etn", settings, groups, linear_groups [].
std::string etn_info_json(const EtnModel& m);

}  // namespace mlipc
