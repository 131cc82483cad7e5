// A small JSON reader for the engine's own files (ETN potentials), and number
// formatting for its writers.  No dependency beyond the standard library.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace mlipc {

struct Json {
    enum Type { Null, Bool, Number, String, Array, Object };
    Type type = Null;
    bool boolean = false;
    double number = 0;
    std::string text;
    std::vector<Json> items;                            // Array
    std::vector<std::pair<std::string, Json>> members;  // Object, in file order
    int line = 0;                                       // where the value starts (1-based)

    // The member `key` of an object, or nullptr.
    const Json* find(const std::string& key) const;
};

// Parses a whole JSON text; throws FormatError "where:line: what" on malformed input.
Json parse_json(const std::string& text, const std::string& where);

// Shortest round-trip decimal form of a finite double (17 significant digits).
std::string json_number(double v);

}  // namespace mlipc
