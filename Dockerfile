# syntax=docker/dockerfile:1
#
# optbench: the harness with its embedded engine, `optbench` as the entry point.
# Optionally MLIP built from a source tree in the build context: MLIP-4 with
# mlip4_patches (its `mlp` and the C-ABI library libmlip4_capi.so), or MLIP-3 (`mlp`).
#
#   docker build -t optbench .
#   docker build -t optbench-mlip --build-arg MLIP_SRC=mlip4 .   # ./mlip4: an MLIP-4 tree
#   docker run --rm optbench train "mtp level=8" /data/train.cfg --optimizer adam ...
#
# Needs BuildKit (the default builder since Docker 23): it builds only the MLIP stage
# that MLIP_SRC selects, and mounts the wheels instead of copying them.  See README.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# A folder of the build context holding an MLIP-4 or MLIP-3 source tree; empty: no MLIP.
ARG MLIP_SRC=""

# ---- a C++ toolchain on the runtime's base image, so that what it builds runs there
FROM ${PYTHON_IMAGE} AS toolchain
# Versions come with the base image's Debian release: exact pins break at its next point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*

# ---- the engine and the package, as wheels (with every dependency, for an offline install)
FROM toolchain AS build
WORKDIR /src/optbench
# .gitignore too: scikit-build-core applies it when it collects the package's files.
COPY pyproject.toml CMakeLists.txt README.md .gitignore ./
COPY engine/ engine/
COPY optbench/ optbench/
# MLIPC_NATIVE=OFF: no -march=native, so the image runs on other CPUs than the builder's.
RUN pip wheel --no-cache-dir --wheel-dir /wheels -C cmake.define.MLIPC_NATIVE=OFF .

# ---- no MLIP: an empty /opt/mlip
FROM toolchain AS mlip
RUN mkdir -p /opt/mlip/bin /opt/mlip/lib

# ---- MLIP from ${MLIP_SRC}: mlp, and with MLIP-4 (a CMake tree) libmlip4_capi.so
FROM toolchain AS mlip-source
ARG MLIP_SRC
# on: build the C-ABI shim (MLIP-4); off: mlp only (an MLIP-3 CMake tree)
ARG MLIP_CAPI=on
# extra arguments for MLIP's cmake, e.g. "-DUSE_MPI=NO -DBLA_VENDOR=OpenBLAS"
ARG MLIP_CMAKE_ARGS=""
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake make gfortran libopenblas-dev liblapack-dev \
 && rm -rf /var/lib/apt/lists/*
COPY mlip4_patches/ /opt/optbench-src/mlip4_patches/
COPY engine/include/ /opt/optbench-src/engine/include/
COPY ${MLIP_SRC}/ /src/mlip/
WORKDIR /src/mlip
# A CMake tree (MLIP-4) gets the one-line patch of mlip4_patches/README.md; a tree with
# ./configure (MLIP-3) builds the serial mlp.  ${CMAKE_BINARY_DIR} is for CMake, not the shell.
# hadolint ignore=SC2016,SC2086
RUN if [ -f CMakeLists.txt ]; then \
        targets=mlp; \
        if [ "$MLIP_CAPI" = on ]; then \
            echo 'add_subdirectory(/opt/optbench-src/mlip4_patches ${CMAKE_BINARY_DIR}/mlip4_capi)' >> CMakeLists.txt; \
            targets="mlp mlip4_capi"; \
        fi; \
        cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $MLIP_CMAKE_ARGS \
        && cmake --build build -j "$(nproc)" --target $targets; \
    elif [ -x configure ]; then \
        ./configure --no-mpi && make -j "$(nproc)" mlp; \
    else \
        echo "MLIP_SRC=$MLIP_SRC has neither CMakeLists.txt nor configure" >&2; exit 1; \
    fi \
 && mlp="" \
 && for d in build bin; do \
        if [ -z "$mlp" ] && [ -d "$d" ]; then mlp="$(find "$d" -type f -name mlp -perm -u+x -print -quit)"; fi; \
    done \
 && test -n "$mlp" \
 && install -D -m 755 "$mlp" /opt/mlip/bin/mlp \
 && mkdir -p /opt/mlip/lib \
 && if [ -f build/mlip4_capi/libmlip4_capi.so ]; then \
        install -m 755 build/mlip4_capi/libmlip4_capi.so /opt/mlip/lib/; \
    fi

# ---- the MLIP stage MLIP_SRC selects ("mlip" when empty, "mlip-source" otherwise)
# A stage of this file, not an image: there is no tag to give.
# hadolint ignore=DL3006
FROM mlip${MLIP_SRC:+-source} AS mlip-selected

# ---- the image
FROM ${PYTHON_IMAGE} AS runtime
ARG MLIP_SRC
# libgomp1: the engine's OpenMP; with MLIP, what its mlp links (BLAS, LAPACK, Fortran runtime).
# hadolint ignore=DL3008,SC2086
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 ${MLIP_SRC:+libopenblas0 liblapack3 libgfortran5} \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=build,source=/wheels,target=/tmp/wheels \
    pip install --no-cache-dir --no-index --find-links=/tmp/wheels /tmp/wheels/mlip_optbench-*.whl
COPY --from=mlip-selected /opt/mlip /opt/mlip
# A numeric user, so that the host and `docker run --user` can resolve it; it owns /work,
# where experiment files write their results (beside themselves).
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin optbench \
 && install -d -o 10001 -g 10001 /work /work/experiments
WORKDIR /work
COPY --chown=10001:10001 experiments/*.toml experiments/
# OPTBENCH_MLP: the mlp of the native optimizer and the mlp-cli engine (empty without MLIP).
# libmlip4_capi.so, when built, is /opt/mlip/lib/libmlip4_capi.so (--engine capi --lib ...).
ENV PATH=/opt/mlip/bin:$PATH \
    OPTBENCH_MLP=${MLIP_SRC:+/opt/mlip/bin/mlp} \
    MPLBACKEND=Agg \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["optbench"]
CMD ["--help"]
