// Per-atom kernel of the linear least-squares system (mlipc_linear_system): the
// derivatives of the scalar basis functions B_q(i) with respect to the neighbour
// vectors, for every q at once.
//
// The energy is linear in the species and moment coefficients, so the Jacobian of
// (E, F, S) with respect to them is the matrix of the basis functions and their
// derivatives.  Per site:
//   1. dM/dM_basic for every moment, in forward mode through alpha_index_times.  Each
//      moment depends on the components of at most four tensors, so the derivatives
//      are sparse: their patterns (which basic moments) and the position maps of each
//      contraction are worked out once per potential (LinPlan);
//   2. P[alpha][e][j] = dM_alpha / dv_j,e for the basic moments (local, cheap);
//   3. dB_q/dv_j = sum_{alpha in pattern(q)} dB_q/dM_alpha P[alpha][.][j], scattered into
//      the force Jacobian of the configuration; the virial and the force on the central
//      atom come from per-alpha sums over neighbours.
// Cost: sum_q |pattern(q)| * 3 * n multiply-adds per site (n neighbours).
#pragma once

#include <vector>

#include "mtp_kernel.h"

namespace mlipc {

struct LinPlan {
    int nsc = 0;                   // alpha_scalar_moments
    std::vector<int> pat_off;      // nmom + 1: derivatives of moment m at pat_off[m]..pat_off[m+1]
    std::vector<int> pat_idx;      // the basic moment of each stored derivative
    // Per contraction t = {i, j, mult, k}: (src, dst) pairs map_off[t]..map_off[t+1],
    // d[dst] += mult * M_j * d[src] for those before map_mid[t] (src in moment i's
    // derivatives), d[dst] += mult * M_i * d[src] for the rest (src in j's).
    std::vector<int> map_off, map_mid, map;
    explicit LinPlan(const MtpPlan& p);
};

// Values of dB_q/dv summed in registers at a time.
constexpr int kChunk = 16;

// Scratch for one thread.
struct LinWorkspace {
    std::vector<double> dval;  // pat_idx.size(): dM/dM_basic
    std::vector<double> P;     // nbasic blocks of 3 rows: dM_alpha/dv_j,e
    std::vector<double> D;     // one block: dB_q/dv_j,e
    std::vector<double> vt;    // 4 * stride: neighbour vectors as rows x, y, z, then 1/r
    void reserve(const MtpPlan& p, const LinPlan& lp, int stride);
};

// For the site last evaluated by site_energy on ws (any mode; it leaves r, u, f, f', H
// and the moments): atom i of a configuration with n3 = 3 * atoms, neighbours n with
// vectors vec (3 per neighbour) and in-configuration indices nb.  Adds
//   JF[q * n3 + 3a + e] += dF_ae / dw_q   (the force Jacobian, moment coefficients)
//   JS[q * 9 + 3x + y]  += dS_xy / dw_q   (the PlusStress virial, for x <= y only: the
//                                          entries the loss reads)
void site_linear(const MtpPlan& p, const LinPlan& lp, const Workspace& ws, LinWorkspace& lw, int i,
                 int n, const double* vec, const int* nb, int64_t n3, double* JF, double* JS);

}  // namespace mlipc
