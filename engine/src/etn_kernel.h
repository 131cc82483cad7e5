// Per-atom ETN kernels: the site energy with dV/dv_j, and the adjoint loss gradient
//     a * dV/dtheta - d/deps [dV/dtheta]({v_j + eps * delta_j}) at eps = 0
// for one site (the contract of mtp_kernel.h, for ETN).  Neighbours must come grouped
// by species (Neighbours::species_off): the radial functions are then small dense
// products over each species' neighbours.
#pragma once

#include <vector>

#include "etn_chain.h"
#include "etn_model.h"
#include "etn_plan.h"
#include "neighbours.h"

namespace mlipc {

// Scratch space for one thread; rows of length `stride` (neighbours, padded).
struct EtnWorkspace {
    int stride = 0;
    std::vector<double> r, ux, uy, uz, re, uex, uey, uez, A, B, Cx, Cy, Cz, Xr, Yr;
    std::vector<double> Q, dQ;    // radial basis, [xi][j]
    std::vector<double> R, dR;    // radial functions, [channel][j]
    std::vector<double> H;        // monomials of u, [q][j]
    std::vector<double> Y, Ye;    // spherical harmonics and their eps-parts, [lm][j]
    std::vector<double> dY;       // dY_lm/du_d, [3 lm + d][j]
    std::vector<double> Bm;       // dV/dY_lm(u_j), [lm][j]
    std::vector<double> X, Xbar, h, hbar;  // the chain in doubles
    std::vector<Dual> Xd, Xbd, hd, hbd;    // the chain in dual numbers
    // Sizes every array for the plan and rows of `stride` neighbours (Neighbours::stride).
    void reserve(const EtnPlan& p, int stride);
};

// Site energy (eV) of an atom of species ti with the neighbours nb (nb.dv unused).  With
// dVdv, also dV/dv_j (eV/A, 3 per neighbour).
double etn_site_energy(const EtnModel& m, EtnWorkspace& ws, int ti, const Neighbours& nb, double* dVdv);

// The per-neighbour state and the features of the site that etn_site_grad reads (the
// chain itself runs there, in dual numbers).
void etn_prepare_grad(const EtnModel& m, EtnWorkspace& ws, int ti, const Neighbours& nb);

// Adds a * dV/dtheta - D_delta dV/dtheta to grad (n_params) for the site last given to
// etn_prepare_grad on ws; delta: 3 per neighbour (A).
void etn_site_grad(const EtnModel& m, EtnWorkspace& ws, int ti, const Neighbours& nb, const double* delta, double a,
                   double* grad);

}  // namespace mlipc
