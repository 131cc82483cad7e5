// MTP coefficients, consistency checks, the spec string, and MLIP's text formats.
#include "mtp_model.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "errors.h"
#include "mtp_basis.h"
#include "spec_words.h"

namespace mlipc {

// ---------------------------------------------------------------- parameters

void MtpModel::get_params(double* x) const {
    size_t p = 0;
    for (double v : radial_coeffs) x[p++] = v;
    for (double v : species_coeffs) x[p++] = v;
    for (double v : moment_coeffs) x[p++] = v;
}

void MtpModel::set_params(const double* x) {
    size_t p = 0;
    for (double& v : radial_coeffs) v = x[p++];
    for (double& v : species_coeffs) v = x[p++];
    for (double& v : moment_coeffs) v = x[p++];
}

void MtpModel::default_params(double* x) const {
    // f_mu = Q_mu / (max_dist - min_dist)^2, so |f_mu| <= scaling on [min_dist, max_dist]:
    // moments of a few dozen neighbours stay O(1-10) and the fit starts well conditioned
    // (unit coefficients make the initial energies ~1e3 eV/atom and L-BFGS stalls).
    const double c0 = unit_radial_coeff(radial);
    for (size_t p = 0; p < n_params(); ++p) x[p] = 0.0;
    for (int pair = 0; pair < species_count * species_count; ++pair)
        for (int mu = 0; mu < radial_funcs_count; ++mu)
            if (mu < radial.size)
                x[(size_t(pair) * radial_funcs_count + mu) * radial.size + mu] = c0;
}

void MtpModel::resize_coeffs_to_defaults() {
    radial_coeffs.assign(n_radial(), 0.0);
    species_coeffs.assign(species_count, 0.0);
    moment_coeffs.assign(alpha_moment_mapping.size(), 0.0);
    std::vector<double> x(n_params());
    default_params(x.data());
    set_params(x.data());
}

void MtpModel::check() const {
    auto fail = [](const std::string& m) { throw format_error(m); };
    if (species_count < 1) fail("species_count must be >= 1");
    if (const std::string why = radial_basis_problem(radial); !why.empty()) fail(why);
    if (radial_funcs_count < 1) fail("radial_funcs_count must be >= 1");
    const int nb = int(alpha_index_basic.size());
    if (alpha_moments_count < nb) fail("alpha_moments_count < alpha_index_basic_count");
    for (size_t q = 0; q < alpha_index_basic.size(); ++q) {
        const auto& a = alpha_index_basic[q];
        if (a[0] < 0 || a[0] >= radial_funcs_count)
            fail("alpha_index_basic entry " + std::to_string(q) + " uses radial function " +
                 std::to_string(a[0]) + " but radial_funcs_count = " +
                 std::to_string(radial_funcs_count));
        if (a[1] < 0 || a[2] < 0 || a[3] < 0)
            fail("alpha_index_basic entry " + std::to_string(q) + " has a negative power");
    }
    for (size_t q = 0; q < alpha_index_times.size(); ++q) {
        const auto& t = alpha_index_times[q];
        for (int c : {t[0], t[1], t[3]})
            if (c < 0 || c >= alpha_moments_count)
                fail("alpha_index_times entry " + std::to_string(q) +
                     " refers to moment " + std::to_string(c) +
                     " outside 0.." + std::to_string(alpha_moments_count - 1));
        if (t[3] < nb)
            fail("alpha_index_times entry " + std::to_string(q) +
                 " writes into basic moment " + std::to_string(t[3]));
    }
    for (size_t q = 0; q < alpha_moment_mapping.size(); ++q)
        if (alpha_moment_mapping[q] < 0 || alpha_moment_mapping[q] >= alpha_moments_count)
            fail("alpha_moment_mapping entry " + std::to_string(q) + " out of range");
    if (radial_coeffs.size() != n_radial()) fail("wrong number of radial coefficients");
    if (species_coeffs.size() != size_t(species_count)) fail("wrong number of species coefficients");
    if (moment_coeffs.size() != alpha_moment_mapping.size())
        fail("moment_coeffs has " + std::to_string(moment_coeffs.size()) +
             " values but alpha_scalar_moments = " + std::to_string(alpha_moment_mapping.size()));
}

// ---------------------------------------------------------------- reading

namespace {

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

std::vector<double> parse_numbers(const std::string& text, const std::string& where) {
    std::string t = text;
    for (char& c : t)
        if (c == '{' || c == '}' || c == ',') c = ' ';
    std::vector<double> out;
    const char* p = t.c_str();
    while (true) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') ++p;
        if (!*p) break;
        char* end = nullptr;
        double v = std::strtod(p, &end);
        if (end == p) throw format_error(where + ": cannot read a number at '" +
                                         std::string(p).substr(0, 20) + "'");
        out.push_back(v);
        p = end;
    }
    return out;
}

int brace_balance(const std::string& s) {
    int b = 0;
    for (char c : s) b += (c == '{') - (c == '}');
    return b;
}

long to_int(double v, const std::string& where) {
    if (v != std::floor(v)) throw format_error(where + ": expected an integer, got " + std::to_string(v));
    return long(v);
}

// A file's text as it may appear in a message: control and non-ASCII bytes as \xNN (a
// binary line must not cut or garble the message), at most 60 characters.
std::string shown(const std::string& s) {
    std::string o;
    for (unsigned char c : s) {
        if (o.size() >= 60) return o + "...";
        if (c >= 0x20 && c < 0x7f) {
            o += char(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", unsigned(c));
            o += buf;
        }
    }
    return o;
}

bool is_comment(const std::string& trimmed) { return !trimmed.empty() && trimmed[0] == '#'; }

// MLIP's selection section ("#MVS_v1.1"): where reading stops.
bool is_mvs(const std::string& trimmed) { return trimmed.compare(0, 4, "#MVS") == 0; }

// The note for the comment lines skipped (1-based line numbers), "" when there are none.
std::string comments_note(const std::string& path, const std::vector<int>& at) {
    if (at.empty()) return "";
    std::string s = path + ":" + std::to_string(at[0]) + ": ";
    if (at.size() == 1) return s + "comment line skipped";
    s += std::to_string(at.size()) + " comment lines skipped (lines ";
    for (size_t q = 0; q < at.size() && q < 5; ++q) s += (q ? ", " : "") + std::to_string(at[q]);
    return s + (at.size() > 5 ? ", ...)" : ")");
}

std::vector<std::array<int, 4>> quads(const std::vector<double>& v, const std::string& where) {
    if (v.size() % 4) throw format_error(where + ": expected groups of 4 integers");
    std::vector<std::array<int, 4>> out(v.size() / 4);
    for (size_t q = 0; q < out.size(); ++q)
        for (int c = 0; c < 4; ++c) out[q][c] = int(to_int(v[4 * q + c], where));
    return out;
}

}  // namespace

MtpModel read_mtp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error("cannot open potential file '" + path + "'");
    // The lines up to MLIP's selection section, which is not read at all (binary data).
    std::vector<std::string> lines;
    std::string mvs_tag;
    for (std::string l; std::getline(in, l);) {
        const std::string t = trim(l);
        if (is_mvs(t)) {
            mvs_tag = t.substr(0, t.find_first_of(" \t"));
            break;
        }
        lines.push_back(l);
    }
    const size_t mvs_line = lines.size() + 1;  // meaningful when !mvs_tag.empty()

    MtpModel m;
    std::map<std::string, std::string> kv;
    std::map<std::string, int> key_line;
    std::vector<double> radial;
    std::vector<int> comment_lines;
    // Appends the next line (skipping comment lines) to a brace list still open.
    auto continue_braces = [&](std::string& text, size_t& n) {
        while (brace_balance(text) > 0 && n + 1 < lines.size()) {
            const std::string t = trim(lines[++n]);
            if (is_comment(t)) comment_lines.push_back(int(n + 1));
            else text += " " + t;
        }
    };
    int radial_line = 0;
    bool saw_header = false;
    for (size_t n = 0; n < lines.size(); ++n) {
        const std::string where = path + ":" + std::to_string(n + 1);
        std::string s = trim(lines[n]);
        if (s.empty()) continue;
        if (is_comment(s)) {
            comment_lines.push_back(int(n + 1));
            continue;
        }
        if (!saw_header) {
            if (s != "MTP") throw format_error(where + ": expected 'MTP' on the first line, got '" + shown(s) + "'");
            saw_header = true;
            continue;
        }
        if (s == "radial_coeffs") {
            radial_line = int(n + 1);
            // Blocks "ti-tj" followed by radial_funcs_count rows "{...}".
            while (n + 1 < lines.size()) {
                std::string t = trim(lines[n + 1]);
                if (t.empty()) { ++n; continue; }
                if (is_comment(t)) {
                    comment_lines.push_back(int(n + 2));
                    ++n;
                    continue;
                }
                if (t.find('=') != std::string::npos) break;
                ++n;
                if (t[0] == '{') {
                    std::string row = t;
                    continue_braces(row, n);
                    auto v = parse_numbers(row, path + ":" + std::to_string(n + 1));
                    radial.insert(radial.end(), v.begin(), v.end());
                } else if (t.find('-') == std::string::npos) {
                    throw format_error(path + ":" + std::to_string(n + 1) +
                                       ": expected a species pair like '0-1' or a row '{...}', got '" + shown(t) + "'");
                }
            }
            continue;
        }
        size_t eq = s.find('=');
        if (eq == std::string::npos)
            throw format_error(where + ": expected 'key = value', got '" + shown(s) + "'");
        std::string key = trim(s.substr(0, eq)), val = trim(s.substr(eq + 1));
        continue_braces(val, n);
        if (brace_balance(val) != 0) throw format_error(where + ": unbalanced braces in '" + shown(key) + "'");
        kv[key] = val;
        key_line[key] = int(n + 1);
    }
    if (!saw_header) throw format_error(path + ": empty file, not an MTP potential");
    if (!comment_lines.empty()) m.notes.push_back(comments_note(path, comment_lines));
    if (!mvs_tag.empty())
        m.notes.push_back(path + ":" + std::to_string(mvs_line) + ": MLIP's " + shown(mvs_tag) +
                          " active-learning selection state follows; not read (it is not part of the potential)");

    static const char* known[] = {
        "version", "potential_name", "scaling", "species_count", "potential_tag",
        "radial_basis_type", "min_dist", "max_dist", "radial_basis_size", "radial_funcs_count",
        "alpha_moments_count", "alpha_index_basic_count", "alpha_index_basic",
        "alpha_index_times_count", "alpha_index_times", "alpha_scalar_moments",
        "alpha_moment_mapping", "species_coeffs", "moment_coeffs"};
    for (const auto& [k, v] : kv) {
        bool ok = false;
        for (const char* q : known) ok |= (k == q);
        if (!ok) throw format_error(path + ":" + std::to_string(key_line[k]) + ": unknown key '" + shown(k) + "'");
    }
    auto where = [&](const std::string& k) { return path + ":" + std::to_string(key_line[k]) + " (" + k + ")"; };
    auto need = [&](const std::string& k) -> const std::string& {
        auto it = kv.find(k);
        if (it == kv.end()) throw format_error(path + ": missing '" + k + "'");
        return it->second;
    };
    auto num = [&](const std::string& k) {
        auto v = parse_numbers(need(k), where(k));
        if (v.size() != 1) throw format_error(where(k) + ": expected one number");
        return v[0];
    };
    auto integer = [&](const std::string& k) { return int(to_int(num(k), where(k))); };

    if (kv.count("version")) m.version = kv["version"];
    if (kv.count("potential_name")) m.potential_name = kv["potential_name"];
    if (kv.count("scaling")) m.radial.scaling = num("scaling");
    if (need("radial_basis_type") != "RBChebyshev")
        throw format_error(where("radial_basis_type") + ": only RBChebyshev is supported, got '" +
                           kv["radial_basis_type"] + "'");
    m.species_count = integer("species_count");
    m.radial.min_dist = num("min_dist");
    m.radial.max_dist = num("max_dist");
    m.radial.size = integer("radial_basis_size");
    m.radial_funcs_count = integer("radial_funcs_count");
    m.alpha_moments_count = integer("alpha_moments_count");
    m.alpha_index_basic = quads(parse_numbers(need("alpha_index_basic"), where("alpha_index_basic")),
                                where("alpha_index_basic"));
    if (int(m.alpha_index_basic.size()) != integer("alpha_index_basic_count"))
        throw format_error(where("alpha_index_basic") + ": has " + std::to_string(m.alpha_index_basic.size()) +
                           " entries but alpha_index_basic_count = " + kv["alpha_index_basic_count"]);
    m.alpha_index_times = quads(parse_numbers(need("alpha_index_times"), where("alpha_index_times")),
                                where("alpha_index_times"));
    if (int(m.alpha_index_times.size()) != integer("alpha_index_times_count"))
        throw format_error(where("alpha_index_times") + ": has " + std::to_string(m.alpha_index_times.size()) +
                           " entries but alpha_index_times_count = " + kv["alpha_index_times_count"]);
    for (double v : parse_numbers(need("alpha_moment_mapping"), where("alpha_moment_mapping")))
        m.alpha_moment_mapping.push_back(int(to_int(v, where("alpha_moment_mapping"))));
    if (int(m.alpha_moment_mapping.size()) != integer("alpha_scalar_moments"))
        throw format_error(where("alpha_moment_mapping") + ": has " +
                           std::to_string(m.alpha_moment_mapping.size()) +
                           " entries but alpha_scalar_moments = " + kv["alpha_scalar_moments"]);

    const bool has_coeffs = kv.count("moment_coeffs") || kv.count("species_coeffs") || !radial.empty();
    if (!has_coeffs) {
        m.resize_coeffs_to_defaults();  // an untrained template
    } else {
        m.radial_coeffs = radial;
        if (radial.size() != m.n_radial())
            throw format_error(path + ":" + std::to_string(radial_line) + ": radial_coeffs has " +
                               std::to_string(radial.size()) + " values, expected species_count^2 x "
                               "radial_funcs_count x radial_basis_size = " + std::to_string(m.n_radial()));
        m.species_coeffs = parse_numbers(need("species_coeffs"), where("species_coeffs"));
        m.moment_coeffs = parse_numbers(need("moment_coeffs"), where("moment_coeffs"));
        if (m.species_coeffs.size() != size_t(m.species_count))
            throw format_error(where("species_coeffs") + ": expected " + std::to_string(m.species_count) + " values");
    }
    try {
        m.check();
    } catch (const EngineError& e) {
        throw format_error(path + ": " + e.what());
    }
    for (double v : m.radial_coeffs)
        if (!std::isfinite(v)) throw format_error(path + ": non-finite radial coefficient");
    for (double v : m.moment_coeffs)
        if (!std::isfinite(v)) throw format_error(path + ": non-finite moment coefficient");
    for (double v : m.species_coeffs)
        if (!std::isfinite(v)) throw format_error(path + ": non-finite species coefficient");
    return m;
}

// ---------------------------------------------------------------- writing

namespace {

std::string fmt(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.16e", v);  // 17 significant digits: lossless
    return buf;
}

template <class T>
std::string list(const std::vector<T>& v) {
    std::string s = "{";
    for (size_t q = 0; q < v.size(); ++q) {
        if (q) s += ", ";
        if constexpr (std::is_same_v<T, double>) s += fmt(v[q]); else s += std::to_string(v[q]);
    }
    return s + "}";
}

std::string quad_list(const std::vector<std::array<int, 4>>& v) {
    std::string s = "{";
    for (size_t q = 0; q < v.size(); ++q) {
        if (q) s += ", ";
        s += "{" + std::to_string(v[q][0]) + ", " + std::to_string(v[q][1]) + ", " +
             std::to_string(v[q][2]) + ", " + std::to_string(v[q][3]) + "}";
    }
    return s + "}";
}

}  // namespace

void write_mtp(const MtpModel& m, const std::string& path) {
    std::ostringstream o;
    o << "MTP\n"
      << "version = " << m.version << "\n"
      << "potential_name = " << m.potential_name << "\n"
      << "scaling = " << fmt(m.radial.scaling) << "\n"
      << "species_count = " << m.species_count << "\n"
      << "potential_tag = \n"
      << "radial_basis_type = RBChebyshev\n"
      << "\tmin_dist = " << fmt(m.radial.min_dist) << "\n"
      << "\tmax_dist = " << fmt(m.radial.max_dist) << "\n"
      << "\tradial_basis_size = " << m.radial.size << "\n"
      << "\tradial_funcs_count = " << m.radial_funcs_count << "\n"
      << "\tradial_coeffs\n";
    const int nrb = m.radial.size, nmu = m.radial_funcs_count;
    for (int ti = 0; ti < m.species_count; ++ti)
        for (int tj = 0; tj < m.species_count; ++tj) {
            o << "\t\t" << ti << "-" << tj << "\n";
            for (int mu = 0; mu < nmu; ++mu) {
                const double* c = &m.radial_coeffs[((size_t(ti) * m.species_count + tj) * nmu + mu) * nrb];
                o << "\t\t\t" << list(std::vector<double>(c, c + nrb)) << "\n";
            }
        }
    o << "alpha_moments_count = " << m.alpha_moments_count << "\n"
      << "alpha_index_basic_count = " << m.alpha_index_basic.size() << "\n"
      << "alpha_index_basic = " << quad_list(m.alpha_index_basic) << "\n"
      << "alpha_index_times_count = " << m.alpha_index_times.size() << "\n"
      << "alpha_index_times = " << quad_list(m.alpha_index_times) << "\n"
      << "alpha_scalar_moments = " << m.alpha_moment_mapping.size() << "\n"
      << "alpha_moment_mapping = " << list(m.alpha_moment_mapping) << "\n"
      << "species_coeffs = " << list(m.species_coeffs) << "\n"
      << "moment_coeffs = " << list(m.moment_coeffs) << "\n";
    std::ofstream out(path);
    if (!out) throw io_error("cannot open '" + path + "' for writing");
    out << o.str();
    if (!out) throw io_error("failed writing '" + path + "'");
}

// ---------------------------------------------------------------- spec strings

MtpModel mtp_from_spec(const std::string& spec) {
    const SpecWords kv(spec, "mtp", {"level", "template", "species", "min_dist", "max_dist", "radial_basis_size",
                                     "radial_funcs_count", "scaling"});
    if (kv.has("level") == kv.has("template"))
        throw format_error("potential spec: give exactly one of level=N or template=PATH");

    MtpModel m;
    if (kv.has("template")) {
        m = read_mtp(kv.text("template"));
    } else {
        MtpBasis b;
        try {
            b = generate_mtp_basis(kv.integer("level"));
        } catch (const std::invalid_argument& e) {
            throw format_error(std::string("potential spec: ") + e.what());
        }
        m.level = b.level;
        m.radial_funcs_count = b.radial_funcs_count;
        m.alpha_index_basic = b.alpha_index_basic;
        m.alpha_index_times = b.alpha_index_times;
        m.alpha_moment_mapping = b.alpha_moment_mapping;
        m.alpha_moments_count = b.alpha_moments_count;
    }
    if (kv.has("species")) m.species_count = kv.integer("species");
    if (kv.has("min_dist")) m.radial.min_dist = kv.number("min_dist");
    if (kv.has("max_dist")) m.radial.max_dist = kv.number("max_dist");
    if (kv.has("radial_basis_size")) m.radial.size = kv.integer("radial_basis_size");
    if (kv.has("radial_funcs_count")) m.radial_funcs_count = kv.integer("radial_funcs_count");
    if (kv.has("scaling")) m.radial.scaling = kv.number("scaling");
    m.resize_coeffs_to_defaults();
    m.check();
    return m;
}

namespace {

// A JSON string literal of any bytes: quotes, backslashes and control characters escaped
// (other bytes pass as they are: the text is UTF-8 or ASCII).
std::string json_string(const std::string& s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            case '\b': o += "\\b"; break;
            case '\f': o += "\\f"; break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
                    o += buf;
                } else {
                    o += char(c);
                }
        }
    }
    return o + "\"";
}

}  // namespace

std::string mtp_info_json(const MtpModel& m) {
    std::ostringstream o;
    const size_t nr = m.n_radial(), ns = m.species_count, nm = m.moment_coeffs.size();
    o << "{\"kind\": \"mtp\", \"level\": " << (m.level ? std::to_string(m.level) : "null")
      << ", \"species_count\": " << m.species_count << ", \"cutoff\": " << fmt(m.radial.max_dist)
      << ", \"min_dist\": " << fmt(m.radial.min_dist) << ", \"max_dist\": " << fmt(m.radial.max_dist)
      << ", \"scaling\": " << fmt(m.radial.scaling) << ", \"radial_basis_size\": " << m.radial.size
      << ", \"radial_funcs_count\": " << m.radial_funcs_count
      << ", \"alpha_moments_count\": " << m.alpha_moments_count
      << ", \"alpha_index_basic_count\": " << m.alpha_index_basic.size()
      << ", \"alpha_index_times_count\": " << m.alpha_index_times.size()
      << ", \"alpha_scalar_moments\": " << m.alpha_moment_mapping.size()
      << ", \"n_params\": " << m.n_params() << ", \"groups\": ["
      << "{\"name\": \"radial\", \"offset\": 0, \"size\": " << nr << "}, "
      << "{\"name\": \"species\", \"offset\": " << nr << ", \"size\": " << ns << "}, "
      << "{\"name\": \"moment\", \"offset\": " << nr + ns << ", \"size\": " << nm << "}], "
      << "\"linear_groups\": [\"species\", \"moment\"], \"notes\": [";
    for (size_t q = 0; q < m.notes.size(); ++q) o << (q ? ", " : "") << json_string(m.notes[q]);
    o << "], "
      << "\"defaults\": \"radial f_mu = Q_mu / (max_dist - min_dist)^2 for every species pair; species and moment coefficients 0\"}";
    return o.str();
}

}  // namespace mlipc
