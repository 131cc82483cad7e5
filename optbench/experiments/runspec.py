"""One run of an experiment, fully specified: the contract between the experiment file
(experiment.py, which expands a TOML file into RunSpecs), the runner (runner.py, which
executes one) and the store (store.py, which keys results by it).

A RunSpec is plain JSON-able data, so it travels to worker processes and Dask workers
as it is and its canonical JSON is hashed into the run's key together with the code
version: the same specification on the same code is the same run, found finished in the
store and not redone.

Fields
------
experiment: the experiment's name (from the file).
model_name / model: the label used in tables and the model, as a dict:
    {"kind": "mtp", "level": 8, "min_dist": 2.0, "max_dist": 5.0, "engine": "embedded"}
    or {"kind": "mtp", "template": "/abs/path/08.almtp", "engine": "embedded"}
    or {"kind": "etn", "shape": [[1], [6], [3]], "ranks": [[1], [1]], "lmax": 2,
    "min_dist": 2.0, "max_dist": 5.0, "engine": "embedded"};
    "engine" is "embedded", "capi" (with "lib", a library path), "mlip4" (with
    "template", an MLIP-4 potential JSON, and optional "module") or "mlp-cli" (optional
    "mlp", the program): see optbench/engine/choice.py;
    or a foundation model {"kind": "sevennet", "model": "7net-0", "dtype": "float64",
    "train_groups": "all", "energy_shift": true} ("mace": "model" a model file).
data_name / data: the label used in tables and the data, as a dict:
    {"kind": "generate", "n_train": 240, "n_valid": 60, "seed": 0}   (Ag-Pd EMT), or
    {"kind": "files", "train": "/abs/train.cfg", "valid": "/abs/valid.cfg" | None,
     "valid_fraction": 0.2 | None, "split_seed": 0, "format": None | "cfg" | ...,
     "species": ["Ag", "Pd"] | None}.
weights: LossWeights fields {"energy", "forces", "stress", "weight_scaling",
    "weight_scaling_forces"}.
optimizer: a name of optbench.optim.REGISTRY; variant: the label of this optimizer
    setting in tables, the optimizer plus the settings that vary in the experiment's
    grids (e.g. "adam lr=0.001 batch_size=32"); runs differing only in seed share it.
settings: TrainSettings as JSON: {"hyper": {...}, "lr", "batch_size", "clip",
    "schedule": "cosine,warmup=100" | None, "budget": "epochs=50,seconds=60", "seed",
    "init_interval", "perturb_sigma", "perturb_every", "eval_every",
    "target_valid_epa" (eV/atom), "early_stop", "refine", "refine_fraction",
    "snapshot_every", "curvature" (the [analysis] section: analysis_plan.py), "mpi_ranks"
    (MPI ranks the run's data are spread over: mpi_plan.py, mpi_run.py)}; absent keys
    take TrainSettings' defaults.
threads: engine threads for this run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from optbench import __version__
from optbench.train import Budget, Schedule, TrainSettings

_SETTINGS_KEYS = ("hyper", "lr", "batch_size", "clip", "schedule", "budget", "seed", "init_interval",
                  "perturb_sigma", "perturb_every", "eval_every", "target_valid_epa", "early_stop", "refine",
                  "refine_fraction", "snapshot_every", "curvature", "mpi_ranks")


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one run (see the module docstring for each field)."""

    experiment: str
    model_name: str
    model: dict[str, Any]
    data_name: str
    data: dict[str, Any]
    weights: dict[str, Any]
    optimizer: str
    variant: str
    settings: dict[str, Any] = field(default_factory=dict)
    threads: int = 1

    def __post_init__(self):
        unknown = sorted(set(self.settings) - set(_SETTINGS_KEYS))
        if unknown:
            raise ValueError(f"run settings: unknown key(s) {', '.join(unknown)}; known: {', '.join(_SETTINGS_KEYS)}")

    @property
    def seed(self) -> int:
        """The run's seed (initialisation, mini-batch order, perturbations)."""
        return int(self.settings.get("seed", 0))

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        """Inverse of to_dict; ValueError naming an unknown or missing field."""
        names = set(cls.__dataclass_fields__)
        unknown, missing = sorted(set(d) - names), sorted(n for n in names - set(d) if n not in ("settings", "threads"))
        if unknown or missing:
            raise ValueError(f"run spec: unknown {unknown}, missing {missing}")
        return cls(**d)

    def canonical_json(self) -> str:
        """The spec as JSON with sorted keys and no spaces: equal specs, equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    def key(self, code_version: str | None = None) -> str:
        """The run's key in the store: 16 hex digits of SHA-256 over the canonical spec
        and the code version (default: `current_code_version()`)."""
        version = code_version if code_version is not None else current_code_version()
        return hashlib.sha256(f"{version}\n{self.canonical_json()}".encode()).hexdigest()[:16]

    def train_settings(self):
        """The TrainSettings this spec describes."""
        s = dict(self.settings)
        kw = {k: s[k] for k in ("hyper", "lr", "batch_size", "clip", "seed", "init_interval", "perturb_sigma",
                                "perturb_every", "eval_every", "target_valid_epa", "early_stop", "refine",
                                "refine_fraction", "snapshot_every") if s.get(k) is not None}
        kw["hyper"] = dict(kw.get("hyper", {}))
        return TrainSettings(optimizer=self.optimizer, schedule=Schedule.parse(s.get("schedule")),
                             budget=Budget.parse(s["budget"]) if s.get("budget") else Budget(epochs=100), **kw)


# What computes a result: a change here is a change of code version; a change elsewhere
# (docs, tests, experiment files, benchmarks) is not, so it does not invalidate results.
CODE_PATHS = ("optbench", "engine", "CMakeLists.txt")


@lru_cache(maxsize=1)
def current_code_version() -> str:
    """The package version plus, in a git checkout, a hash of the committed content of
    CODE_PATHS (git's tree and blob ids at HEAD: a commit that touches only docs or tests
    keeps it) and, when tracked files there differ from HEAD, a hash of that difference:
    e.g. "0.1.0+c1a2b3c4d5e6f" or "0.1.0+c1a2b3c4d5e6f.dirty0a1b2c3d". Part of every run
    key: results of other code are not taken for this code's."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30).stdout

    try:
        ids = git("rev-parse", *(f"HEAD:{p}" for p in CODE_PATHS)).split()
        if len(ids) != len(CODE_PATHS):
            return __version__  # not a git checkout (an installed package), or the paths are missing
        diff = git("diff", "HEAD", "--", *CODE_PATHS)
    except (OSError, subprocess.SubprocessError):
        return __version__
    content = hashlib.sha256(" ".join(ids).encode()).hexdigest()[:12]
    dirty = f".dirty{hashlib.sha256(diff.encode()).hexdigest()[:8]}" if diff else ""
    return f"{__version__}+c{content}{dirty}"
