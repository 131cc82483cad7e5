#include "spec_words.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "errors.h"

namespace mlipc {

SpecWords::SpecWords(const std::string& spec, const std::string& kind, const std::vector<std::string>& known) {
    std::istringstream in(spec);
    std::string first;
    in >> first;
    if (first != kind)
        throw format_error("potential spec must start with '" + kind + "', got '" + first + "' in '" + spec + "'");
    for (std::string w; in >> w;) {
        const size_t eq = w.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == w.size())
            throw format_error("potential spec: expected key=value, got '" + w + "'");
        kv_[w.substr(0, eq)] = w.substr(eq + 1);
    }
    std::string names;
    for (const auto& k : known) names += (names.empty() ? "" : ", ") + k;
    for (const auto& [k, v] : kv_) {
        bool ok = false;
        for (const auto& q : known) ok |= (k == q);
        if (!ok) throw format_error("potential spec: unknown key '" + k + "' (known: " + names + ")");
    }
}

const std::string& SpecWords::text(const std::string& key) const { return kv_.at(key); }

double SpecWords::number(const std::string& key) const {
    const std::string& s = kv_.at(key);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (*end || !std::isfinite(v)) throw format_error("potential spec: '" + key + "=" + s + "' is not a number");
    return v;
}

int SpecWords::integer(const std::string& key) const {
    const double v = number(key);
    if (v != std::floor(v)) throw format_error("potential spec: '" + key + "=" + text(key) + "' is not an integer");
    return int(v);
}

}  // namespace mlipc
