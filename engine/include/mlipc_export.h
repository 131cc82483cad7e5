/*
 * mlipc_export.h -- symbol visibility for the C ABI of libmlipc.
 *
 * The library is compiled with -fvisibility=hidden (CMakeLists.txt), so only
 * functions marked MLIPC_API are exported from libmlipc.so.  Mark every
 * definition (and, ideally, declaration) of a function from mlipc.h:
 *
 *     extern "C" MLIPC_API int mlipc_abi_version(void) { return MLIPC_ABI_VERSION; }
 *
 * On Windows the library is built with MLIPC_BUILDING defined (CMakeLists.txt)
 * and exports with __declspec(dllexport); consumers get dllimport.
 */
#ifndef MLIPC_EXPORT_H
#define MLIPC_EXPORT_H

#if defined(_WIN32) || defined(__CYGWIN__)
#  ifdef MLIPC_BUILDING
#    define MLIPC_API __declspec(dllexport)
#  else
#    define MLIPC_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define MLIPC_API __attribute__((visibility("default")))
#else
#  define MLIPC_API
#endif

#endif /* MLIPC_EXPORT_H */
