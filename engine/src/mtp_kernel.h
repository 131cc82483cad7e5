// Per-atom MTP kernels: the site energy with its derivatives with respect to the
// neighbour vectors, and the loss gradient by the adjoint (directional second
// derivative) method.
//
// For one site energy V(theta; {v_j}) and a direction {delta_j} on the neighbour
// vectors, site_grad accumulates
//     a * dV/dtheta  -  d/deps [dV/dtheta]({v_j + eps * delta_j}) at eps = 0
// into the gradient, computed with dual numbers (value, eps-part) carried through the
// moments and their contractions.  Summed over the sites of a configuration with
// a = 2 wE (E - E*) and delta_ij = 2 wF (dF_j - dF_i) + 2 wS dS r_ij this is exactly
// the gradient of that configuration's loss, at a cost of a few energy+force passes,
// independent of the number of parameters (no force Jacobian is ever formed).
#pragma once

#include <array>
#include <vector>

#include "monomials.h"
#include "mtp_model.h"
#include "radial_basis.h"

namespace mlipc {

// Index tables derived once from a model.
struct MtpPlan {
    int S = 0, nrb = 0, nmu = 0, nbasic = 0, nmom = 0, max_deg = 0;
    Monomials mono;  // of the unit vector, degrees 0..max_deg
    std::vector<int> basic_mu, basic_mono, basic_deg;
    std::vector<int> times;  // 4 per entry {i, j, mult, k}
    std::vector<int> mapping;
    explicit MtpPlan(const MtpModel& m);
};

// Scratch space for one thread; rows of length `stride` (neighbours, padded).
struct Workspace {
    int stride = 0;
    std::vector<double> r, ux, uy, uz, re, uex, uey, uez;
    std::vector<double> Q, dQ, f, df, fe, H, He;
    std::vector<double> mom, mome, adj, adje, A, B, Cx, Cy, Cz, G, Ge, X, Y;
    // Sizes the arrays for the plan and rows of `stride` neighbours (Neighbours::stride).
    void reserve(const MtpPlan& p, int stride);
};

// Site energy of an atom of type ti with n neighbours (types tj[], vectors vec[3n]).
// When dVdv is given, also dV/dv_j (3 per neighbour).  Leaves the forward state (Q, f,
// H, moments, and with dVdv or `adjoint` the moment adjoints dV/dM) in ws.
double site_energy(const MtpModel& m, const MtpPlan& p, Workspace& ws, int ti, int n,
                   const int* tj, const double* vec, double* dVdv, bool adjoint = false);

// Accumulates a * dV/dtheta - D_delta dV/dtheta into grad (n_params), for the site last
// evaluated by site_energy(..., adjoint = true) on the same workspace.
void site_grad(const MtpModel& m, const MtpPlan& p, Workspace& ws, int ti, int n,
               const int* tj, const double* delta, double a, double* grad);

}  // namespace mlipc
