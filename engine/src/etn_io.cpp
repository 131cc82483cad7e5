// The ETN potential file (JSON, engine/README.md "ETN file format") and the info JSON.
#include <cmath>
#include <fstream>
#include <sstream>

#include "errors.h"
#include "etn_model.h"
#include "etn_plan.h"
#include "json.h"

namespace mlipc {

namespace {

constexpr const char* kFormat = "optbench-etn";
constexpr int kVersion = 1;

std::string list(const std::vector<double>& v) {
    std::string s = "[";
    for (size_t q = 0; q < v.size(); ++q) s += (q ? ", " : "") + json_number(v[q]);
    return s + "]";
}

std::string int_lists(const std::vector<std::vector<int>>& v) {
    std::string s = "[";
    for (size_t k = 0; k < v.size(); ++k) {
        s += k ? ", [" : "[";
        for (size_t l = 0; l < v[k].size(); ++l) s += (l ? ", " : "") + std::to_string(v[k][l]);
        s += "]";
    }
    return s + "]";
}

// Typed access to the members of the file's top-level object, errors naming path:line.
struct Reader {
    const Json& root;
    const std::string& path;
    std::string at(const Json& v) const { return path + ":" + std::to_string(v.line); }
    const Json& need(const std::string& key, Json::Type type) const {
        const Json* v = root.find(key);
        if (!v) throw format_error(path + ": missing \"" + key + "\"");
        if (v->type != type) throw format_error(at(*v) + ": \"" + key + "\" has the wrong JSON type");
        return *v;
    }
    double number(const Json& v, const std::string& what) const {
        if (v.type != Json::Number || !std::isfinite(v.number))
            throw format_error(at(v) + ": " + what + " must be a finite number");
        return v.number;
    }
    int integer(const Json& v, const std::string& what) const {
        const double d = number(v, what);
        if (d != std::floor(d)) throw format_error(at(v) + ": " + what + " must be an integer");
        return int(d);
    }
    std::vector<double> numbers(const Json& v, const std::string& what) const {
        if (v.type != Json::Array) throw format_error(at(v) + ": " + what + " must be a list of numbers");
        std::vector<double> out;
        for (const Json& x : v.items) out.push_back(number(x, what));
        return out;
    }
    std::vector<std::vector<int>> int_lists(const std::string& key) const {
        const Json& v = need(key, Json::Array);
        std::vector<std::vector<int>> out;
        for (const Json& row : v.items) {
            if (row.type != Json::Array) throw format_error(at(row) + ": \"" + key + "\" must be a list of lists");
            std::vector<int> r;
            for (const Json& x : row.items) r.push_back(integer(x, key));
            out.push_back(r);
        }
        return out;
    }
};

}  // namespace

EtnModel read_etn(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw io_error("cannot open potential file '" + path + "'");
    std::stringstream buf;
    buf << in.rdbuf();
    const Json root = parse_json(buf.str(), path);
    if (root.type != Json::Object) throw format_error(path + ": an ETN file is a JSON object");
    static const char* known[] = {"format", "version", "comment", "kind", "species_count", "lmax", "shape", "ranks",
                                  "radial_basis", "n_params", "radial_coeffs", "species_coeffs", "cores"};
    for (const auto& [k, v] : root.members) {
        bool ok = false;
        for (const char* q : known) ok |= (k == q);
        if (!ok) throw format_error(path + ":" + std::to_string(v.line) + ": unknown key \"" + k + "\"");
    }
    const Reader r{root, path};
    if (r.need("format", Json::String).text != kFormat)
        throw format_error(r.at(*root.find("format")) + ": format must be \"" + kFormat + "\"");
    if (r.integer(r.need("version", Json::Number), "version") != kVersion)
        throw format_error(r.at(*root.find("version")) + ": this engine reads version " + std::to_string(kVersion));
    EtnModel m;
    m.species_count = r.integer(r.need("species_count", Json::Number), "species_count");
    const auto shape = r.int_lists("shape"), ranks = r.int_lists("ranks");
    m.lmax = root.find("lmax") ? r.integer(*root.find("lmax"), "lmax") : infer_lmax(shape, ranks);
    try {
        for (size_t k = 0; k < shape.size(); ++k)
            m.shape.push_back(expand_per_l(shape[k], m.lmax, "shape of core " + std::to_string(k + 1)));
        for (size_t b = 0; b < ranks.size(); ++b)
            m.ranks.push_back(expand_per_l(ranks[b], m.lmax, "ranks of bond " + std::to_string(b + 1)));
    } catch (const EngineError& e) {
        throw format_error(path + ": " + e.what());
    }
    const Json& rb = r.need("radial_basis", Json::Object);
    for (const auto& [k, v] : rb.members) {
        if (k == "type") {
            if (v.type != Json::String || v.text != "chebyshev")
                throw format_error(r.at(v) + ": radial_basis type must be \"chebyshev\"");
        } else if (k == "size") m.radial.size = r.integer(v, "radial_basis size");
        else if (k == "min_dist") m.radial.min_dist = r.number(v, "min_dist");
        else if (k == "max_dist") m.radial.max_dist = r.number(v, "max_dist");
        else if (k == "scaling") m.radial.scaling = r.number(v, "scaling");
        else throw format_error(r.at(v) + ": unknown radial_basis key \"" + k + "\"");
    }
    m.radial_coeffs = r.numbers(r.need("radial_coeffs", Json::Array), "radial_coeffs");
    m.species_coeffs = r.numbers(r.need("species_coeffs", Json::Array), "species_coeffs");
    for (const Json& c : r.need("cores", Json::Array).items) m.cores.push_back(r.numbers(c, "core weights"));
    try {
        m.build();
    } catch (const EngineError& e) {
        throw format_error(path + ": " + e.what());
    }
    if (const Json* n = root.find("n_params"); n && r.integer(*n, "n_params") != int64_t(m.n_params()))
        throw format_error(r.at(*n) + ": n_params is " + json_number(n->number) + " but shape, ranks, lmax and "
                           "species give " + std::to_string(m.n_params()));
    return m;
}

void write_etn(const EtnModel& m, const std::string& path) {
    std::ostringstream o;
    o << "{\n  \"format\": \"" << kFormat << "\",\n  \"version\": " << kVersion << ",\n  \"kind\": \"etn\",\n"
      << "  \"species_count\": " << m.species_count << ",\n  \"lmax\": " << m.lmax << ",\n"
      << "  \"shape\": " << int_lists(m.shape) << ",\n  \"ranks\": " << int_lists(m.ranks) << ",\n"
      << "  \"radial_basis\": {\"type\": \"chebyshev\", \"size\": " << m.radial.size
      << ", \"min_dist\": " << json_number(m.radial.min_dist) << ", \"max_dist\": " << json_number(m.radial.max_dist)
      << ", \"scaling\": " << json_number(m.radial.scaling) << "},\n"
      << "  \"n_params\": " << m.n_params() << ",\n"
      << "  \"radial_coeffs\": " << list(m.radial_coeffs) << ",\n"
      << "  \"species_coeffs\": " << list(m.species_coeffs) << ",\n  \"cores\": [";
    for (size_t k = 0; k < m.cores.size(); ++k) o << (k ? ",\n    " : "\n    ") << list(m.cores[k]);
    o << "\n  ]\n}\n";
    std::ofstream out(path);
    if (!out) throw io_error("cannot open '" + path + "' for writing");
    out << o.str();
    if (!out) throw io_error("failed writing '" + path + "'");
}

std::string etn_info_json(const EtnModel& m) {
    const EtnPlan& p = *m.plan;
    std::ostringstream o;
    o << "{\"kind\": \"etn\", \"species_count\": " << m.species_count << ", \"cutoff\": " << json_number(m.radial.max_dist)
      << ", \"min_dist\": " << json_number(m.radial.min_dist) << ", \"max_dist\": " << json_number(m.radial.max_dist)
      << ", \"scaling\": " << json_number(m.radial.scaling) << ", \"radial_basis_size\": " << m.radial.size
      << ", \"lmax\": " << m.lmax << ", \"shape\": " << int_lists(m.shape) << ", \"ranks\": " << int_lists(m.ranks)
      << ", \"n_cores\": " << p.K << ", \"n_channels\": " << p.n_channels << ", \"n_params\": " << p.n_params
      << ", \"groups\": [";
    const auto groups = m.groups();
    for (size_t g = 0; g < groups.size(); ++g)
        o << (g ? ", " : "") << "{\"name\": \"" << groups[g].name << "\", \"offset\": " << groups[g].offset
          << ", \"size\": " << groups[g].size << "}";
    // The predictions are linear and homogeneous in the species coefficients and the last
    // core (the trailing two groups): mlipc_linear_design's columns, built from predictions.
    o << "], \"linear_groups\": [\"" << groups[groups.size() - 2].name << "\", \"" << groups.back().name << "\"], "
      << "\"defaults\": \"radial channel c of each core and l: Q_(c mod size) / (max_dist - min_dist)^2 for every "
         "species pair; cores: constant channel passed on with weight 1, other weights deterministic uniform in +-"
      << json_number(kEtnInitScale) << "/sqrt(inputs per output); species 0\"}";
    return o.str();
}

}  // namespace mlipc
