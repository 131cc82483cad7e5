// Configuration-level evaluation over a data set: energies, forces, stresses, and the
// loss with its gradient, parallel over configurations.
#pragma once

#include <cstdint>

#include "dataset.h"
#include "mtp_model.h"

namespace mlipc {

void set_threads(int n);
int get_threads();

// Throws EngineError when the data set does not fit the potential (cutoff, species).
void check_compatible(const MtpModel& m, const Dataset& ds);

// Outputs packed in idx order; any pointer may be null.
void predict(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
             double* energies, double* forces, double* stresses);

// Loss of mlipc.h and its gradient (grad may be null).  Deterministic for a given
// number of threads: configurations are dealt to threads in a fixed pattern and the
// per-thread sums are added in thread order.
double loss_grad(const MtpModel& m, const Dataset& ds, const int64_t* idx, int64_t n_idx,
                 const double* weights, double* grad);

}  // namespace mlipc
