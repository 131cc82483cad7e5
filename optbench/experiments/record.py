"""A run's record: train one Objective with a RunSpec's settings and collect what the store
keeps (result, curvature analysis, test-set metrics, potential files), or the record of a
run that failed. Shared by a worker's one-process run (execute.py) and rank 0 of an MPI
run (mpi_run.py). The data sets a worker reads are cached here, per process.
"""

from __future__ import annotations

import base64
import json
import tempfile
import traceback
from pathlib import Path
from typing import Callable

from optbench.experiments.runspec import RunSpec
from optbench.io import load_data as read_data
from optbench.io import load_tests
from optbench.status import RunStatus
from optbench.train import train

_DATA_CACHE: dict[str, object] = {}  # load_data and load_test_sets results


def failed_record(message: str, wall_seconds: float | None = None) -> dict:
    """The record of a run that produced no result (status "failed", `message` saying
    why): what execute_run returns on an error and the runner stores for a worker that
    died."""
    record: dict = {"status": RunStatus.FAILED.value, "message": message, "notes": [], "history": None}
    if wall_seconds is not None:
        record["wall_seconds"] = wall_seconds
    return record


def load_data(data: dict):
    """(train, valid or None) DataSets for a RunSpec's data dict (optbench.io.load_data);
    cached per process, so a worker reads or generates each data set once however many
    runs use it."""
    cache_key = json.dumps(data, sort_keys=True)
    if cache_key not in _DATA_CACHE:
        _DATA_CACHE[cache_key] = read_data(data)
    return _DATA_CACHE[cache_key]


def load_test_sets(data: dict, species: list[str] | None) -> dict:
    """The held-out test sets of a data dict (optbench.io.load_tests), cached per process
    like load_data."""
    cache_key = json.dumps(["tests", data.get("tests"), data.get("format"), species], sort_keys=True)
    if cache_key not in _DATA_CACHE:
        _DATA_CACHE[cache_key] = load_tests(data, species)
    return _DATA_CACHE[cache_key]


def _potential_payload(objective, x) -> tuple[str, str]:
    """The potential file of parameters x as ("text", its text) or, for a binary file (a
    fine-tuned torch model), ("b64", its bytes in base64): records travel as JSON."""
    suffix = getattr(objective, "potential_suffix", ".almtp")
    with tempfile.TemporaryDirectory(prefix="optbench-pot-") as tmp:
        path = Path(tmp, "p" + suffix)
        objective.save(x, path)
        raw = path.read_bytes()
    try:
        return "text", raw.decode("utf-8")
    except UnicodeDecodeError:
        return "b64", base64.b64encode(raw).decode("ascii")


def _test_metrics(objective, result, tests: dict, notes: list) -> dict:
    """{label: {"last": metrics, "best": metrics}} of the run's last and best-validation
    parameters on each held-out test set (an objective without evaluate_data: a note)."""
    if not hasattr(objective, "evaluate_data"):
        notes.append(f"test sets {', '.join(tests)} not evaluated: {type(objective).__name__} cannot")
        return {}
    out = {}
    for label, data in tests.items():
        last, best = objective.evaluate_data([result.x, result.x_best], data)
        out[label] = {"last": last.to_dict(), "best": best.to_dict()}
    return out


def _curvature(objective, result, settings, curvature: dict, progress, notes: list) -> list[dict]:
    """The [analysis] of a finished run: the spectra at its snapshots (analysis.points),
    as JSON-ready dicts; a failure is a note, not a failed run."""
    from optbench.analysis.points import analyze_snapshots
    from optbench.properties.base import jsonable

    try:
        return jsonable(analyze_snapshots(objective, getattr(result, "snapshots", None) or [], hyper=settings.hyper,
                                          settings=curvature, progress=progress))
    except Exception as err:  # the run's training result stands without its analysis
        notes.append(f"curvature analysis failed: {type(err).__name__}: {err}")
        return []


def error_text(err: Exception) -> str:
    """An exception as "Type: message (file.py:line)" of where it was raised."""
    tb = traceback.extract_tb(err.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(err).__name__}: {err}{where}"


def run_record(spec: RunSpec, objective, species, progress: Callable[[str], None] | None = None) -> dict:
    """Train `objective` with the spec's settings and return the run's record (see
    execute_run): the result, its curvature analysis and test-set metrics when asked for,
    and the potential files. `species`: the training set's element order (test sets are
    read with it)."""
    settings = spec.train_settings()
    result = train(objective, settings, progress=progress)
    record = result.to_dict()
    if spec.settings.get("curvature") is not None and result.status != RunStatus.FAILED:
        record["curvature"] = _curvature(objective, result, settings, spec.settings["curvature"], progress,
                                         record.setdefault("notes", []))
    tests = load_test_sets(spec.data, species)
    if tests and result.status != RunStatus.FAILED:
        record["tests"] = _test_metrics(objective, result, tests, record.setdefault("notes", []))
    if result.status != RunStatus.FAILED or result.steps:
        for name, x in (("potential", result.x), ("best_potential", result.x_best)):
            form, payload = _potential_payload(objective, x)
            record[f"{name}_{form}"] = payload
        record["potential_suffix"] = getattr(objective, "potential_suffix", ".almtp")
    return record


