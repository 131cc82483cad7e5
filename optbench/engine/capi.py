"""ctypes binding to any library implementing ``engine/include/mlipc.h``.

By default it loads the embedded engine (``libmlipc.so`` inside the installed
``optbench`` package); give ``lib_path`` (or set ``OPTBENCH_MLIPC_LIB``) to drive
another implementation of the same header, such as a patched MLIP-4 build.  Every
return code is checked: a failing call raises :class:`EngineError` (or a subclass
matching the code) carrying the engine's own message.  Arrays go to the engine
without copies when they already are C-contiguous float64 / int32 / int64.

The binding imports nothing from the rest of optbench (like spglib's Python binding: a
flat C API, opaque handles, error codes), so it can be used, and tested, on its own.

Units throughout: Angstrom, eV, eV/Angstrom; stresses are MLIP's ``PlusStress``
virial in eV, order xx yy zz yz xz xy.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import numpy as np

ABI_VERSION = 1
LIBRARY_NAME = "libmlipc.so"

_c_double_p = ctypes.POINTER(ctypes.c_double)
_c_int64_p = ctypes.POINTER(ctypes.c_int64)
_c_int32_p = ctypes.POINTER(ctypes.c_int32)


class EngineError(RuntimeError):
    """A call into the engine failed; ``code`` is the mlipc status code."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class EngineArgumentError(EngineError, ValueError):
    """MLIPC_ERR_ARGUMENT: a wrong length, index or setting."""


class EngineIOError(EngineError, OSError):
    """MLIPC_ERR_IO: a file could not be read or written."""


class EngineFormatError(EngineError, ValueError):
    """MLIPC_ERR_FORMAT: a malformed potential file or spec string."""


class EngineDataError(EngineError, ValueError):
    """MLIPC_ERR_DATA: data inconsistent with the potential or with itself."""


class EngineNumericError(EngineError, FloatingPointError):
    """MLIPC_ERR_NUMERIC: a non-finite value where a finite one is required."""


class EngineUnsupportedError(EngineError, NotImplementedError):
    """MLIPC_ERR_UNSUPPORTED: a valid request this implementation or potential kind
    cannot serve (e.g. mlipc_linear_system for an ETN)."""


_ERRORS = {1: EngineArgumentError, 2: EngineIOError, 3: EngineFormatError,
           4: EngineDataError, 5: EngineNumericError, 7: EngineUnsupportedError}

# File formats of each potential kind, by extension (what Potential.save accepts).
SUFFIXES = {"mtp": (".mtp", ".almtp"), "etn": (".json",)}


def default_library_path() -> Path:
    """Path of the embedded engine: $OPTBENCH_MLIPC_LIB, else next to this package."""
    env = os.environ.get("OPTBENCH_MLIPC_LIB")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / LIBRARY_NAME


def _ptr(a: np.ndarray | None, ctype):
    return None if a is None else a.ctypes.data_as(ctypes.POINTER(ctype))


def _as(a, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


class Engine:
    """One loaded implementation of mlipc.h."""

    def __init__(self, lib_path: str | os.PathLike | None = None):
        path = Path(lib_path) if lib_path is not None else default_library_path()
        if not path.exists():
            hint = ("build the embedded engine with `make install` (or `pip install -e .`)"
                    if lib_path is None and "OPTBENCH_MLIPC_LIB" not in os.environ
                    else "check the library path setting (--lib / OPTBENCH_MLIPC_LIB)")
            raise FileNotFoundError(f"mlipc library not found at {path}: {hint}")
        try:
            self.lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise OSError(f"cannot load mlipc library {path}: {exc}") from exc
        self.path = path
        self._declare()
        abi = self.lib.mlipc_abi_version()
        if abi != ABI_VERSION:
            raise EngineError(-1, f"{path} implements mlipc ABI {abi}, this binding needs {ABI_VERSION}")

    def _declare(self) -> None:
        L, i32, i64, d, sz = self.lib, ctypes.c_int, ctypes.c_int64, ctypes.c_double, ctypes.c_size_t
        vp, cp = ctypes.c_void_p, ctypes.c_char_p
        sigs = {
            "mlipc_abi_version": (i32, []),
            "mlipc_version": (cp, []),
            "mlipc_last_error": (cp, []),
            "mlipc_set_num_threads": (i32, [i32]),
            "mlipc_get_num_threads": (i32, [ctypes.POINTER(i32)]),
            "mlipc_potential_load": (i32, [cp, ctypes.POINTER(vp)]),
            "mlipc_potential_from_spec": (i32, [cp, ctypes.POINTER(vp)]),
            "mlipc_potential_save": (i32, [vp, cp]),
            "mlipc_potential_free": (None, [vp]),
            "mlipc_potential_n_params": (i32, [vp, _c_int64_p]),
            "mlipc_potential_get_params": (i32, [vp, _c_double_p, i64]),
            "mlipc_potential_set_params": (i32, [vp, _c_double_p, i64]),
            "mlipc_potential_default_params": (i32, [vp, _c_double_p, i64]),
            "mlipc_potential_info": (i32, [vp, ctypes.c_char_p, sz, ctypes.POINTER(sz)]),
            "mlipc_potential_get_scalar": (i32, [vp, cp, ctypes.POINTER(d)]),
            "mlipc_potential_set_scalar": (i32, [vp, cp, d]),
            "mlipc_dataset_create": (i32, [i64, _c_int64_p, _c_double_p, _c_int32_p, _c_double_p,
                                           _c_int32_p, d, ctypes.POINTER(vp)]),
            "mlipc_dataset_set_labels": (i32, [vp, _c_double_p, _c_double_p, _c_double_p]),
            "mlipc_dataset_free": (None, [vp]),
            "mlipc_dataset_size": (i32, [vp, _c_int64_p, _c_int64_p, _c_int64_p]),
            "mlipc_predict": (i32, [vp, vp, _c_int64_p, i64, _c_double_p, _c_double_p, _c_double_p]),
            "mlipc_loss_grad": (i32, [vp, vp, _c_int64_p, i64, _c_double_p, _c_double_p, _c_double_p]),
        }
        # Later additions to mlipc.h: an implementation without them still loads, and the
        # method using one raises EngineError (MLIPC_ERR_UNSUPPORTED) when called.
        optional = {
            "mlipc_linear_system": (i32, [vp, vp, _c_int64_p, i64, _c_double_p, _c_int64_p, _c_double_p,
                                          _c_double_p, _c_double_p]),
            "mlipc_jt_product": (i32, [vp, vp, _c_int64_p, i64, _c_double_p, _c_double_p, _c_double_p, _c_double_p]),
            "mlipc_linear_design": (i32, [vp, vp, _c_int64_p, i64, _c_int64_p, _c_double_p, _c_double_p,
                                          _c_double_p]),
            "mlipc_dataset_update_positions": (i32, [vp, _c_double_p, _c_double_p]),
        }
        for name, (res, args) in sigs.items():
            try:
                fn = getattr(L, name)
            except AttributeError as exc:
                raise EngineError(-1, f"{self.path} does not export {name} (not an mlipc.h library?)") from exc
            fn.restype, fn.argtypes = res, args
        self._missing = set()
        for name, (res, args) in optional.items():
            fn = getattr(L, name, None)
            if fn is None:
                self._missing.add(name)
            else:
                fn.restype, fn.argtypes = res, args

    def _require(self, name: str) -> None:
        if name in self._missing:
            raise EngineUnsupportedError(7, f"{self.path} does not implement {name} (an older mlipc.h library)")

    def check(self, status: int) -> None:
        """Raise the exception matching a non-zero mlipc status, with the engine's message."""
        if status != 0:
            msg = (self.lib.mlipc_last_error() or b"").decode(errors="replace")
            raise _ERRORS.get(status, EngineError)(status, msg or f"mlipc error code {status}")

    @property
    def version(self) -> str:
        """Implementation name and version string."""
        return self.lib.mlipc_version().decode()

    def set_num_threads(self, n: int) -> None:
        """Use n threads in loss_grad, linear_system and predict."""
        self.check(self.lib.mlipc_set_num_threads(int(n)))

    def get_num_threads(self) -> int:
        """Number of threads loss_grad, linear_system and predict use."""
        n = ctypes.c_int()
        self.check(self.lib.mlipc_get_num_threads(ctypes.byref(n)))
        return n.value

    # ---------------------------------------------------------------- potentials
    def load_potential(self, path: str | os.PathLike) -> "Potential":
        """Read a potential file: MLIP's `.mtp` / `.almtp` (a template gets the engine's
        default coefficients) or an ETN JSON file (engine/README.md, "ETN file format")."""
        h = ctypes.c_void_p()
        self.check(self.lib.mlipc_potential_load(str(path).encode(), ctypes.byref(h)))
        return Potential(self, h)

    def potential_from_spec(self, spec: str) -> "Potential":
        """Create a potential from a spec such as ``"mtp level=16 species=2 max_dist=5.0"``
        or ``"etn species=2 lmax=2 shape=1;6;3 ranks=1;1"`` (engine/README.md)."""
        h = ctypes.c_void_p()
        self.check(self.lib.mlipc_potential_from_spec(spec.encode(), ctypes.byref(h)))
        return Potential(self, h)

    # ---------------------------------------------------------------- data sets
    def dataset_from_arrays(self, n_atoms, cells, periodic, positions, types, cutoff: float,
                            energies=None, forces=None, stresses=None) -> "EngineDataset":
        """Hand configurations to the engine (see mlipc_dataset_create); neighbour lists
        within `cutoff` (Angstrom) are built once, here."""
        n_atoms = _as(n_atoms, np.int64)
        cells = _as(cells, np.float64).reshape(-1)
        periodic = _as(periodic, np.int32)
        positions = _as(positions, np.float64).reshape(-1)
        types = _as(types, np.int32)
        n_cfg = len(n_atoms)
        total = int(n_atoms.sum()) if n_cfg else 0
        for name, arr, size in (("cells", cells, 9 * n_cfg), ("periodic", periodic, n_cfg),
                                ("positions", positions, 3 * total), ("types", types, total)):
            if arr.size != size:
                raise ValueError(f"{name} has {arr.size} values, expected {size}")
        h = ctypes.c_void_p()
        self.check(self.lib.mlipc_dataset_create(
            n_cfg, _ptr(n_atoms, ctypes.c_int64), _ptr(cells, ctypes.c_double),
            _ptr(periodic, ctypes.c_int32), _ptr(positions, ctypes.c_double),
            _ptr(types, ctypes.c_int32), float(cutoff), ctypes.byref(h)))
        ds = EngineDataset(self, h, n_atoms)
        if energies is not None or forces is not None or stresses is not None:
            ds.set_labels(energies, forces, stresses)
        return ds

    def dataset(self, data, cutoff: float) -> "EngineDataset":
        """Hand a data set with its labels to the engine: `data` is anything whose
        ``to_arrays()`` gives the arrays of :meth:`dataset_from_arrays` by name
        (optbench.io.DataSet does), so this binding imports nothing of the application."""
        if not hasattr(data, "to_arrays"):
            raise TypeError(f"Engine.dataset takes a data set with to_arrays() (optbench.io.DataSet), "
                            f"got {type(data).__name__}")
        a = data.to_arrays()
        return self.dataset_from_arrays(a["n_atoms"], a["cells"], a["periodic"], a["positions"],
                                        a["types"], cutoff, a["energies"], a["forces"], a["stresses"])

    # ---------------------------------------------------------------- evaluation
    def loss_grad(self, pot: "Potential", ds: "EngineDataset", weights, idx=None, grad: bool = True):
        """Loss of mlipc.h (eV^2-type units as weighted) and its gradient over the
        parameters, for configurations `idx` (None: all).  `weights`: (n_cfg, 3) array of
        per-configuration (wE, wF, wS).  Returns (loss, grad or None)."""
        w = _as(weights, np.float64)
        if w.shape != (ds.n_configs, 3):
            raise ValueError(f"weights must have shape ({ds.n_configs}, 3), got {w.shape}")
        ix = None if idx is None else _as(idx, np.int64)
        n = ds.n_configs if ix is None else ix.size
        g = np.empty(pot.n_params) if grad else None
        loss = ctypes.c_double()
        self.check(self.lib.mlipc_loss_grad(pot.handle, ds.handle, _ptr(ix, ctypes.c_int64), n,
                                            _ptr(w, ctypes.c_double), ctypes.byref(loss),
                                            _ptr(g, ctypes.c_double)))
        return loss.value, g

    def linear_system(self, pot: "Potential", ds: "EngineDataset", weights, idx=None):
        """Normal equations of the loss of :meth:`loss_grad` in the linear parameters at
        the potential's radial coefficients: ``loss(c) = c @ A @ c - 2 * b @ c + r0``.

        ``c`` is the trailing block of the parameter vector, species coefficients then
        moment coefficients: ``x[pot.linear_slice]`` (= ``x[groups["species"].start:
        groups["moment"].stop]``, S + alpha_scalar_moments values).  Returns ``A``
        (n_lin, n_lin) symmetric, ``b`` (n_lin,), ``r0`` (float, the loss at c = 0), summed
        over configurations `idx` (None: all) with per-configuration ``weights`` (n_cfg, 3)
        as in loss_grad.  Minimising over c: solve ``A c = b``.  An ETN (whose engine
        kernel does not assemble it): EngineUnsupportedError; EngineObjective builds it
        from predictions."""
        self._require("mlipc_linear_system")
        w = _as(weights, np.float64)
        if w.shape != (ds.n_configs, 3):
            raise ValueError(f"weights must have shape ({ds.n_configs}, 3), got {w.shape}")
        ix = None if idx is None else _as(idx, np.int64).reshape(-1)
        n = ds.n_configs if ix is None else ix.size
        nl = ctypes.c_int64(0)
        self.check(self.lib.mlipc_linear_system(pot.handle, ds.handle, None, 0, None, ctypes.byref(nl),
                                                None, None, None))
        A = np.empty((nl.value, nl.value))
        b = np.empty(nl.value)
        r0 = ctypes.c_double()
        self.check(self.lib.mlipc_linear_system(pot.handle, ds.handle, _ptr(ix, ctypes.c_int64), n,
                                                _ptr(w, ctypes.c_double), ctypes.byref(nl),
                                                _ptr(A, ctypes.c_double), _ptr(b, ctypes.c_double),
                                                ctypes.byref(r0)))
        return A, b, r0.value

    def linear_design(self, pot: "Potential", ds: "EngineDataset", idx=None):
        """The Jacobian of :meth:`predict`'s outputs with respect to the linear parameters
        ``x[pot.linear_slice]`` (see :meth:`linear_system`), for configurations `idx`
        (None: all): ``dE`` (n, n_lin) eV, ``dF`` (3 per atom, n_lin) eV/A in predict's
        force order (atom-major, x y z), ``dS`` (6 n, n_lin) eV (xx yy zz yz xz xy per
        configuration). The predictions equal these times the linear parameters exactly.
        An implementation or kind without the kernel (an ETN): EngineUnsupportedError."""
        self._require("mlipc_linear_design")
        ix = None if idx is None else _as(idx, np.int64).reshape(-1)
        sel = np.arange(ds.n_configs) if ix is None else ix
        if sel.size and (sel.min() < 0 or sel.max() >= ds.n_configs):
            raise IndexError(f"configuration index out of range 0..{ds.n_configs - 1}")
        nl = ctypes.c_int64(0)
        self.check(self.lib.mlipc_linear_design(pot.handle, ds.handle, None, 0, ctypes.byref(nl), None, None, None))
        n, atoms = sel.size, int(ds.atoms_per_config[sel].sum())
        dE, dF, dS = np.empty((n, nl.value)), np.empty((3 * atoms, nl.value)), np.empty((6 * n, nl.value))
        self.check(self.lib.mlipc_linear_design(pot.handle, ds.handle, _ptr(ix, ctypes.c_int64), n, ctypes.byref(nl),
                                                _ptr(dE, ctypes.c_double), _ptr(dF, ctypes.c_double),
                                                _ptr(dS, ctypes.c_double)))
        return dE, dF, dS

    def jt_product(self, pot: "Potential", ds: "EngineDataset", u_energy=None, u_forces=None, u_stress=None,
                   idx=None) -> np.ndarray:
        """J^T u for the Jacobian J of :meth:`predict`'s outputs (energies eV, forces eV/A,
        PlusStress eV) of configurations `idx` (None: all) with respect to the parameters:
        u_energy (n,), u_forces (atoms of the listed configurations, 3) and u_stress
        (n, 6), each None for zero, in the order predict returns them. One adjoint pass,
        the cost of a loss_grad; returns an (n_params,) array."""
        self._require("mlipc_jt_product")
        ix = None if idx is None else _as(idx, np.int64).reshape(-1)
        sel = np.arange(ds.n_configs) if ix is None else ix
        n, atoms = sel.size, int(ds.atoms_per_config[sel].sum()) if sel.size else 0
        arrays = []
        for name, u, size in (("u_energy", u_energy, n), ("u_forces", u_forces, 3 * atoms),
                              ("u_stress", u_stress, 6 * n)):
            a = None if u is None else _as(u, np.float64).reshape(-1)
            if a is not None and a.size != size:
                raise ValueError(f"{name} has {a.size} values, expected {size}")
            arrays.append(a)
        g = np.empty(pot.n_params)
        self.check(self.lib.mlipc_jt_product(pot.handle, ds.handle, _ptr(ix, ctypes.c_int64), n,
                                             *(_ptr(a, ctypes.c_double) for a in arrays), _ptr(g, ctypes.c_double)))
        return g

    def predict(self, pot: "Potential", ds: "EngineDataset", idx=None):
        """Energies (n,) eV, forces (atoms of the listed configurations, 3) eV/A and
        PlusStress (n, 6) eV for configurations `idx` (None: all), in idx order."""
        ix = None if idx is None else _as(idx, np.int64)
        sel = np.arange(ds.n_configs) if ix is None else ix
        if sel.size and (sel.min() < 0 or sel.max() >= ds.n_configs):
            raise IndexError(f"configuration index out of range 0..{ds.n_configs - 1}")
        n = sel.size
        e = np.empty(n)
        f = np.empty((int(ds.atoms_per_config[sel].sum()), 3))
        s = np.empty((n, 6))
        self.check(self.lib.mlipc_predict(pot.handle, ds.handle, _ptr(ix, ctypes.c_int64), n,
                                          _ptr(e, ctypes.c_double), _ptr(f, ctypes.c_double),
                                          _ptr(s, ctypes.c_double)))
        return e, f, s


class Potential:
    """An engine-side potential (opaque handle) with a flat float64 parameter vector."""

    def __init__(self, engine: Engine, handle: ctypes.c_void_p):
        self.engine, self.handle = engine, handle
        n = ctypes.c_int64()
        engine.check(engine.lib.mlipc_potential_n_params(handle, ctypes.byref(n)))
        self.n_params = int(n.value)

    def __del__(self):
        if getattr(self, "handle", None):
            self.engine.lib.mlipc_potential_free(self.handle)
            self.handle = None

    def get_params(self) -> np.ndarray:
        """The current parameter vector (a copy)."""
        x = np.empty(self.n_params)
        self.engine.check(self.engine.lib.mlipc_potential_get_params(self.handle, _ptr(x, ctypes.c_double), x.size))
        return x

    def set_params(self, x) -> None:
        """Replace the parameter vector; its length must be n_params and values finite."""
        x = _as(x, np.float64).reshape(-1)
        self.engine.check(self.engine.lib.mlipc_potential_set_params(self.handle, _ptr(x, ctypes.c_double), x.size))

    def default_params(self) -> np.ndarray:
        """The engine's untrained starting point (documented in info()['defaults'])."""
        x = np.empty(self.n_params)
        self.engine.check(self.engine.lib.mlipc_potential_default_params(
            self.handle, _ptr(x, ctypes.c_double), x.size))
        return x

    def save(self, path: str | os.PathLike) -> None:
        """Write the potential's file; format by extension: an MTP as .mtp or .almtp
        (MLIP's formats), an ETN as .json (``SUFFIXES``)."""
        self.engine.check(self.engine.lib.mlipc_potential_save(self.handle, str(path).encode()))

    def info(self) -> dict:
        """Description of the potential (kind, species_count, cutoff, parameter groups ...)."""
        need = ctypes.c_size_t()
        self.engine.check(self.engine.lib.mlipc_potential_info(self.handle, None, 0, ctypes.byref(need)))
        buf = ctypes.create_string_buffer(need.value)
        self.engine.check(self.engine.lib.mlipc_potential_info(self.handle, buf, need.value, None))
        return json.loads(buf.value.decode())

    def get_scalar(self, name: str) -> float:
        """A setting outside the parameter vector: 'scaling', 'min_dist', 'max_dist'."""
        v = ctypes.c_double()
        self.engine.check(self.engine.lib.mlipc_potential_get_scalar(self.handle, name.encode(), ctypes.byref(v)))
        return v.value

    def set_scalar(self, name: str, value: float) -> None:
        """Change a setting outside the parameter vector ('scaling', 'min_dist', 'max_dist')."""
        self.engine.check(self.engine.lib.mlipc_potential_set_scalar(self.handle, name.encode(), float(value)))

    @property
    def kind(self) -> str:
        """The potential's kind: "mtp" or "etn"."""
        return self.info()["kind"]

    @property
    def cutoff(self) -> float:
        """Cutoff radius (max_dist), Angstrom."""
        return self.get_scalar("max_dist")

    def groups(self) -> dict[str, slice]:
        """Parameter groups (name -> slice of the flat vector) in vector order: for an MTP
        "radial", "species", "moment"; for an ETN "radial", "core1" .. "coreK-1",
        "species", "coreK"."""
        return {g["name"]: slice(g["offset"], g["offset"] + g["size"]) for g in self.info()["groups"]}

    @property
    def linear_slice(self) -> slice:
        """The parameters the predictions are linear and homogeneous in: for an MTP the
        species then moment coefficients, the trailing block of the vector, the ``c`` of
        :meth:`Engine.linear_system`.
        For an ETN, the species coefficients and the last core (``info()["linear_groups"]``).
        ValueError for a potential whose info lists none (another mlipc.h library's),
        since the methods that solve for it cannot run there."""
        info = self.info()
        names = info.get("linear_groups", [])
        if not names:
            raise ValueError(f"the {info['kind']} potential has no linear parameter block for "
                             "mlipc_linear_system (its info()['linear_groups'] is empty): methods that "
                             "solve for linear coefficients (varpro, alternating) need an MTP or an ETN")
        g = self.groups()
        return slice(g[names[0]].start, g[names[-1]].stop)


class EngineDataset:
    """The engine's copy of a data set (opaque handle): configurations, labels and the
    neighbour lists built once (the in-memory data set it came from is optbench.io.DataSet)."""

    def __init__(self, engine: Engine, handle: ctypes.c_void_p, n_atoms: np.ndarray):
        self.engine, self.handle = engine, handle
        self.atoms_per_config = np.asarray(n_atoms, dtype=np.int64).copy()
        self.n_configs = int(self.atoms_per_config.size)

    def __del__(self):
        if getattr(self, "handle", None):
            self.engine.lib.mlipc_dataset_free(self.handle)
            self.handle = None

    def set_labels(self, energies=None, forces=None, stresses=None) -> None:
        """Reference energies (n,), forces (atoms, 3), PlusStress (n, 6); NaN = missing."""
        e = None if energies is None else _as(energies, np.float64).reshape(-1)
        f = None if forces is None else _as(forces, np.float64).reshape(-1)
        s = None if stresses is None else _as(stresses, np.float64).reshape(-1)
        for name, arr, size in (("energies", e, self.n_configs), ("forces", f, 3 * int(self.atoms_per_config.sum())),
                                ("stresses", s, 6 * self.n_configs)):
            if arr is not None and arr.size != size:
                raise ValueError(f"{name} has {arr.size} values, expected {size}")
        self.engine.check(self.engine.lib.mlipc_dataset_set_labels(
            self.handle, _ptr(e, ctypes.c_double), _ptr(f, ctypes.c_double), _ptr(s, ctypes.c_double)))

    def update_positions(self, cells, positions) -> None:
        """Move the same atoms to new `positions` (atoms of all configurations, 3; A) in
        new `cells` (n, 3, 3) rows = lattice vectors, A; None when no configuration is
        periodic), keeping the neighbour list built at creation: each pair's vector is
        recomputed with its lattice image, recovered exactly from the stored vector and
        the positions and cell it was computed from (mlipc_dataset_update_positions).  The
        caller guarantees that no pair outside the list came within the potential's
        cutoff (a skin: create with a larger cutoff); positions must not be wrapped in
        between.  An implementation without the function: EngineUnsupportedError."""
        self.engine._require("mlipc_dataset_update_positions")
        p = _as(positions, np.float64).reshape(-1)
        c = None if cells is None else _as(cells, np.float64).reshape(-1)
        for name, arr, size in (("positions", p, 3 * int(self.atoms_per_config.sum())),
                                ("cells", c, 9 * self.n_configs)):
            if arr is not None and arr.size != size:
                raise ValueError(f"{name} has {arr.size} values, expected {size}")
        self.engine.check(self.engine.lib.mlipc_dataset_update_positions(
            self.handle, _ptr(c, ctypes.c_double), _ptr(p, ctypes.c_double)))

    def size(self) -> tuple[int, int, int]:
        """(configurations, atoms, neighbour pairs within the cutoff)."""
        a, b, c = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
        self.engine.check(self.engine.lib.mlipc_dataset_size(self.handle, ctypes.byref(a), ctypes.byref(b),
                                                             ctypes.byref(c)))
        return a.value, b.value, c.value
