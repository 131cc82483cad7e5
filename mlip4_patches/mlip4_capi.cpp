// mlip4_capi.cpp -- optbench's C ABI (engine/include/mlipc.h) on top of MLIP-4.
//
// Built inside an MLIP-4 source tree as libmlip4_capi.so (CMakeLists.txt and README.md in
// this folder); optbench loads it with `--engine capi --lib PATH`.  MLIP-4 is not public,
// so this file has NOT been compiled against it: everything that names MLIP-4 is in the
// one section marked "MLIP-4 SECTION" below, each call marked `// MLIP-4: <name>`; the
// rest is plain C++17 and is compiled by tests/test_mlip4_shim.py with a stand-in section.
//
// Semantics are those of the embedded engine (engine/src/mlipc_api.cpp): the same checks
// in the same order, the same status codes and messages for the same bad input.  What
// MLIP-4 cannot serve returns MLIPC_ERR_UNSUPPORTED with a message saying what to do:
//   * potential files are MLIP-4 JSON (.json), not MLIP-2/3 .mtp / .almtp;
//   * spec strings build MTPs from level=N (no MLIP-3 template=, no scaling=) or ETNs;
//   * the radial basis is fixed at creation (set_scalar), there is no "scaling";
//   * mlipc_linear_system and mlipc_linear_design (MLIP-4 exposes no normal equations of
//     its loss and declares no linear block);
//   * mlipc_jt_product (MLIP-4's LossFunction takes no outside seeds for its adjoint).
//   * mlipc_dataset_update_positions (MLIP-4 keeps no pair list to move: create a new
//     data set).
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mlipc.h"
#include "mlipc_export.h"

namespace {

// A failure detected by the shim itself, with its status code (mlipc::EngineError's role).
struct ShimError : std::runtime_error {
    int code;
    ShimError(int c, const std::string& m) : std::runtime_error(m), code(c) {}
};
ShimError argument_error(const std::string& m) { return {MLIPC_ERR_ARGUMENT, m}; }
ShimError io_error(const std::string& m) { return {MLIPC_ERR_IO, m}; }
ShimError format_error(const std::string& m) { return {MLIPC_ERR_FORMAT, m}; }
ShimError data_error(const std::string& m) { return {MLIPC_ERR_DATA, m}; }
ShimError numeric_error(const std::string& m) { return {MLIPC_ERR_NUMERIC, m}; }
ShimError unsupported(const std::string& m) { return {MLIPC_ERR_UNSUPPORTED, m}; }

// ETN `shape` / `ranks`: lists of integer lists, as MLIP-4 takes them ([[1],[4],[2]]).
using IntLists = std::vector<std::vector<int>>;

// What the ABI needs to know of a potential besides its parameters.
struct Meta {
    std::string kind;  // "mtp" or "etn"
    int species_count;
    double min_dist, max_dist;
};

}  // namespace

// ============================ BEGIN MLIP-4 SECTION ============================
// The only code that names MLIP-4.  Adapt the include lines, the namespace and the bodies
// below to the real headers; nothing after END MLIP-4 SECTION needs to change.  The names
// are those of MLIP-4's Python bindings; the C++ spellings (constructor arguments, member
// vs free functions) are assumptions, listed in README.md.
#include "mlip4/etn.h"            // assumed header paths: adapt
#include "mlip4/loss_function.h"
#include "mlip4/mtp.h"
#include "mlip4/radial_basis.h"

namespace m4 {

using Error = mlip4::Exception;            // what MLIP-4 throws (must throw, not exit())
using Potential = mlip4::Potential;        // the common base of MTP and ETN
using LossFunction = mlip4::LossFunction;

std::unique_ptr<Potential> make_mtp(int level, int species, int radial_funcs, double min_dist, double max_dist,
                                    int basis_size) {
    mlip4::RadialBasisCinf basis(min_dist, max_dist, basis_size);                   // MLIP-4: RadialBasisCinf
    return std::make_unique<mlip4::MTP>(level, species, radial_funcs, basis);       // MLIP-4: MTP
}

std::unique_ptr<Potential> make_etn(const IntLists& shape, const IntLists& ranks, int species, double min_dist,
                                    double max_dist, int basis_size) {
    mlip4::RadialBasisCinf basis(min_dist, max_dist, basis_size);                   // MLIP-4: RadialBasisCinf
    return std::make_unique<mlip4::ETN>(shape, ranks, species, basis);              // MLIP-4: ETN
}

Meta describe(const Potential& p) {
    const auto& rb = p.radial_basis();                                               // MLIP-4: RadialBasisCinf
    const bool etn = dynamic_cast<const mlip4::ETN*>(&p) != nullptr;                 // MLIP-4: ETN
    return {etn ? "etn" : "mtp", p.species_count(), rb.min_dist(), rb.max_dist()};   // MLIP-4: MTP
}

// The flat parameter vector (pot.params in Python: read, and assigned as a whole).
const std::vector<double>& params(const Potential& p) { return p.params; }           // MLIP-4: params
void set_params(Potential& p, const double* x) {
    std::copy(x, x + p.params.size(), p.params.begin());                             // MLIP-4: params
}

std::string to_json(const Potential& p) { return p.to_json_bytes(); }               // MLIP-4: to_json_bytes

// Either class may own the file; the first reader that accepts it wins.
std::unique_ptr<Potential> from_json(const std::string& bytes) {
    std::string why;
    try {
        return std::make_unique<mlip4::MTP>(mlip4::MTP::from_json_bytes(bytes));     // MLIP-4: from_json_bytes
    } catch (const Error& e) {
        why = e.what();
    }
    try {
        return std::make_unique<mlip4::ETN>(mlip4::ETN::from_json_bytes(bytes));     // MLIP-4: from_json_bytes
    } catch (const Error& e) {
        throw format_error("neither an MLIP-4 MTP (" + why + ") nor an ETN (" + e.what() + ")");
    }
}

// `records`: a JSON list in MLIP-4's data format (shared/datasets/README.md), weights included.
std::unique_ptr<LossFunction> make_loss(const std::string& records) {
    return std::make_unique<LossFunction>(records);                                  // MLIP-4: LossFunction
}
void attach_pot(LossFunction& l, Potential& p) { l.attach_pot(p); }                  // MLIP-4: attach_pot
// The SUM over the object's configurations of the weighted squared errors.
double calc(LossFunction& l) { return l.calc(); }                                    // MLIP-4: calc
// ADDS the gradient of calc() over the parameters into g (size n_params).
void accumulate_grads(LossFunction& l, std::vector<double>& g) { l.accumulate_grads(g); }  // MLIP-4: accumulate_grads

// Energy, forces (3 per atom) and PlusStress (xx yy zz yz xz xy) of one configuration of
// n atoms given as one record of the data format.  ASSUMED: the bindings name no such
// call (they evaluate through calc_errors).  Without one, throw unsupported("...") here:
// mlipc_predict then returns MLIPC_ERR_UNSUPPORTED.
void calc_efs(const Potential& p, const std::string& record, int n, double* e, double* f, double* s) {
    const auto r = mlip4::calc_efs(p, record);                                       // MLIP-4: calc_efs
    if (r.forces.size() != 3 * size_t(n) || r.stress.size() != 6)
        throw ShimError(MLIPC_ERR_INTERNAL, "MLIP-4 calc_efs returned " + std::to_string(r.forces.size()) +
                        " force and " + std::to_string(r.stress.size()) + " stress values for " +
                        std::to_string(n) + " atoms");
    *e = r.energy;
    std::copy(r.forces.begin(), r.forces.end(), f);
    std::copy(r.stress.begin(), r.stress.end(), s);
}

}  // namespace m4
// ============================= END MLIP-4 SECTION =============================

struct mlipc_potential {
    std::unique_ptr<m4::Potential> pot;
    Meta meta;
    std::vector<double> defaults;  // the parameters as created or loaded
    uint64_t serial;               // tells loss objects which potential they hold
};

namespace {

// One MLIP-4 loss object, built for given weights and attached to one potential.
struct LossEntry {
    std::unique_ptr<m4::LossFunction> loss;
    std::vector<double> weights;
    uint64_t attached = 0;
};

}  // namespace

struct mlipc_dataset {
    double cutoff = 0.0;
    int64_t n_cfg = 0;
    std::vector<int64_t> first;     // n_cfg + 1: first atom of each configuration
    std::vector<int32_t> types;
    int32_t max_type = -1;
    int64_t n_pairs = 0;
    std::vector<std::string> cfg_json;    // "\"cfg\": {...}" per configuration
    std::vector<std::string> label_json;  // ", \"energy\": ..." per configuration
    std::vector<std::array<uint8_t, 3>> has;  // energy, forces, stress labelled, per configuration
    // Loss objects are built on first use and kept (one per configuration for batches,
    // one for the whole set), as the study drove MLIP-4; calls on a data set serialise.
    mutable std::mutex mutex;
    mutable std::vector<LossEntry> single;
    mutable LossEntry whole;
    int atoms_in(int64_t k) const { return int(first[k + 1] - first[k]); }
};

namespace {

thread_local std::string g_last_error;
std::atomic<uint64_t> g_serial{0};
#ifdef _OPENMP
int g_threads = omp_get_max_threads();
#else
int g_threads = 1;
#endif

int fail(int code, const std::string& msg) {
    g_last_error = msg;
    return code;
}

// Runs f, turning exceptions into status codes; an MLIP-4 exception gets `mlip_code`,
// the code that fits what the calling function does (reading a file, building data ...).
template <class F>
int guarded(int mlip_code, F&& f) {
    try {
        f();
        g_last_error.clear();
        return MLIPC_OK;
    } catch (const ShimError& e) {
        return fail(e.code, e.what());
    } catch (const std::bad_alloc&) {
        return fail(MLIPC_ERR_MEMORY, "out of memory");
    } catch (const m4::Error& e) {
        return fail(mlip_code, std::string("MLIP-4: ") + e.what());
    } catch (const std::exception& e) {
        return fail(MLIPC_ERR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return fail(MLIPC_ERR_INTERNAL, "internal error: unknown exception");
    }
}

void need(const void* p, const char* name) {
    if (!p) throw argument_error(std::string(name) + " must not be NULL");
}

void check_length(const mlipc_potential* pot, int64_t n) {
    need(pot, "pot");
    const size_t np = m4::params(*pot->pot).size();
    if (n != int64_t(np))
        throw argument_error("parameter vector has length " + std::to_string(n) + " but the potential has " +
                             std::to_string(np) + " parameters");
}

bool ends_with(const std::string& s, const char* e) {
    const size_t n = std::strlen(e);
    return s.size() >= n && s.compare(s.size() - n, n, e) == 0;
}

std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.17g", v);
    return b;
}

std::string json_list(const double* v, size_t n) {
    std::string s = "[";
    for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + num(v[i]);
    return s + "]";
}

std::string json_rows3(const double* v, size_t rows) {
    std::string s = "[";
    for (size_t i = 0; i < rows; ++i) s += (i ? ", " : "") + json_list(v + 3 * i, 3);
    return s + "]";
}

mlipc_potential* adopt(std::unique_ptr<m4::Potential> p) {
    auto out = std::make_unique<mlipc_potential>(mlipc_potential{std::move(p), {}, {}, ++g_serial});
    out->meta = m4::describe(*out->pot);
    out->defaults = m4::params(*out->pot);
    return out.release();
}

// ---- spec strings: "mtp level=N ..." or "etn shape=[[..]] ranks=[[..]] ..." ----

IntLists int_lists(const std::string& key, const std::string& v) {
    const auto bad = [&] {
        return format_error("potential spec: '" + key + "=" + v +
                            "' is not a list of integer lists such as [[1],[4],[2]]");
    };
    IntLists out;
    int depth = 0;
    std::string digits;
    for (size_t i = 0; i < v.size(); ++i) {
        const char c = v[i];
        if (i > 0 && depth == 0) throw bad();  // text after the outer list
        if (std::isdigit(static_cast<unsigned char>(c))) {
            if (depth != 2 || digits.size() > 6) throw bad();
            digits += c;
            continue;
        }
        if (!digits.empty()) out.back().push_back(std::stoi(digits));
        digits.clear();
        if (c == '[') {
            if (++depth > 2) throw bad();
            if (depth == 2) out.emplace_back();
        } else if (c == ']') {
            if (--depth < 0) throw bad();
        } else if (c != ',') {
            throw bad();
        }
    }
    if (depth != 0 || !digits.empty() || out.empty()) throw bad();
    return out;
}

std::unique_ptr<m4::Potential> potential_from_spec(const std::string& spec) {
    std::istringstream in(spec);
    std::string kind;
    in >> kind;
    if (kind != "mtp" && kind != "etn")
        throw format_error("potential spec must start with 'mtp' or 'etn', got '" + kind + "' in '" + spec + "'");
    std::map<std::string, std::string> kv;
    for (std::string w; in >> w;) {
        const size_t eq = w.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == w.size())
            throw format_error("potential spec: expected key=value, got '" + w + "'");
        kv[w.substr(0, eq)] = w.substr(eq + 1);
    }
    if (kind == "mtp" && kv.count("template"))
        throw unsupported("potential spec: template= (an MLIP-3 .almtp file) is not supported by the MLIP-4 shim: "
                          "give level=N, MLIP-4 builds the basis itself");
    if (kv.count("scaling"))
        throw unsupported("potential spec: scaling= is not supported by the MLIP-4 shim: MLIP-4's radial basis "
                          "(RadialBasisCinf) has no scaling factor");
    static const std::vector<std::string> mtp_keys = {"level", "species", "min_dist", "max_dist",
                                                      "radial_basis_size", "radial_funcs_count"};
    static const std::vector<std::string> etn_keys = {"shape", "ranks", "species", "min_dist", "max_dist",
                                                      "radial_basis_size"};
    const auto& keys = kind == "mtp" ? mtp_keys : etn_keys;
    for (const auto& item : kv)
        if (std::find(keys.begin(), keys.end(), item.first) == keys.end()) {
            std::string known;
            for (const auto& k : keys) known += (known.empty() ? "" : ", ") + k;
            throw format_error("potential spec: unknown key '" + item.first + "' (known: " + known + ")");
        }
    const auto as_double = [&](const std::string& k, double dflt) {
        if (!kv.count(k)) return dflt;
        char* end = nullptr;
        const double v = std::strtod(kv[k].c_str(), &end);
        if (*end || !std::isfinite(v)) throw format_error("potential spec: '" + k + "=" + kv[k] + "' is not a number");
        return v;
    };
    const auto as_int = [&](const std::string& k, int dflt) {
        const double v = as_double(k, dflt);
        if (v != std::floor(v) || std::fabs(v) > 1e9)
            throw format_error("potential spec: '" + k + "=" + kv[k] + "' is not an integer");
        return int(v);
    };
    // The embedded engine's defaults, so that one spec means the same model in both.
    const int species = as_int("species", 1), basis = as_int("radial_basis_size", 8);
    const double lo = as_double("min_dist", 2.0), hi = as_double("max_dist", 5.0);
    if (species < 1) throw format_error("species_count must be >= 1");
    if (basis < 2) throw format_error("radial_basis_size must be >= 2");
    if (!(lo >= 0.0) || !(hi > lo))
        throw format_error("need 0 <= min_dist < max_dist (got min_dist=" + std::to_string(lo) +
                           ", max_dist=" + std::to_string(hi) + ")");
    if (kind == "mtp") {
        if (!kv.count("level")) throw format_error("potential spec: give level=N");
        const int funcs = as_int("radial_funcs_count", 1);
        if (funcs < 1) throw format_error("radial_funcs_count must be >= 1");
        return m4::make_mtp(as_int("level", 0), species, funcs, lo, hi, basis);
    }
    for (const char* k : {"shape", "ranks"})
        if (!kv.count(k)) throw format_error(std::string("potential spec: an etn needs ") + k + "=[[...],...]");
    return m4::make_etn(int_lists("shape", kv["shape"]), int_lists("ranks", kv["ranks"]), species, lo, hi, basis);
}

// ---- data sets: the embedded engine's checks, and the pair count of its neighbour lists ----

using V3 = std::array<double, 3>;

V3 cross(const V3& a, const V3& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const V3& a, const V3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

// Counts the ordered pairs (i, j + lattice shift) closer than rc, every periodic image
// included, and rejects zero-volume cells and overlapping atoms as the engine does.
int64_t count_pairs(int64_t k, int n, const double* pos, const double* cell, bool periodic, double rc) {
    const std::string where = "configuration " + std::to_string(k);
    V3 a[3] = {}, recip[3] = {};
    double reach[3] = {0, 0, 0};
    if (periodic) {
        for (int d = 0; d < 3; ++d) a[d] = {cell[3 * d], cell[3 * d + 1], cell[3 * d + 2]};
        const double vol = dot(a[0], cross(a[1], a[2]));
        if (!(std::fabs(vol) > 1e-10)) throw data_error(where + ": the cell has zero volume");
        for (int d = 0; d < 3; ++d) {
            recip[d] = cross(a[(d + 1) % 3], a[(d + 2) % 3]);
            for (double& c : recip[d]) c /= vol;  // fractional coordinate d of r: recip[d] . r
            // lattice planes d are 1 / |recip[d]| apart: a shift that moves a vector more
            // than rc * |recip[d]| planes away leaves it outside the cutoff
            reach[d] = rc * std::sqrt(dot(recip[d], recip[d])) + 1e-9;
        }
    }
    int64_t pairs = 0;
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
            const V3 d0 = {pos[3 * j] - pos[3 * i], pos[3 * j + 1] - pos[3 * i + 1], pos[3 * j + 2] - pos[3 * i + 2]};
            int lo[3], hi[3];
            for (int d = 0; d < 3; ++d) {
                const double f = dot(recip[d], d0);
                lo[d] = int(std::ceil(-f - reach[d]));
                hi[d] = int(std::floor(-f + reach[d]));
            }
            for (int s0 = lo[0]; s0 <= hi[0]; ++s0)
                for (int s1 = lo[1]; s1 <= hi[1]; ++s1)
                    for (int s2 = lo[2]; s2 <= hi[2]; ++s2) {
                        V3 v = d0;
                        for (int e = 0; e < 3; ++e) v[e] += s0 * a[0][e] + s1 * a[1][e] + s2 * a[2][e];
                        const double r2 = dot(v, v);
                        if (r2 >= rc * rc) continue;
                        if (r2 < 1e-20) {
                            if (i == j) continue;  // the atom itself (its images have r2 > 0)
                            const char* how = periodic ? " (or a periodic image) overlap" : " are at the same position";
                            throw data_error(where + ": atoms " + std::to_string(i) + " and " +
                                             std::to_string(j) + how);
                        }
                        ++pairs;
                    }
        }
    return pairs;
}

// The configuration index of atom a.
int64_t config_of(const mlipc_dataset& ds, int64_t a) {
    return std::upper_bound(ds.first.begin(), ds.first.end(), a) - ds.first.begin() - 1;
}

void check_indices(const mlipc_dataset& ds, const int64_t* idx, int64_t n_idx) {
    if (n_idx < 0) throw argument_error("negative number of configuration indices");
    const int64_t* end = idx ? idx + n_idx : nullptr;
    const int64_t* bad = std::find_if(idx, end, [&](int64_t k) { return k < 0 || k >= ds.n_cfg; });
    if (bad != end)
        throw argument_error("configuration index " + std::to_string(*bad) + " at position " +
                             std::to_string(bad - idx) + " is outside 0.." + std::to_string(ds.n_cfg - 1));
}

void check_compatible(const mlipc_potential& p, const mlipc_dataset& ds) {
    if (p.meta.max_dist > ds.cutoff + 1e-12)
        throw argument_error("the data set's neighbour lists were built with cutoff " + std::to_string(ds.cutoff) +
                             " A, smaller than the potential's max_dist " + std::to_string(p.meta.max_dist) +
                             " A: create the data set with a cutoff >= max_dist");
    const int s = p.meta.species_count;
    if (ds.max_type < s) return;
    const auto it = std::find_if(ds.types.begin(), ds.types.end(), [&](int32_t t) { return t >= s; });
    const int64_t a = it - ds.types.begin();
    const int64_t k = config_of(ds, a);
    throw data_error("configuration " + std::to_string(k) + ", atom " + std::to_string(a - ds.first[k]) +
                     " has species index " + std::to_string(ds.types[a]) + " but the potential has " +
                     std::to_string(s) + " species (0.." + std::to_string(s - 1) + ")");
}

void check_weights(const mlipc_dataset& ds, const int64_t* idx, int64_t n_idx, const double* weights) {
    if (!weights) throw argument_error("weights must not be NULL (3 per configuration: wE, wF, wS)");
    static const char* const name[3] = {"wE", "wF", "wS"};
    static const char* const unlabelled[3] = {
        " has no energy label but energy weight ",
        " has missing or non-finite force labels but force weight ",
        " has missing or non-finite stress labels but stress weight "};
    for (int64_t q = 0; q < n_idx; ++q) {
        const int64_t k = idx ? idx[q] : q;
        const double* w = weights + 3 * k;
        // every weight valid first, then every label present: the engine's order of complaints
        for (int c = 0; c < 3; ++c)
            if (!(w[c] >= 0) || !std::isfinite(w[c]))
                throw argument_error(std::string("weight ") + name[c] + " of configuration " + std::to_string(k) +
                                     " is " + std::to_string(w[c]) + ": weights must be finite and >= 0");
        for (int c = 0; c < 3; ++c)
            if (w[c] > 0 && !ds.has[k][c])
                throw data_error("configuration " + std::to_string(k) + unlabelled[c] + std::to_string(w[c]));
    }
}

// One record of MLIP-4's data format; with w (wE, wF, wS) its per-component weights
// [wE, wS x 3, 2 wS x 3 (off-diagonals count twice in the 3x3 norm), wF x 3N].
std::string record(const mlipc_dataset& ds, int64_t k, const double* w) {
    std::string r = "{\"sim\": {" + ds.cfg_json[k] + (w ? ds.label_json[k] : "") + "}";
    if (w) {
        const double s2 = 2 * w[2];
        const double head[7] = {w[0], w[2], w[2], w[2], s2, s2, s2};
        std::vector<double> all(head, head + 7);
        all.resize(7 + 3 * size_t(ds.atoms_in(k)), w[1]);
        r += ", \"weights\": " + json_list(all.data(), all.size());
    }
    return r + "}";
}

// The loss object for weights w (n_w values), rebuilt from records() when they change,
// attached to p.
template <class Records>
m4::LossFunction& loss_for(LossEntry& e, const double* w, size_t n_w, Records records, const mlipc_potential& p) {
    if (!e.loss || !std::equal(w, w + n_w, e.weights.begin(), e.weights.end())) {
        e.loss = m4::make_loss(records());
        e.weights.assign(w, w + n_w);
        e.attached = 0;
    }
    if (e.attached != p.serial) {
        m4::attach_pot(*e.loss, *p.pot);
        e.attached = p.serial;
    }
    return *e.loss;
}

const char* const kVersion = "MLIP-4 through optbench's mlip4_capi shim 0.1.0 (MTP, ETN)";

}  // namespace

// ---- mlipc.h, function by function in the header's order ----
extern "C" {

MLIPC_API int mlipc_abi_version(void) { return MLIPC_ABI_VERSION; }
MLIPC_API const char* mlipc_version(void) { return kVersion; }
MLIPC_API const char* mlipc_last_error(void) { return g_last_error.c_str(); }

MLIPC_API int mlipc_set_num_threads(int n) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        if (n < 1) throw argument_error("number of threads must be >= 1, got " + std::to_string(n));
        g_threads = n;
#ifdef _OPENMP
        omp_set_num_threads(n);  // MLIP-4's own OpenMP loops, where it has them
#endif
    });
}
MLIPC_API int mlipc_get_num_threads(int* n) {
    return guarded(MLIPC_ERR_INTERNAL, [&] { need(n, "n"); *n = g_threads; });
}

MLIPC_API int mlipc_potential_load(const char* path, mlipc_potential** out) {
    return guarded(MLIPC_ERR_FORMAT, [&] {
        need(path, "path");
        need(out, "out");
        *out = nullptr;
        const std::string p(path);
        std::ifstream in(p, std::ios::binary);
        if (!in) throw io_error("cannot open potential file '" + p + "'");
        if (ends_with(p, ".mtp") || ends_with(p, ".almtp"))
            throw unsupported("'" + p + "': the MLIP-4 shim reads MLIP-4 JSON potentials (.json), not MLIP-2/3 "
                              ".mtp/.almtp files");
        const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        try {
            *out = adopt(m4::from_json(bytes));
        } catch (const ShimError& e) {
            throw ShimError(e.code, "'" + p + "': " + e.what());
        } catch (const m4::Error& e) {
            throw format_error("'" + p + "': MLIP-4: " + e.what());
        }
    });
}

MLIPC_API int mlipc_potential_from_spec(const char* spec, mlipc_potential** out) {
    return guarded(MLIPC_ERR_FORMAT, [&] {
        need(spec, "spec");
        need(out, "out");
        *out = nullptr;
        *out = adopt(potential_from_spec(spec));
    });
}

MLIPC_API int mlipc_potential_save(const mlipc_potential* pot, const char* path) {
    return guarded(MLIPC_ERR_IO, [&] {
        need(pot, "pot");
        need(path, "path");
        const std::string p(path);
        if (ends_with(p, ".mtp") || ends_with(p, ".almtp"))
            throw unsupported("cannot save '" + p + "': the MLIP-4 shim writes MLIP-4 JSON potentials (.json), not "
                              "MLIP-2/3 .mtp/.almtp files");
        if (!ends_with(p, ".json"))
            throw argument_error("cannot tell the format of '" + p + "': use the extension .json (MLIP-4 JSON)");
        const std::string bytes = m4::to_json(*pot->pot);
        std::ofstream o(p, std::ios::binary);
        if (!o) throw io_error("cannot open '" + p + "' for writing");
        o << bytes;
        if (!o.flush()) throw io_error("failed writing '" + p + "'");
    });
}

MLIPC_API void mlipc_potential_free(mlipc_potential* pot) { delete pot; }

MLIPC_API int mlipc_potential_n_params(const mlipc_potential* pot, int64_t* n) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        need(pot, "pot");
        need(n, "n");
        *n = int64_t(m4::params(*pot->pot).size());
    });
}

MLIPC_API int mlipc_potential_get_params(const mlipc_potential* pot, double* x, int64_t n) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        check_length(pot, n);
        need(x, "x");
        const auto& v = m4::params(*pot->pot);
        std::copy(v.begin(), v.end(), x);
    });
}

MLIPC_API int mlipc_potential_set_params(mlipc_potential* pot, const double* x, int64_t n) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        check_length(pot, n);
        need(x, "x");
        for (int64_t q = 0; q < n; ++q)
            if (!std::isfinite(x[q])) throw numeric_error("parameter " + std::to_string(q) + " is not finite");
        m4::set_params(*pot->pot, x);
    });
}

MLIPC_API int mlipc_potential_default_params(const mlipc_potential* pot, double* x, int64_t n) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        check_length(pot, n);
        need(x, "x");
        std::copy(pot->defaults.begin(), pot->defaults.end(), x);
    });
}

MLIPC_API int mlipc_potential_info(const mlipc_potential* pot, char* buf, size_t bufsize, size_t* needed) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        need(pot, "pot");
        const Meta& m = pot->meta;
        const size_t np = m4::params(*pot->pot).size();
        // MLIP-4's parameter layout is its own: one group, no linear block.
        const std::string s = "{\"kind\": \"" + m.kind + "\", \"engine\": \"MLIP-4\", \"species_count\": " +
            std::to_string(m.species_count) + ", \"cutoff\": " + num(m.max_dist) + ", \"min_dist\": " +
            num(m.min_dist) + ", \"max_dist\": " + num(m.max_dist) + ", \"scaling\": null, \"n_params\": " +
            std::to_string(np) + ", \"groups\": [{\"name\": \"params\", \"offset\": 0, \"size\": " +
            std::to_string(np) + "}], \"linear_groups\": [], \"defaults\": \"MLIP-4's parameters as the potential "
            "was created (from the spec) or loaded (from the file)\"}";
        if (needed) *needed = s.size() + 1;
        if (buf && bufsize) {
            const size_t k = std::min(bufsize - 1, s.size());
            std::memcpy(buf, s.data(), k);
            buf[k] = '\0';
        }
    });
}

MLIPC_API int mlipc_potential_get_scalar(const mlipc_potential* pot, const char* name, double* value) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        need(pot, "pot");
        need(name, "name");
        need(value, "value");
        const std::string k(name);
        if (k == "min_dist") *value = pot->meta.min_dist;
        else if (k == "max_dist") *value = pot->meta.max_dist;
        else if (k == "scaling") throw unsupported("setting 'scaling': MLIP-4's radial basis has no scaling factor");
        else throw argument_error("unknown setting '" + k + "' (known: scaling, min_dist, max_dist)");
    });
}

MLIPC_API int mlipc_potential_set_scalar(mlipc_potential* pot, const char* name, double value) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        need(pot, "pot");
        need(name, "name");
        const std::string k(name);
        if (!std::isfinite(value)) throw numeric_error("setting '" + k + "' must be finite");
        if (k != "scaling" && k != "min_dist" && k != "max_dist")
            throw argument_error("unknown setting '" + k + "' (known: scaling, min_dist, max_dist)");
        throw unsupported("setting '" + k + "': an MLIP-4 potential's radial basis is fixed when it is created; "
                          "create a new potential with min_dist=/max_dist= in its spec");
    });
}

MLIPC_API int mlipc_dataset_create(int64_t n_cfg, const int64_t* n_atoms, const double* cells,
                                   const int32_t* periodic, const double* positions,
                                   const int32_t* types, double cutoff, mlipc_dataset** out) {
    return guarded(MLIPC_ERR_DATA, [&] {
        need(out, "out");
        *out = nullptr;
        if (n_cfg <= 0) throw data_error("empty data set: no configurations");
        if (!n_atoms || !positions || !types) throw argument_error("n_atoms, positions and types must not be NULL");
        if (!(cutoff > 0) || !std::isfinite(cutoff)) throw argument_error("cutoff must be positive and finite");
        auto ds = std::make_unique<mlipc_dataset>();
        ds->cutoff = cutoff;
        ds->n_cfg = n_cfg;
        ds->first.assign(n_cfg + 1, 0);
        std::vector<uint8_t> per(n_cfg, 1);
        for (int64_t k = 0; k < n_cfg; ++k) {
            if (n_atoms[k] <= 0) throw data_error("configuration " + std::to_string(k) + " has no atoms");
            ds->first[k + 1] = ds->first[k] + n_atoms[k];
            per[k] = periodic ? periodic[k] != 0 : 1;
            if (!per[k]) continue;
            if (!cells) throw argument_error("cells must not be NULL for periodic configurations");
            if (!std::all_of(cells + 9 * k, cells + 9 * k + 9, [](double c) { return std::isfinite(c); }))
                throw data_error("configuration " + std::to_string(k) + ": non-finite cell");
        }
        const int64_t na = ds->first.back();
        ds->types.assign(types, types + na);
        for (int64_t a = 0; a < na; ++a) {
            const int64_t k = config_of(*ds, a);
            const std::string at = "configuration " + std::to_string(k) + ", atom " + std::to_string(a - ds->first[k]);
            if (types[a] < 0) throw data_error(at + ": negative species index " + std::to_string(types[a]));
            ds->max_type = std::max(ds->max_type, types[a]);
            for (int e = 0; e < 3; ++e)
                if (!std::isfinite(positions[3 * a + e])) throw data_error(at + ": non-finite position");
        }
        ds->cfg_json.resize(n_cfg);
        for (int64_t k = 0; k < n_cfg; ++k) {
            const double* pk = positions + 3 * ds->first[k];
            ds->n_pairs += count_pairs(k, ds->atoms_in(k), pk, per[k] ? cells + 9 * k : nullptr, per[k], cutoff);
            std::string t = "[";
            for (int64_t a = ds->first[k]; a < ds->first[k + 1]; ++a)
                t += (a > ds->first[k] ? ", " : "") + std::to_string(types[a]);
            ds->cfg_json[k] = "\"cfg\": {\"cell\": " + (per[k] ? json_rows3(cells + 9 * k, 3) : "null") +
                              ", \"pos\": " + json_rows3(pk, ds->atoms_in(k)) + ", \"types\": " + t + "]}";
        }
        ds->label_json.assign(n_cfg, "");
        ds->has.assign(n_cfg, {0, 0, 0});
        ds->single.resize(n_cfg);
        *out = ds.release();
    });
}

MLIPC_API int mlipc_dataset_set_labels(mlipc_dataset* ds, const double* energies, const double* forces,
                                       const double* stresses) {
    return guarded(MLIPC_ERR_DATA, [&] {
        need(ds, "ds");
        std::lock_guard<std::mutex> lock(ds->mutex);
        const auto finite = [](const double* v, size_t n) {
            return v && std::all_of(v, v + n, [](double x) { return std::isfinite(x); });
        };
        // A label is written only where it is complete: MLIP-4 records have no NaN, and a
        // missing label is allowed only under a zero weight (check_weights).
        for (int64_t k = 0; k < ds->n_cfg; ++k) {
            const double* e = energies ? energies + k : nullptr;
            const double* f = forces ? forces + 3 * ds->first[k] : nullptr;
            const double* s = stresses ? stresses + 6 * k : nullptr;
            auto& has = ds->has[k];
            has = {finite(e, 1), finite(f, 3 * size_t(ds->atoms_in(k))), finite(s, 6)};
            std::string& j = ds->label_json[k];
            j.clear();
            if (has[0]) j += ", \"energy\": " + num(*e);
            if (has[1]) j += ", \"forces\": " + json_rows3(f, ds->atoms_in(k));
            if (has[2]) j += ", \"stress\": " + json_list(s, 6);
        }
        // Loss objects hold the old labels.
        for (auto& e : ds->single) e = LossEntry{};
        ds->whole = LossEntry{};
    });
}

// Moving the atoms of a data set: MLIP-4 builds its neighbour lists itself from the
// configuration records, so there are no stored pair vectors to recompute.  The
// arguments are checked as the engine checks them (ds, positions; cells may be NULL
// when no configuration is periodic), then MLIPC_ERR_UNSUPPORTED.  Callers (the ASE
// calculator) look the function up and create a new data set on this answer.
MLIPC_API int mlipc_dataset_update_positions(mlipc_dataset* ds, const double* cells, const double* positions) {
    (void)cells;
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        need(ds, "ds");
        need(positions, "positions");
        throw unsupported("mlipc_dataset_update_positions is not available in the MLIP-4 shim: MLIP-4 builds its "
                          "own neighbour lists from each configuration; create a new data set instead");
    });
}

MLIPC_API void mlipc_dataset_free(mlipc_dataset* ds) { delete ds; }

MLIPC_API int mlipc_dataset_size(const mlipc_dataset* ds, int64_t* n_cfg, int64_t* n_atoms, int64_t* n_pairs) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        need(ds, "ds");
        if (n_cfg) *n_cfg = ds->n_cfg;
        if (n_atoms) *n_atoms = ds->first.back();
        if (n_pairs) *n_pairs = ds->n_pairs;
    });
}

MLIPC_API int mlipc_predict(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                            int64_t n_idx, double* energies, double* forces, double* stresses) {
    return guarded(MLIPC_ERR_DATA, [&] {
        need(pot, "pot");
        need(ds, "ds");
        const int64_t n = idx ? n_idx : ds->n_cfg;
        check_indices(*ds, idx, n);
        check_compatible(*pot, *ds);
        std::vector<double> f;
        int64_t at = 0;  // first force entry of the current configuration in `forces`
        for (int64_t q = 0; q < n; ++q) {
            const int64_t k = idx ? idx[q] : q;
            double e = 0, s[6] = {0, 0, 0, 0, 0, 0};
            f.assign(3 * size_t(ds->atoms_in(k)), 0.0);
            m4::calc_efs(*pot->pot, record(*ds, k, nullptr), ds->atoms_in(k), &e, f.data(), s);
            if (energies) energies[q] = e;
            if (forces) std::copy(f.begin(), f.end(), forces + at);
            if (stresses) std::copy(s, s + 6, stresses + 6 * q);
            at += int64_t(f.size());
        }
    });
}

MLIPC_API int mlipc_loss_grad(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                              int64_t n_idx, const double* weights, double* loss, double* grad) {
    return guarded(MLIPC_ERR_DATA, [&] {
        need(pot, "pot");
        need(ds, "ds");
        need(loss, "loss");
        const int64_t n = idx ? n_idx : ds->n_cfg;
        check_indices(*ds, idx, n);
        check_compatible(*pot, *ds);
        check_weights(*ds, idx, n, weights);
        std::lock_guard<std::mutex> lock(ds->mutex);
        std::vector<double> g(grad ? m4::params(*pot->pot).size() : 0, 0.0);
        double total = 0;
        const auto add = [&](m4::LossFunction& l) {
            total += m4::calc(l);
            if (grad) m4::accumulate_grads(l, g);
        };
        if (!idx) {  // the whole set: one object over every configuration
            add(loss_for(ds->whole, weights, 3 * size_t(ds->n_cfg), [&] {
                std::string all = "[";
                for (int64_t k = 0; k < ds->n_cfg; ++k) all += (k ? ", " : "") + record(*ds, k, weights + 3 * k);
                return all + "]";
            }, *pot));
        } else {  // a batch: the sum of its configurations' objects
            for (int64_t q = 0; q < n; ++q) {
                const double* w = weights + 3 * idx[q];
                add(loss_for(ds->single[idx[q]], w, 3, [&] { return "[" + record(*ds, idx[q], w) + "]"; }, *pot));
            }
        }
        *loss = total;
        if (grad) std::copy(g.begin(), g.end(), grad);
    });
}

// mlipc_linear_system and mlipc_linear_design: the arguments checked as the engine checks
// them, then MLIPC_ERR_UNSUPPORTED with `why` and what to use instead.
static int no_linear_block(const mlipc_potential* pot, const int64_t* n_lin, const std::string& why) {
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        need(pot, "pot");
        need(n_lin, "n_lin");
        throw unsupported(why + "; use an optimizer that needs only loss and gradient, or the embedded engine");
    });
}

MLIPC_API int mlipc_linear_system(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                                  int64_t n_idx, const double* weights, int64_t* n_lin, double* A, double* b,
                                  double* r0) {
    (void)ds, (void)idx, (void)n_idx, (void)weights, (void)A, (void)b, (void)r0;
    return no_linear_block(pot, n_lin, "mlipc_linear_system is not available in the MLIP-4 shim: MLIP-4 exposes no "
                                       "normal equations of its loss, and its parameter vector has no declared "
                                       "linear block");
}

MLIPC_API int mlipc_linear_design(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                                  int64_t n_idx, int64_t* n_lin, double* dE, double* dF, double* dS) {
    (void)ds, (void)idx, (void)n_idx, (void)dE, (void)dF, (void)dS;
    return no_linear_block(pot, n_lin, "mlipc_linear_design is not available in the MLIP-4 shim: its parameter "
                                       "vector has no declared linear block");
}

MLIPC_API int mlipc_jt_product(const mlipc_potential* pot, const mlipc_dataset* ds, const int64_t* idx,
                               int64_t n_idx, const double* u_energy, const double* u_forces,
                               const double* u_stress, double* grad) {
    (void)idx, (void)n_idx, (void)u_energy, (void)u_forces, (void)u_stress;
    return guarded(MLIPC_ERR_INTERNAL, [&] {
        need(pot, "pot");
        need(ds, "ds");
        need(grad, "grad");
        throw unsupported("mlipc_jt_product is not available in the MLIP-4 shim: MLIP-4's LossFunction computes "
                          "the gradient of its own residuals only; use the Gauss-Newton methods (lm, gn_tr) "
                          "with the embedded engine");
    });
}

}  // extern "C"
