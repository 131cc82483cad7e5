// The Moment Tensor Potential as MLIP-2/3 define it: its hyperparameters, its basis
// (moment definitions and contractions) and its coefficients.
//
// Site energy of atom i (type t_i):
//   V_i = species_coeffs[t_i] + sum_k moment_coeffs[k] * M_{mapping[k]}(i)
// Basic moments (one per tensor component):
//   M_alpha(i) = sum_j f_mu(r_ij; t_i, t_j) * x^a y^b z^c / r^(a+b+c),  alpha = {mu, a, b, c}
// Radial functions: f_mu(r) = sum_xi c[t_i][t_j][mu][xi] * Q_xi(r),
//   Q_xi(r) = scaling * T_xi(ksi) * (max_dist - r)^2,  ksi = (2r - min - max) / (max - min)
// Contractions (alpha_index_times, in order): M_k += mult * M_i * M_j.
// Parameter vector (MLIP-3's Coeff() layout): radial coefficients
// [(t_i * S + t_j) * n_mu * n_rb + mu * n_rb + xi], then species coefficients (S), then
// moment coefficients (alpha_scalar_moments).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "radial_basis.h"

namespace mlipc {

struct MtpModel {
    int species_count = 1;
    RadialBasis radial;  // RBChebyshev: size, min_dist, max_dist (the cutoff), scaling
    int radial_funcs_count = 1;
    int level = 0;  // 0 when unknown (a potential read from a file)
    std::string potential_name = "MTP1m";
    std::string version = "1.1.0";

    std::vector<std::array<int, 4>> alpha_index_basic;  // {mu, a, b, c}
    std::vector<std::array<int, 4>> alpha_index_times;  // {i, j, mult, k}
    std::vector<int> alpha_moment_mapping;
    int alpha_moments_count = 0;

    std::vector<double> radial_coeffs;   // size S*S*n_mu*n_rb
    std::vector<double> species_coeffs;  // size S
    std::vector<double> moment_coeffs;   // size alpha_scalar_moments

    // What reading the file passed over, one line each ("FILE:LINE: ..."): comment lines
    // skipped, MLIP's #MVS selection section not read.  Empty for a potential built from
    // a level spec; never written to a file.
    std::vector<std::string> notes;

    size_t n_radial() const {
        return size_t(species_count) * species_count * radial_funcs_count * radial.size;
    }
    size_t n_params() const {
        return n_radial() + size_t(species_count) + alpha_moment_mapping.size();
    }
    void get_params(double* x) const;
    void set_params(const double* x);
    // The engine's untrained starting point: every species pair gets the same radial
    // functions f_mu = Q_mu / (max_dist - min_dist)^2 (distinct, |f_mu| <= scaling),
    // zero species and moment coefficients.  Objective.initial_params perturbs this.
    void default_params(double* x) const;
    void resize_coeffs_to_defaults();
    // Throws std::runtime_error describing the first inconsistency.
    void check() const;
};

// Read an MLIP-2 `.mtp` / MLIP-3 `.almtp` file.  Throws FormatError / IoError.
// Reading stops at a line beginning with `#MVS` (MLIP's maxvol active-learning selection
// state, which `mlp train` appends to every potential it saves: a few text lines, then
// binary data; MLIP's own reader stops there too); any other line beginning with `#` is
// a comment and skipped.  Both leave a note in MtpModel::notes.
MtpModel read_mtp(const std::string& path);
void write_mtp(const MtpModel& m, const std::string& path);
// "mtp level=16 species=2 ..." or "mtp template=PATH species=2 ..."
MtpModel mtp_from_spec(const std::string& spec);
std::string mtp_info_json(const MtpModel& m);

}  // namespace mlipc
