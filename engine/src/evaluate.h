// MTP over a data set: energies, forces, stresses, the loss with its gradient (through
// the shared loops of config_loop.h), and the linear least-squares system.
#pragma once

#include <cstdint>

#include "dataset.h"
#include "mtp_model.h"

namespace mlipc {

// Outputs packed in idx order; any pointer may be null.
void predict(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
             double* energies, double* forces, double* stresses);

// Loss of mlipc.h and its gradient (grad may be null).  Deterministic for a given
// number of threads: configurations are dealt to threads in a fixed pattern and the
// per-thread sums are added in thread order.
double loss_grad(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
                 const double* weights, double* grad);

// J^T u of the predictions' Jacobian (config_loop.h: jt_product_configs).
void jt_product(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx, const double* uE,
                const double* uF, const double* uS, double* grad);

// Number of linear parameters: species coefficients then moment coefficients, the last
// S + alpha_scalar_moments entries of the parameter vector.
int64_t n_linear(const MtpModel& m);

// Normal equations of the loss in the linear parameters c at the model's radial
// coefficients: loss(c) = c^T A c - 2 b^T c + r0, with A (n_linear^2, row-major,
// symmetric), b (n_linear) and r0 = loss(0).  Any output may be null.  Same checks,
// weights and determinism as loss_grad.
void linear_system(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
                   const double* weights, double* A, double* b, double* r0);

// The Jacobian of the predictions of configurations idx with respect to the linear
// parameters (mlipc_linear_design): dE (n_idx x n_linear), dF (3 per atom x n_linear),
// dS (6 per configuration x n_linear), row-major, packed like predict; any may be null.
// The predictions are linear and homogeneous in these parameters: predict = design * c.
void linear_design(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx, double* dE, double* dF,
                   double* dS);

}  // namespace mlipc
