// ETN hyperparameter checks, the parameter vector, its defaults, and spec strings.
#include "etn_model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>

#include "errors.h"
#include "etn_plan.h"
#include "json.h"
#include "spec_words.h"

namespace mlipc {

namespace {

// Deterministic uniform numbers in [-1, 1) from an index (splitmix64): the defaults are
// the same on every platform and thread count, unlike std::*_distribution.
double hash_uniform(uint64_t i) {
    uint64_t z = i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-52 - 1.0;
}

void fail(const std::string& m) { throw format_error("ETN: " + m); }

}  // namespace

void EtnModel::check() const {
    if (species_count < 1) fail("species_count must be >= 1");
    if (lmax < 0 || lmax > kEtnMaxLmax) fail("lmax must be in 0.." + std::to_string(kEtnMaxLmax) + ", got " + std::to_string(lmax));
    if (shape.empty()) fail("shape must list at least one core");
    if (ranks.size() + 1 != shape.size())
        fail("ranks must list one bond fewer than shape has cores: " + std::to_string(shape.size()) +
             " cores need " + std::to_string(shape.size() - 1) + " ranks, got " + std::to_string(ranks.size()));
    for (const auto* lists : {&shape, &ranks})
        for (const auto& v : *lists) {
            if (int(v.size()) != lmax + 1) fail("every shape and ranks entry needs lmax + 1 = " + std::to_string(lmax + 1) + " values");
            for (int x : v)
                if (x < 0) fail("shape and ranks must be >= 0");
        }
    if (const std::string why = radial_basis_problem(radial); !why.empty()) fail(why);
}

void EtnModel::build() {
    check();
    plan = std::make_shared<const EtnPlan>(*this);
    const EtnPlan& p = *plan;
    if (radial_coeffs.empty() && species_coeffs.empty() && cores.empty()) {
        radial_coeffs.assign(p.n_radial, 0.0);
        species_coeffs.assign(species_count, 0.0);
        cores.resize(p.K);
        for (int k = 0; k < p.K; ++k) cores[k].assign(p.core_size[k], 0.0);
        std::vector<double> x(p.n_params);
        default_params(x.data());
        set_params(x.data());
        return;
    }
    if (radial_coeffs.size() != p.n_radial)
        fail("radial_coeffs has " + std::to_string(radial_coeffs.size()) + " values, expected species^2 x channels x "
             "radial_basis_size = " + std::to_string(p.n_radial));
    if (species_coeffs.size() != size_t(species_count)) fail("species_coeffs needs " + std::to_string(species_count) + " values");
    if (int(cores.size()) != p.K) fail("cores must hold " + std::to_string(p.K) + " weight lists");
    for (int k = 0; k < p.K; ++k)
        if (cores[k].size() != p.core_size[k])
            fail("core " + std::to_string(k + 1) + " has " + std::to_string(cores[k].size()) + " weights, expected " +
                 std::to_string(p.core_size[k]));
}

size_t EtnModel::n_params() const { return plan ? plan->n_params : 0; }

void EtnModel::get_params(double* x) const {
    const EtnPlan& p = *plan;
    std::copy(radial_coeffs.begin(), radial_coeffs.end(), x);
    std::copy(species_coeffs.begin(), species_coeffs.end(), x + p.species_param);
    for (int k = 0; k < p.K; ++k) std::copy(cores[k].begin(), cores[k].end(), x + p.core_param[k]);
}

void EtnModel::set_params(const double* x) {
    const EtnPlan& p = *plan;
    std::copy(x, x + p.n_radial, radial_coeffs.begin());
    std::copy(x + p.species_param, x + p.species_param + species_count, species_coeffs.begin());
    for (int k = 0; k < p.K; ++k) std::copy(x + p.core_param[k], x + p.core_param[k] + p.core_size[k], cores[k].begin());
}

void EtnModel::default_params(double* x) const {
    const EtnPlan& p = *plan;
    std::fill(x, x + p.n_params, 0.0);
    // Radial: channel c of order l starts as c0 Q_(c mod size), distinct within an l and
    // |R| <= scaling (radial_basis.h).
    const double c0 = unit_radial_coeff(radial);
    for (int pair = 0; pair < species_count * species_count; ++pair)
        for (int ch = 0, c = 0; ch < p.n_channels; ++ch, ++c) {
            if (ch > 0 && p.chan_l[ch] != p.chan_l[ch - 1]) c = 0;
            x[(size_t(pair) * p.n_channels + ch) * p.nrb + c % p.nrb] = c0;
        }
    // Cores: the constant input passes h_0 = 1 on unchanged (weight 1 from the constant
    // channel to copy 0 of L' = 0), so the chain starts as a sum of products of few
    // features; every other weight is small and pseudo-random (hash_uniform), scaled by
    // 1/sqrt of the inputs that feed one output, so no direction starts flat.
    for (int k = 0; k < p.K; ++k) {
        size_t fan = 0;
        for (const EtnPath& q : p.paths[k]) fan += size_t(q.rin) * q.nin;
        const double sigma = kEtnInitScale / std::sqrt(double(fan));
        for (const EtnPath& q : p.paths[k]) {
            const size_t n = size_t(q.rin) * q.nin * q.rout;
            for (size_t i = 0; i < n; ++i) x[q.g + i] = sigma * hash_uniform(q.g + i);
            const bool pass = k + 1 < p.K && q.L == 0 && q.l == 0 && q.Lp == 0;
            if (pass) x[q.g] = 1.0;  // a = 0, constant channel c = 0, a' = 0
        }
    }
}

std::vector<EtnModel::Group> EtnModel::groups() const {
    const EtnPlan& p = *plan;
    std::vector<Group> g{{"radial", 0, p.n_radial}};
    for (int k = 0; k + 1 < p.K; ++k) g.push_back({"core" + std::to_string(k + 1), p.core_param[k], p.core_size[k]});
    g.push_back({"species", p.species_param, size_t(species_count)});
    g.push_back({"core" + std::to_string(p.K), p.core_param[p.K - 1], p.core_size[p.K - 1]});
    return g;
}

// ---------------------------------------------------------------- spec strings

namespace {

// "1;6,4,2;3" (cores by ';', orders l by ',') or the study's "[[1],[6,4,2],[3]]".
std::vector<std::vector<int>> parse_lists(const std::string& text, const std::string& key) {
    std::vector<std::vector<int>> out;
    auto as_int = [&](double v) {
        if (v != std::floor(v) || v < 0 || v > 1e6) fail(key + "=" + text + ": entries must be integers >= 0");
        return int(v);
    };
    if (!text.empty() && text[0] == '[') {
        const Json j = parse_json(text, "potential spec " + key);
        if (j.type != Json::Array) fail(key + "=" + text + ": expected a list of lists");
        for (const Json& item : j.items) {
            std::vector<int> v;
            if (item.type == Json::Number) v.push_back(as_int(item.number));
            else if (item.type == Json::Array)
                for (const Json& x : item.items) {
                    if (x.type != Json::Number) fail(key + "=" + text + ": entries must be numbers");
                    v.push_back(as_int(x.number));
                }
            else fail(key + "=" + text + ": expected a list of lists");
            out.push_back(v);
        }
        return out;
    }
    std::istringstream groups(text);
    for (std::string g; std::getline(groups, g, ';');) {
        std::vector<int> v;
        std::istringstream entries(g);
        for (std::string e; std::getline(entries, e, ',');) {
            char* end = nullptr;
            const double d = std::strtod(e.c_str(), &end);
            if (e.empty() || *end) fail(key + "=" + text + ": '" + e + "' is not a number");
            v.push_back(as_int(d));
        }
        if (v.empty()) fail(key + "=" + text + ": empty entry");
        out.push_back(v);
    }
    return out;
}

}  // namespace

std::vector<int> expand_per_l(const std::vector<int>& v, int lmax, const std::string& what) {
    if (v.size() == 1) return std::vector<int>(lmax + 1, v[0]);
    if (int(v.size()) != lmax + 1)
        fail(what + " has " + std::to_string(v.size()) + " entries: give one (for every l) or lmax + 1 = " +
             std::to_string(lmax + 1));
    return v;
}

int infer_lmax(const std::vector<std::vector<int>>& shape, const std::vector<std::vector<int>>& ranks) {
    int longest = 1;
    for (const auto* lists : {&shape, &ranks})
        for (const auto& v : *lists) longest = std::max(longest, int(v.size()));
    return longest > 1 ? longest - 1 : kEtnDefaultLmax;
}

EtnModel etn_from_spec(const std::string& spec) {
    const SpecWords kv(spec, "etn", {"species", "lmax", "shape", "ranks", "radial_basis_type", "radial_basis_size",
                                     "min_dist", "max_dist", "scaling"});
    EtnModel m;
    if (kv.has("radial_basis_type") && kv.text("radial_basis_type") != "chebyshev" &&
        kv.text("radial_basis_type") != "RBChebyshev")
        fail("radial_basis_type must be chebyshev, got '" + kv.text("radial_basis_type") + "'");
    const auto shape = parse_lists(kv.has("shape") ? kv.text("shape") : "1;6;3", "shape");
    if (shape.empty()) fail("shape must list at least one core");
    std::vector<std::vector<int>> ranks;
    if (kv.has("ranks")) ranks = parse_lists(kv.text("ranks"), "ranks");
    else ranks.assign(shape.size() - 1, {1});
    if (kv.has("species")) m.species_count = kv.integer("species");
    m.lmax = kv.has("lmax") ? kv.integer("lmax") : infer_lmax(shape, ranks);
    if (m.lmax < 0 || m.lmax > kEtnMaxLmax) fail("lmax must be in 0.." + std::to_string(kEtnMaxLmax));
    for (size_t k = 0; k < shape.size(); ++k)
        m.shape.push_back(expand_per_l(shape[k], m.lmax, "shape of core " + std::to_string(k + 1)));
    for (size_t b = 0; b < ranks.size(); ++b)
        m.ranks.push_back(expand_per_l(ranks[b], m.lmax, "ranks of bond " + std::to_string(b + 1)));
    if (kv.has("radial_basis_size")) m.radial.size = kv.integer("radial_basis_size");
    if (kv.has("min_dist")) m.radial.min_dist = kv.number("min_dist");
    if (kv.has("max_dist")) m.radial.max_dist = kv.number("max_dist");
    if (kv.has("scaling")) m.radial.scaling = kv.number("scaling");
    m.build();
    return m;
}

}  // namespace mlipc
