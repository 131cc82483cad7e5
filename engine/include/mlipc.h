/*
 * mlipc.h -- the plain C ABI of an interatomic-potential engine.
 *
 * Implemented by the embedded engine of optbench (libmlipc.so) and, with the same
 * symbols, by the MLIP-4 shim in mlip4_patches/.  Design after spglib: opaque
 * handles, every function returns 0 (MLIPC_OK) or an error code, and
 * mlipc_last_error() returns the message of the last failing call on this thread.
 * No C++ types cross the boundary; arrays are caller-owned, C-contiguous, float64
 * unless stated.  Units: Angstrom, eV, eV/Angstrom; stresses are MLIP's
 * `PlusStress` (the virial, eV), order xx yy zz yz xz xy.
 *
 * Loss (over the configurations k listed in idx):
 *   L = sum_k  wE_k (E_k - E*_k)^2
 *            + wF_k sum_i |F_ik - F*_ik|^2
 *            + wS_k sum_{a,b in xyz} (S_k,ab - S*_k,ab)^2      (full 3x3: off-diagonals twice)
 * with per-configuration weights (wE_k, wF_k, wS_k) passed by the caller.  A label that
 * is missing (NaN in the data set) is allowed only where its weight is zero.
 */
#ifndef MLIPC_H
#define MLIPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MLIPC_ABI_VERSION 1

enum mlipc_status {
    MLIPC_OK = 0,
    MLIPC_ERR_ARGUMENT = 1,    /* null pointer, wrong array length, index out of range */
    MLIPC_ERR_IO = 2,          /* a file cannot be opened, read or written */
    MLIPC_ERR_FORMAT = 3,      /* a potential file or spec string is malformed */
    MLIPC_ERR_DATA = 4,        /* data inconsistent with the potential or with itself */
    MLIPC_ERR_NUMERIC = 5,     /* a non-finite value where a finite one is required */
    MLIPC_ERR_MEMORY = 6,      /* allocation failed */
    MLIPC_ERR_UNSUPPORTED = 7, /* valid request this implementation cannot serve */
    MLIPC_ERR_INTERNAL = 99    /* a bug: please report */
};

typedef struct mlipc_potential mlipc_potential; /* opaque */
typedef struct mlipc_dataset mlipc_dataset;     /* opaque */

/* ---- library ------------------------------------------------------------------ */
int mlipc_abi_version(void);               /* MLIPC_ABI_VERSION of the implementation */
const char* mlipc_version(void);           /* implementation name and version, static */
const char* mlipc_last_error(void);        /* message of the last failure on this thread */
int mlipc_set_num_threads(int n);          /* n >= 1; threads of loss_grad, predict, linear_system */
int mlipc_get_num_threads(int* n);

/* ---- potentials --------------------------------------------------------------- */
/* Read an MLIP-2 `.mtp` or MLIP-3 `.almtp` file (a template without coefficients gets
 * the engine's default coefficients, see mlipc_potential_info "defaults"), or an ETN
 * JSON file (engine/README.md, "The ETN file"; recognised by its leading '{'). */
int mlipc_potential_load(const char* path, mlipc_potential** out);
/* Create from a spec string of key=value words, e.g.
 *   "mtp level=16 species=2 min_dist=2.0 max_dist=5.0 radial_basis_size=8"
 *   "mtp template=/path/16.almtp species=3"
 *   "etn species=2 lmax=2 shape=1;6;3 ranks=1;1 radial_basis_size=8 max_dist=5.0"  */
int mlipc_potential_from_spec(const char* spec, mlipc_potential** out);
/* Write the potential; the format follows the extension: .mtp or .almtp for an MTP,
 * .json for an ETN (another extension: MLIPC_ERR_ARGUMENT). */
int mlipc_potential_save(const mlipc_potential* pot, const char* path);
void mlipc_potential_free(mlipc_potential* pot);
int mlipc_potential_n_params(const mlipc_potential* pot, int64_t* n);
int mlipc_potential_get_params(const mlipc_potential* pot, double* x, int64_t n);
int mlipc_potential_set_params(mlipc_potential* pot, const double* x, int64_t n);
/* Engine defaults of the parameter vector (the untrained starting point). */
int mlipc_potential_default_params(const mlipc_potential* pot, double* x, int64_t n);
/* A JSON object describing the potential: kind ("mtp" or "etn"), species_count, cutoff,
 * min_dist, scaling, sizes, "groups": [{"name","offset","size"}] of the parameter vector
 * in order, "linear_groups" (the trailing groups the predictions are linear and homogeneous in:
 * mlipc_linear_system's; an ETN's species coefficients and last core), and
 * for an MTP "notes": what reading its file passed over (MLIP's #MVS selection section,
 * comment lines), empty when nothing was.
 * Writes at most bufsize bytes (NUL-terminated); *needed gets the full length + 1. */
int mlipc_potential_info(const mlipc_potential* pot, char* buf, size_t bufsize, size_t* needed);
/* Scalar settings outside the parameter vector: "scaling", "min_dist", "max_dist". */
int mlipc_potential_get_scalar(const mlipc_potential* pot, const char* name, double* value);
int mlipc_potential_set_scalar(mlipc_potential* pot, const char* name, double value);

/* ---- data sets ---------------------------------------------------------------- */
/* n_cfg configurations; n_atoms[k] atoms in configuration k, atoms of all
 * configurations concatenated in positions (3 per atom) and types (0-based).
 * cells: 9 per configuration, lattice vectors as rows; periodic[k] = 0 for a molecule
 * (its cell ignored).  Neighbour lists within `cutoff` are built once, here, with every
 * periodic image (an atom sees its own images in cells smaller than the cutoff). */
int mlipc_dataset_create(int64_t n_cfg, const int64_t* n_atoms, const double* cells,
                         const int32_t* periodic, const double* positions,
                         const int32_t* types, double cutoff, mlipc_dataset** out);
/* Reference labels: energies (n_cfg), forces (3 per atom), stresses (6 per
 * configuration).  NULL leaves that label missing; NaN marks one missing entry. */
int mlipc_dataset_set_labels(mlipc_dataset* ds, const double* energies,
                             const double* forces, const double* stresses);
/* Move the atoms of every configuration, keeping the neighbour list: the SAME atoms
 * (count, order, types) at new positions (3 per atom, all configurations, as in
 * mlipc_dataset_create) in new cells (9 per configuration, rows = lattice vectors;
 * ignored for molecules, and cells may be NULL when no configuration is periodic).
 * Each stored pair's vector is recomputed as r_j + n . cell - r_i with the integer
 * lattice image n it was found with at creation (not stored: recovered exactly from the
 * stored vector and the positions and cell it was computed from); no pair is added or
 * dropped, so positions are NOT to be wrapped back into the cell in between (a pair
 * keeps its image only while the coordinates of its atoms change continuously).
 * Updating to the creation's geometry reproduces its vectors bit for bit.  Labels stay
 * as they were.  The caller guarantees that the list is still complete: every pair now
 * closer than the potential's cutoff rc was closer than the data set's cutoff at
 * creation.
 * That holds when the data set was created with cutoff rc + skin and, with
 * F = cell_0^-1 cell the cell's deformation since creation (cell_0, r0: the geometry at
 * creation) and d_i = r_i - r0_i F each atom's move relative to it,
 *     2 max_i |d_i| + (1 - sigma_min(F)) (rc + skin) <= skin
 * (sigma_min: the smallest singular value; a pair with |v0| >= rc + skin has
 * |v| >= sigma_min |v0| - 2 max|d| >= rc).  The call cannot check this.
 * Cost: two passes over the stored pairs (check, then write), no neighbour search;
 * every data set keeps its atoms' positions for this, 24 bytes an atom next to the
 * list's 28 bytes a pair, and the call itself uses 12 bytes a pair of scratch memory
 * until it returns (engine/README.md "Neighbour lists").  Errors: NULL ds or positions,
 * or NULL cells with a periodic configuration: MLIPC_ERR_ARGUMENT; a non-finite position
 * or cell entry: MLIPC_ERR_NUMERIC; two atoms (or images) at the same point, a
 * zero-volume cell: MLIPC_ERR_DATA; on any error the data set is unchanged.  Added
 * after ABI version 1 without a bump (a new symbol breaks no caller): a caller that must
 * run on an older implementation looks the symbol up and otherwise creates a new data
 * set. */
int mlipc_dataset_update_positions(mlipc_dataset* ds, const double* cells, const double* positions);
void mlipc_dataset_free(mlipc_dataset* ds);
int mlipc_dataset_size(const mlipc_dataset* ds, int64_t* n_cfg, int64_t* n_atoms,
                       int64_t* n_pairs);

/* ---- evaluation --------------------------------------------------------------- */
/* Energies (n_idx), forces (3 per atom of the listed configurations, in idx order)
 * and stresses (6 per configuration) for configurations idx[0..n_idx).  Any output
 * may be NULL.  idx == NULL means all configurations in order. */
int mlipc_predict(const mlipc_potential* pot, const mlipc_dataset* ds,
                  const int64_t* idx, int64_t n_idx,
                  double* energies, double* forces, double* stresses);
/* Loss (header comment) and its gradient over the parameter vector (grad may be NULL
 * for the loss alone).  weights: 3 per configuration of the whole data set (wE, wF,
 * wS), indexed by configuration, not by position in idx.  idx == NULL: all. */
int mlipc_loss_grad(const mlipc_potential* pot, const mlipc_dataset* ds,
                    const int64_t* idx, int64_t n_idx, const double* weights,
                    double* loss, double* grad);
/* J^T u for the Jacobian J of the predictions of mlipc_predict (energies, forces,
 * PlusStress) of configurations idx (NULL: all, in order) with respect to the parameter
 * vector: grad (n_params) = sum over the listed configurations of
 *     u_energy[q] dE_q/dx + sum_atoms u_forces . dF/dx + u_stress[q] . dS_q/dx,
 * with u_forces packed like mlipc_predict's forces (3 per atom of the listed
 * configurations, in idx order) and u_stress 6 per configuration (xx yy zz yz xz xy).
 * Any of u_energy, u_forces, u_stress may be NULL (zero).  One adjoint pass, the cost of
 * mlipc_loss_grad; with u the weighted residuals 2 w (prediction - label) it is that
 * gradient.  Gauss-Newton and Levenberg-Marquardt methods use it with J v products. */
int mlipc_jt_product(const mlipc_potential* pot, const mlipc_dataset* ds,
                     const int64_t* idx, int64_t n_idx, const double* u_energy,
                     const double* u_forces, const double* u_stress, double* grad);
/* The loss of mlipc_loss_grad as a quadratic in the linear parameters c, the species
 * then moment coefficients (the last n_lin = S + alpha_scalar_moments entries of the
 * parameter vector, groups "species" and "moment" of mlipc_potential_info), at the
 * radial coefficients of pot as set:
 *     L(c) = c^T A c - 2 b^T c + r0,
 * the normal equations of that linear least-squares problem: A (n_lin x n_lin,
 * row-major, symmetric, positive semi-definite), b (n_lin), r0 = L(0).  weights and idx
 * as in mlipc_loss_grad, with the same checks (a missing label is allowed only under a
 * zero weight, which skips its term).
 * Sizes: *n_lin is in/out.  With A, b and r0 all NULL the call only writes *n_lin
 * (ds, idx and weights are not read).  Otherwise *n_lin must hold the n_lin that A and b
 * were allocated for; a different value fails with MLIPC_ERR_ARGUMENT and *n_lin gets
 * the right one.  Any one of A, b, r0 may be NULL to skip it.
 * Deterministic like loss_grad: equal for a given thread count, and equal to rounding
 * across thread counts.  MTP only: for an ETN (linear in its trailing groups too, but
 * without a kernel that assembles them) the size query answers and a call with outputs
 * gives MLIPC_ERR_UNSUPPORTED. */
int mlipc_linear_system(const mlipc_potential* pot, const mlipc_dataset* ds,
                        const int64_t* idx, int64_t n_idx, const double* weights,
                        int64_t* n_lin, double* A, double* b, double* r0);
/* The design of that linear problem: the Jacobian of the predictions of mlipc_predict
 * (configurations idx, NULL: all) with respect to the n_lin linear parameters, row-major
 * with n_lin columns: dE (n_idx rows), dF (3 per atom of the listed configurations, in
 * idx order, packed like mlipc_predict's forces), dS (6 per configuration, xx yy zz yz xz
 * xy).  The predictions are linear and homogeneous in these parameters, so they equal
 * [dE; dF; dS] c exactly; no labels or weights are read.  Any output may be NULL; *n_lin
 * is in/out as in mlipc_linear_system (all three NULL: size query).  The cost of one
 * mlipc_linear_system; a QR of the design solves the linear block to full precision,
 * where the normal equations lose half the digits of an ill-conditioned basis.  MTP
 * only, like mlipc_linear_system. */
int mlipc_linear_design(const mlipc_potential* pot, const mlipc_dataset* ds,
                        const int64_t* idx, int64_t n_idx, int64_t* n_lin,
                        double* dE, double* dF, double* dS);

#ifdef __cplusplus
}
#endif
#endif /* MLIPC_H */
