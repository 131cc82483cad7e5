// Potentials by kind: reading a file or a spec string picks the model.
#include "potential.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "errors.h"
#include "etn_model.h"
#include "mtp_model.h"

namespace mlipc {

std::unique_ptr<Potential> load_potential(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw io_error("cannot open potential file '" + path + "'");
    char c = 0;
    while (in.get(c) && std::isspace(static_cast<unsigned char>(c))) {
    }
    // MLIP's files start with "MTP"; ETN files are JSON objects.
    if (c == '{') return make_potential(read_etn(path));
    return make_potential(read_mtp(path));
}

std::unique_ptr<Potential> potential_from_spec(const std::string& spec) {
    std::istringstream in(spec);
    std::string kind;
    in >> kind;
    if (kind == "etn") return make_potential(etn_from_spec(spec));
    if (kind == "mtp") return make_potential(mtp_from_spec(spec));
    throw format_error("potential spec must start with 'mtp' or 'etn', got '" + kind + "' in '" + spec + "'");
}

bool has_extension(const std::string& path, const std::string& ext) {
    return path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
}

double& radial_setting(RadialBasis& b, const std::string& name) {
    if (name == "scaling") return b.scaling;
    if (name == "min_dist") return b.min_dist;
    if (name == "max_dist") return b.max_dist;
    throw argument_error("unknown setting '" + name + "' (known: scaling, min_dist, max_dist)");
}

}  // namespace mlipc
