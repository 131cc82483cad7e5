// The C ABI of mlipc.h over the embedded engine: argument checks, exceptions turned
// into status codes, the thread-local error message.
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "config_loop.h"
#include "dataset.h"
#include "errors.h"
#include "mlipc.h"
#include "mlipc_export.h"
#include "potential.h"

struct mlipc_potential {
    std::unique_ptr<mlipc::Potential> model;
};
struct mlipc_dataset {
    mlipc::Dataset ds;
};

namespace {

thread_local std::string g_last_error;

int fail(int code, const std::string& msg) {
    g_last_error = msg;
    return code;
}

template <class F>
int guarded(F&& f) {
    try {
        f();
        g_last_error.clear();
        return MLIPC_OK;
    } catch (const mlipc::EngineError& e) {
        return fail(e.code, e.what());
    } catch (const std::bad_alloc&) {
        return fail(MLIPC_ERR_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return fail(MLIPC_ERR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return fail(MLIPC_ERR_INTERNAL, "internal error: unknown exception");
    }
}

void need(const void* p, const char* name) {
    if (!p) throw mlipc::argument_error(std::string(name) + " must not be NULL");
}

void check_length(const mlipc_potential* pot, int64_t n) {
    need(pot, "pot");
    if (n != int64_t(pot->model->n_params()))
        throw mlipc::argument_error("parameter vector has length " + std::to_string(n) + " but the potential has " +
                                    std::to_string(pot->model->n_params()) + " parameters");
}

// The *n_lin protocol of mlipc_linear_system and mlipc_linear_design: without outputs,
// write the size and return false (a size query); with outputs, check that *n_lin holds
// it (else ArgumentError, with the right size written back) and return true.
bool linear_size(const mlipc_potential* pot, int64_t* n_lin, bool outputs, const char* how) {
    need(pot, "pot");
    need(n_lin, "n_lin");
    const int64_t nl = pot->model->n_linear();
    if (!outputs) {
        *n_lin = nl;
        return false;
    }
    if (*n_lin != nl) {
        const int64_t given = *n_lin;
        *n_lin = nl;
        throw mlipc::argument_error("n_lin is " + std::to_string(given) + " but the potential has " +
                                    std::to_string(nl) + " linear parameters: size " + how);
    }
    return true;
}

}  // namespace

extern "C" {

MLIPC_API int mlipc_abi_version(void) { return MLIPC_ABI_VERSION; }
MLIPC_API const char* mlipc_version(void) { return "optbench embedded engine 0.2.0 (MTP, ETN)"; }
MLIPC_API const char* mlipc_last_error(void) { return g_last_error.c_str(); }

MLIPC_API int mlipc_set_num_threads(int n) {
    return guarded([&] { mlipc::set_threads(n); });
}
MLIPC_API int mlipc_get_num_threads(int* n) {
    return guarded([&] { need(n, "n"); *n = mlipc::get_threads(); });
}

MLIPC_API int mlipc_potential_load(const char* path, mlipc_potential** out) {
    return guarded([&] {
        need(path, "path");
        need(out, "out");
        *out = nullptr;
        *out = new mlipc_potential{mlipc::load_potential(path)};
    });
}

MLIPC_API int mlipc_potential_from_spec(const char* spec, mlipc_potential** out) {
    return guarded([&] {
        need(spec, "spec");
        need(out, "out");
        *out = nullptr;
        *out = new mlipc_potential{mlipc::potential_from_spec(spec)};
    });
}

MLIPC_API int mlipc_potential_save(const mlipc_potential* pot, const char* path) {
    return guarded([&] {
        need(pot, "pot");
        need(path, "path");
        pot->model->save(path);
    });
}

MLIPC_API void mlipc_potential_free(mlipc_potential* pot) { delete pot; }

MLIPC_API int mlipc_potential_n_params(const mlipc_potential* pot, int64_t* n) {
    return guarded([&] {
        need(pot, "pot");
        need(n, "n");
        *n = int64_t(pot->model->n_params());
    });
}

MLIPC_API int mlipc_potential_get_params(const mlipc_potential* pot, double* x, int64_t n) {
    return guarded([&] {
        check_length(pot, n);
        need(x, "x");
        pot->model->get_params(x);
    });
}

MLIPC_API int mlipc_potential_set_params(mlipc_potential* pot, const double* x, int64_t n) {
    return guarded([&] {
        check_length(pot, n);
        need(x, "x");
        for (int64_t q = 0; q < n; ++q)
            if (!std::isfinite(x[q]))
                throw mlipc::numeric_error("parameter " + std::to_string(q) + " is not finite");
        pot->model->set_params(x);
    });
}

MLIPC_API int mlipc_potential_default_params(const mlipc_potential* pot, double* x, int64_t n) {
    return guarded([&] {
        check_length(pot, n);
        need(x, "x");
        pot->model->default_params(x);
    });
}

MLIPC_API int mlipc_potential_info(const mlipc_potential* pot, char* buf, size_t bufsize, size_t* needed) {
    return guarded([&] {
        need(pot, "pot");
        std::string s = pot->model->info_json();
        if (needed) *needed = s.size() + 1;
        if (buf && bufsize) {
            size_t n = std::min(bufsize - 1, s.size());
            std::memcpy(buf, s.data(), n);
            buf[n] = '\0';
        }
    });
}

MLIPC_API int mlipc_potential_get_scalar(const mlipc_potential* pot, const char* name, double* value) {
    return guarded([&] {
        need(pot, "pot");
        need(name, "name");
        need(value, "value");
        mlipc::RadialBasis rb = pot->model->radial();
        *value = mlipc::radial_setting(rb, name);
    });
}

MLIPC_API int mlipc_potential_set_scalar(mlipc_potential* pot, const char* name, double value) {
    return guarded([&] {
        need(pot, "pot");
        need(name, "name");
        std::string k(name);
        if (!std::isfinite(value)) throw mlipc::numeric_error("setting '" + k + "' must be finite");
        mlipc::RadialBasis rb = pot->model->radial();
        mlipc::radial_setting(rb, k) = value;
        pot->model->set_radial(rb);
    });
}

MLIPC_API int mlipc_dataset_create(int64_t n_cfg, const int64_t* n_atoms, const double* cells,
                                   const int32_t* periodic, const double* positions,
                                   const int32_t* types, double cutoff, mlipc_dataset** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        *out = new mlipc_dataset{mlipc::build_dataset(n_cfg, n_atoms, cells, periodic, positions, types, cutoff)};
    });
}

MLIPC_API int mlipc_dataset_set_labels(mlipc_dataset* ds, const double* energies, const double* forces,
                                       const double* stresses) {
    return guarded([&] {
        need(ds, "ds");
        mlipc::set_labels(ds->ds, energies, forces, stresses);
    });
}

MLIPC_API int mlipc_dataset_update_positions(mlipc_dataset* ds, const double* cells, const double* positions) {
    return guarded([&] {
        need(ds, "ds");
        need(positions, "positions");
        mlipc::update_positions(ds->ds, cells, positions);
    });
}

MLIPC_API void mlipc_dataset_free(mlipc_dataset* ds) { delete ds; }

MLIPC_API int mlipc_dataset_size(const mlipc_dataset* ds, int64_t* n_cfg, int64_t* n_atoms, int64_t* n_pairs) {
    return guarded([&] {
        need(ds, "ds");
        if (n_cfg) *n_cfg = ds->ds.n_cfg;
        if (n_atoms) *n_atoms = ds->ds.n_atoms();
        if (n_pairs) *n_pairs = ds->ds.n_pairs();
    });
}

MLIPC_API int mlipc_predict(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                            int64_t n_idx, double* energies, double* forces, double* stresses) {
    return guarded([&] {
        need(pot, "pot");
        need(ds, "ds");
        pot->model->predict(ds->ds, idx, idx ? n_idx : ds->ds.n_cfg, energies, forces, stresses);
    });
}

MLIPC_API int mlipc_loss_grad(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                              int64_t n_idx, const double* weights, double* loss, double* grad) {
    return guarded([&] {
        need(pot, "pot");
        need(ds, "ds");
        need(loss, "loss");
        *loss = pot->model->loss_grad(ds->ds, idx, idx ? n_idx : ds->ds.n_cfg, weights, grad);
    });
}

MLIPC_API int mlipc_jt_product(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                               int64_t n_idx, const double* u_energy, const double* u_forces,
                               const double* u_stress, double* grad) {
    return guarded([&] {
        need(pot, "pot");
        need(ds, "ds");
        need(grad, "grad");
        pot->model->jt_product(ds->ds, idx, idx ? n_idx : ds->ds.n_cfg, u_energy, u_forces, u_stress, grad);
    });
}

MLIPC_API int mlipc_linear_system(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                                  int64_t n_idx, const double* weights, int64_t* n_lin, double* A, double* b,
                                  double* r0) {
    return guarded([&] {
        if (!linear_size(pot, n_lin, A || b || r0, "A and b by a call with A, b and r0 NULL")) return;
        need(ds, "ds");
        pot->model->linear_system(ds->ds, idx, idx ? n_idx : ds->ds.n_cfg, weights, A, b, r0);
    });
}

MLIPC_API int mlipc_linear_design(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                                  int64_t n_idx, int64_t* n_lin, double* dE, double* dF, double* dS) {
    return guarded([&] {
        if (!linear_size(pot, n_lin, dE || dF || dS, "dE, dF and dS by a call with all three NULL")) return;
        need(ds, "ds");
        pot->model->linear_design(ds->ds, idx, idx ? n_idx : ds->ds.n_cfg, dE, dF, dS);
    });
}

}  // extern "C"
