// The key=value words of a potential spec string ("mtp level=16 species=2 ..."), checked
// against the keys a kind knows, with typed access.  Errors are FormatErrors naming
// the word.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace mlipc {

class SpecWords {
public:
    // Throws when the first word is not `kind`, a word is not key=value, or a key is
    // not in `known`.
    SpecWords(const std::string& spec, const std::string& kind, const std::vector<std::string>& known);
    bool has(const std::string& key) const { return kv_.count(key) > 0; }
    const std::string& text(const std::string& key) const;
    double number(const std::string& key) const;  // finite
    int integer(const std::string& key) const;

private:
    std::map<std::string, std::string> kv_;
};

}  // namespace mlipc
