// Exceptions thrown inside the engine; the C ABI layer turns each into its status code
// and keeps the message for mlipc_last_error().
#pragma once

#include <stdexcept>
#include <string>

#include "mlipc.h"

namespace mlipc {

struct EngineError : std::runtime_error {
    int code;
    EngineError(int c, const std::string& msg) : std::runtime_error(msg), code(c) {}
};

inline EngineError argument_error(const std::string& m) { return {MLIPC_ERR_ARGUMENT, m}; }
inline EngineError io_error(const std::string& m) { return {MLIPC_ERR_IO, m}; }
inline EngineError format_error(const std::string& m) { return {MLIPC_ERR_FORMAT, m}; }
inline EngineError data_error(const std::string& m) { return {MLIPC_ERR_DATA, m}; }
inline EngineError numeric_error(const std::string& m) { return {MLIPC_ERR_NUMERIC, m}; }
inline EngineError unsupported_error(const std::string& m) { return {MLIPC_ERR_UNSUPPORTED, m}; }

}  // namespace mlipc
