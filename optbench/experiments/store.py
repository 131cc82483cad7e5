"""The results store: one SQLite file holding every run of a sweep.

Tables
------
runs       one row per run key (runspec.RunSpec.key): the spec (JSON), labels (model,
           data, optimizer, variant, seed), status, message, timings (s), counts,
           SciPy's nit/nfev/success, the final loss, the saved potentials' paths, the
           host and the runner that claimed it.
metrics    (key, which, split, name) -> value: which is "last" or "best" (the
           best-validation parameters), split "train" or "valid", name one of
           METRIC_NAMES (eV/atom, eV/A, eV, GPa as in optbench.metrics.Metrics).
histories  per run: step, loss, configs, seconds (JSON arrays) and the periodic
           evaluations (JSON list of dicts), as optbench.train.History holds them.
properties (key, which, name, structure) -> a physical property of a finished run's
           potential (optbench.properties: PropertyResult as JSON, its status "ok",
           "unstable" or "failed", the settings it was computed with as JSON, seconds).
property_references  (experiment, label, name, structure) -> the reference's result
           ("emt", "dft-from-data" or numbers from the file), same columns.
curvature  (key, step, stage) -> the spectra of a run's loss at one of its points
           ([analysis]; optbench/analysis/points.py: analyze_point's dict as JSON).

Life of a run: `claim` inserts it as "running" with its owner (host, pid of the runner);
`finish` writes its result in one transaction; `release` gives back a claim its runner
stopped before finishing. A finished row is never overwritten. A "running" row whose owner
is gone (the runner was killed) counts as interrupted and is claimed again by the next
runner. WAL mode and a busy timeout let several processes use the file at once; claims are
atomic (BEGIN IMMEDIATE), so two runners never take the same run: runners claim one run
at a time, as a worker frees up, and so split a sweep between them.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from optbench.status import FINISHED, RunStatus

METRIC_NAMES = {
    "epa_rmse": ("energy_per_atom", "rmse"), "epa_mae": ("energy_per_atom", "mae"),
    "epa_max": ("energy_per_atom", "max"), "energy_rmse": ("energy", "rmse"),
    "force_rmse": ("forces", "rmse"), "force_mae": ("forces", "mae"), "force_max": ("forces", "max"),
    "stress_rmse": ("stress", "rmse"), "virial_pressure_rmse": ("virial_pressure", "rmse"),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL, model TEXT NOT NULL, data TEXT NOT NULL,
    optimizer TEXT NOT NULL, variant TEXT NOT NULL, seed INTEGER NOT NULL,
    spec TEXT NOT NULL, code_version TEXT NOT NULL,
    status TEXT NOT NULL, message TEXT,
    host TEXT, owner_pid INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL, finished_at REAL,
    train_seconds REAL, wall_seconds REAL, steps INTEGER, configs_evaluated INTEGER,
    nit INTEGER, nfev INTEGER, success INTEGER, final_loss REAL, best_step INTEGER,
    potential_path TEXT, best_potential_path TEXT, log_path TEXT, notes TEXT
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment, status);
CREATE TABLE IF NOT EXISTS metrics (
    key TEXT NOT NULL REFERENCES runs (key), which TEXT NOT NULL, split TEXT NOT NULL,
    name TEXT NOT NULL, value REAL,
    PRIMARY KEY (key, which, split, name)
);
CREATE TABLE IF NOT EXISTS histories (
    key TEXT PRIMARY KEY REFERENCES runs (key),
    step TEXT NOT NULL, loss TEXT NOT NULL, configs TEXT NOT NULL, seconds TEXT NOT NULL,
    evals TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS properties (
    key TEXT NOT NULL, which TEXT NOT NULL, name TEXT NOT NULL, structure TEXT NOT NULL,
    status TEXT NOT NULL, settings TEXT NOT NULL, result TEXT NOT NULL, seconds REAL, computed_at REAL,
    PRIMARY KEY (key, which, name, structure)
);
CREATE TABLE IF NOT EXISTS curvature (
    key TEXT NOT NULL, step INTEGER NOT NULL, stage TEXT NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (key, step, stage)
);
CREATE TABLE IF NOT EXISTS property_references (
    experiment TEXT NOT NULL, label TEXT NOT NULL, name TEXT NOT NULL, structure TEXT NOT NULL,
    status TEXT NOT NULL, settings TEXT NOT NULL, result TEXT NOT NULL, seconds REAL, computed_at REAL,
    PRIMARY KEY (experiment, label, name, structure)
);
"""


def _owner_alive(host: str | None, pid: int | None) -> bool:
    """Whether the runner that claimed a run may still be running it. Only a process on
    this host can be checked; a claim from another host counts as alive (its runner
    must be stopped there, or the run released with `release`)."""
    if host != socket.gethostname() or pid is None:
        return host is not None and host != socket.gethostname()
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _finite_or_none(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


class Store:
    """A results store at `path` (created with its folder when missing)."""

    def __init__(self, path: str | os.PathLike, timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.path}: not a usable optbench store ({err})") from None

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def _transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ------------------------------------------------------------------ state of runs

    def statuses(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """key -> status for the given keys (all runs when None); keys not in the store
        are absent. A "running" run whose runner is gone reads "interrupted"."""
        rows = self.db.execute("SELECT key, status, host, owner_pid FROM runs").fetchall()
        wanted = None if keys is None else set(keys)
        out = {}
        for key, status, host, pid in rows:
            if wanted is not None and key not in wanted:
                continue
            out[key] = RunStatus.INTERRUPTED.value if status == RunStatus.RUNNING and not _owner_alive(host, pid) else status
        return out

    def owner_pid(self, key: str) -> int | None:
        """The process id of the runner that claimed run `key` (None when the run is not in
        the store or has no owner)."""
        row = self.db.execute("SELECT owner_pid FROM runs WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def claim(self, key: str, spec: dict, code_version: str, *, retry_failed: bool = False,
              take_over: bool = False, since: float | None = None) -> bool:
        """Take run `key` for this process: True when it was new, interrupted (its
        runner gone), with `retry_failed` failed, or with `take_over` held by a runner on
        another host (which cannot be checked from here: the caller knows it is gone);
        False when it is finished or another live runner has it. The claim is atomic.
        `since` (a time.time() value, the calling runner's start): with it, `retry_failed`
        takes only failures stored before then and `take_over` only claims made before
        then (by that host's clock), so a run another runner retried or took since is
        not run twice."""
        host, pid = socket.gethostname(), os.getpid()
        with self._transaction():
            row = self.db.execute("SELECT status, host, owner_pid, started_at, finished_at FROM runs WHERE key = ?",
                                  (key,)).fetchone()
            if row is not None:
                status, other_host, other_pid, started_at, finished_at = row
                remote = other_host != socket.gethostname()
                if since is not None:
                    take_over = take_over and (started_at or 0.0) < since
                    retry_failed = retry_failed and (finished_at or 0.0) < since
                if status == RunStatus.RUNNING and _owner_alive(other_host, other_pid) and not (take_over and remote):
                    return False
                if status in FINISHED and not (retry_failed and status == RunStatus.FAILED):
                    return False
                self.db.execute("DELETE FROM metrics WHERE key = ?", (key,))
                self.db.execute("DELETE FROM histories WHERE key = ?", (key,))
                self.db.execute("UPDATE runs SET status = 'running', message = NULL, host = ?, owner_pid = ?, "
                                "attempts = attempts + 1, started_at = ? WHERE key = ?", (host, pid, time.time(), key))
                return True
            self.db.execute(
                "INSERT INTO runs (key, experiment, model, data, optimizer, variant, seed, spec, code_version, "
                "status, host, owner_pid, attempts, started_at) VALUES (?,?,?,?,?,?,?,?,?,'running',?,?,1,?)",
                (key, spec["experiment"], spec["model_name"], spec["data_name"], spec["optimizer"], spec["variant"],
                 int(spec.get("settings", {}).get("seed", 0)), json.dumps(spec, sort_keys=True), code_version,
                 host, pid, time.time()))
            return True

    def release(self, key: str) -> bool:
        """Give back run `key` claimed by this process and not finished (its runner
        stopped before the run ended): it is deleted, so the next runner takes it as new.
        A run finished, or claimed by another process, is left as it is. True when
        released."""
        with self._transaction():
            cur = self.db.execute("DELETE FROM runs WHERE key = ? AND status = 'running' AND host = ? AND "
                                  "owner_pid = ?", (key, socket.gethostname(), os.getpid()))
        return cur.rowcount > 0

    def finish(self, key: str, result: dict) -> None:
        """Write a run's result (runner.execute_run's dict: RunResult.to_dict() plus
        paths) and mark it finished with result["status"]. A run that is already
        finished is left as it is (never overwritten)."""
        status = result["status"]
        if status not in FINISHED:
            raise ValueError(f"run {key}: status {status!r} is not a finished status ({', '.join(FINISHED)})")
        hist = result.get("history") or {"step": [], "loss": [], "configs": [], "seconds": [], "evals": []}
        final_loss = hist["loss"][-1] if hist["loss"] else None
        with self._transaction():
            row = self.db.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise ValueError(f"run {key} was never claimed in {self.path}")
            if row[0] in FINISHED:
                return
            self.db.execute(
                "UPDATE runs SET status=?, message=?, finished_at=?, train_seconds=?, wall_seconds=?, steps=?, "
                "configs_evaluated=?, nit=?, nfev=?, success=?, final_loss=?, best_step=?, potential_path=?, "
                "best_potential_path=?, log_path=?, notes=? WHERE key=?",
                (status, result.get("message"), time.time(), result.get("train_seconds"), result.get("wall_seconds"),
                 result.get("steps"), result.get("configs_evaluated"), result.get("nit"), result.get("nfev"),
                 None if result.get("success") is None else int(bool(result["success"])),
                 _finite_or_none(final_loss), result.get("best_step"), result.get("potential_path"),
                 result.get("best_potential_path"), result.get("log_path"), json.dumps(result.get("notes") or []),
                 key))
            rows = []
            for which, prefix in (("last", ""), ("best", "best_")):
                for split in ("train", "valid"):
                    m = result.get(prefix + split)
                    if not m:
                        continue
                    for name, (block, stat) in METRIC_NAMES.items():
                        rows.append((key, which, split, name, _finite_or_none(m[block][stat])))
                    rows.append((key, which, split, "force_component_rmse", _finite_or_none(m["force_component_rmse"])))
            for label, by_which in (result.get("tests") or {}).items():  # held-out test sets: split "test:LABEL"
                for which, m in by_which.items():
                    for name, (block, stat) in METRIC_NAMES.items():
                        rows.append((key, which, f"test:{label}", name, _finite_or_none(m[block][stat])))
            self.db.executemany("INSERT OR REPLACE INTO metrics VALUES (?,?,?,?,?)", rows)
            self.db.executemany("INSERT OR REPLACE INTO curvature VALUES (?,?,?,?)",
                                [(key, int(c["step"]), c.get("stage", "optimizer"), json.dumps(c))
                                 for c in result.get("curvature") or []])
            self.db.execute("INSERT OR REPLACE INTO histories VALUES (?,?,?,?,?,?)",
                            (key, json.dumps(hist["step"]), json.dumps(hist["loss"]), json.dumps(hist["configs"]),
                             json.dumps(hist["seconds"]), json.dumps(hist["evals"])))

    # ------------------------------------------------------------------ reading back

    def runs_frame(self, experiment: str | None = None, finished_only: bool = True):
        """A pandas DataFrame, one row per run: the runs table's columns (spec and notes
        as JSON text), the spec's settings lr, batch_size, clip, init_interval,
        perturb_sigma, perturb_every, budget and hyper (JSON text), and one column per
        metric: "<split>_<name>" for the last parameters and "best_<split>_<name>" for
        the best-validation ones (e.g. valid_epa_rmse in eV/atom, valid_force_rmse in
        eV/A)."""
        import pandas as pd

        where, args = [], []
        if experiment is not None:
            where.append("experiment = ?")
            args.append(experiment)
        if finished_only:
            where.append(f"status IN ({','.join('?' * len(FINISHED))})")
            args += list(FINISHED)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY rowid"
        runs = pd.read_sql_query(sql, self.db, params=args)
        settings = [json.loads(s).get("settings", {}) for s in runs["spec"]]
        for col in ("lr", "batch_size", "clip", "init_interval", "perturb_sigma", "perturb_every", "budget"):
            runs[col] = [s.get(col) for s in settings]
        runs["hyper"] = [json.dumps(s.get("hyper", {}), sort_keys=True) for s in settings]
        runs["success"] = runs["success"].astype("boolean")
        m = pd.read_sql_query("SELECT * FROM metrics", self.db)
        if len(m):
            m["column"] = [("best_" if w == "best" else "") + f"{s}_{n}" for w, s, n in zip(m["which"], m["split"], m["name"])]
            wide = m.pivot(index="key", columns="column", values="value")
            runs = runs.merge(wide, left_on="key", right_index=True, how="left")
        return runs

    def history(self, key: str) -> dict:
        """A run's history: {"step", "loss", "configs", "seconds": lists, "evals": list
        of dicts}; KeyError when the run has none."""
        row = self.db.execute("SELECT step, loss, configs, seconds, evals FROM histories WHERE key = ?",
                              (key,)).fetchone()
        if row is None:
            raise KeyError(f"no history for run {key} in {self.path}")
        return dict(zip(("step", "loss", "configs", "seconds", "evals"), map(json.loads, row)))

    # ------------------------------------------------------------------ physical properties

    def property_settings(self, keys: Iterable[str], which: str) -> dict[tuple[str, str, str], str]:
        """{(key, name, structure): settings JSON} of the properties stored for runs `keys`
        computed from their `which` ("best" or "last") potential: what is already done.
        Results with status "failed" (the tool could not compute them: a worker that died,
        a calculator error) are left out, so that the next pass tries them again."""
        keys = list(keys)
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for k, n, s, st in self.db.execute(
                    f"SELECT key, name, structure, settings FROM properties WHERE which = ? AND status != 'failed' "
                    f"AND key IN "
                    f"({','.join('?' * len(chunk))})", [which, *chunk]):
                out[(k, n, s)] = st
        return out

    def put_property(self, key: str, which: str, result: dict, settings: str, seconds: float | None) -> None:
        """Store (or replace, when recomputed with other settings) one property of run
        `key`: `result` a PropertyResult.to_dict() (status "failed" when the tool could not
        compute it), `settings` the JSON of the settings used."""
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO properties VALUES (?,?,?,?,?,?,?,?,?)",
                            (key, which, result["name"], result["structure"], result.get("status", "ok"), settings,
                             json.dumps(result), _finite_or_none(seconds), time.time()))

    def reference_settings(self, experiment: str, label: str) -> dict[tuple[str, str], str]:
        """{(name, structure): settings JSON} of the reference results `label` stored for
        `experiment`."""
        return {(n, s): st for n, s, st in self.db.execute(
            "SELECT name, structure, settings FROM property_references WHERE experiment = ? AND label = ?",
            (experiment, label))}

    def put_reference(self, experiment: str, label: str, result: dict, settings: str, seconds: float | None) -> None:
        """Store (or replace) one reference property of `experiment` (as put_property)."""
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO property_references VALUES (?,?,?,?,?,?,?,?,?)",
                            (experiment, label, result["name"], result["structure"], result.get("status", "ok"),
                             settings, json.dumps(result), _finite_or_none(seconds), time.time()))

    def properties_frame(self, experiment: str | None = None):
        """A pandas DataFrame, one row per stored property of a finished run: key, which,
        name, structure, status, settings, seconds, result (the PropertyResult dict), with
        the run's model, data, variant, optimizer and seed."""
        return self._results_frame(
            "SELECT p.key, p.which, p.name, p.structure, p.status, p.settings, p.seconds, p.result, r.model, "
            "r.data, r.variant, r.optimizer, r.seed, r.experiment FROM properties p JOIN runs r ON p.key = r.key",
            "r.experiment", experiment, "r.rowid, p.rowid")

    def references_frame(self, experiment: str | None = None):
        """A pandas DataFrame of the stored reference properties: experiment, label, name,
        structure, status, settings, seconds, result (dict)."""
        return self._results_frame(
            "SELECT experiment, label, name, structure, status, settings, seconds, result FROM property_references",
            "experiment", experiment, "rowid")

    def curvature_frame(self, experiment: str | None = None):
        """A pandas DataFrame, one row per analysed point of a finished run: key, step,
        stage, result (analysis.points.analyze_point's dict), with the run's model, data,
        variant, optimizer and seed."""
        return self._results_frame(
            "SELECT c.key, c.step, c.stage, c.result, r.model, r.data, r.variant, r.optimizer, r.seed, r.experiment "
            "FROM curvature c JOIN runs r ON c.key = r.key", "r.experiment", experiment, "r.rowid, c.step")

    def _results_frame(self, sql: str, column: str, experiment: str | None, order: str):
        import pandas as pd

        args = [] if experiment is None else [experiment]
        where = "" if experiment is None else f" WHERE {column} = ?"
        frame = pd.read_sql_query(f"{sql}{where} ORDER BY {order}", self.db, params=args)
        frame["result"] = [json.loads(r) for r in frame["result"]]
        return frame

    def export(self, path: str | os.PathLike, experiment: str | None = None, what: str = "runs") -> Path:
        """Write, as CSV (.csv) or Parquet (.parquet), the runs frame (what="runs": one
        row per finished run, metrics as columns) or the physical properties
        (what="properties": one row per run, property, structure and value, with the
        reference's value where one is stored: properties_long); returns the path."""
        path = Path(path)
        if what not in ("runs", "properties"):
            raise ValueError(f"export: what must be 'runs' or 'properties', got {what!r}")
        frame = self.runs_frame(experiment) if what == "runs" else self.properties_long(experiment)
        if path.suffix == ".csv":
            frame.to_csv(path, index=False)
        elif path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            raise ValueError(f"{path}: export writes .csv or .parquet files")
        return path

    def properties_long(self, experiment: str | None = None):
        """One row per stored property value of a finished run: the run's key,
        experiment, model, data, variant, optimizer, seed; which (best/last), property,
        structure, status, quantity, unit, value; and reference / reference_label, the
        stored reference's value of the same quantity (NaN when none)."""
        import pandas as pd

        refs = {}
        stored = self.references_frame(experiment)
        for exp_name, label, res in zip(stored["experiment"], stored["label"], stored["result"]):
            for q, v in (res.get("values") or {}).items():
                refs[(exp_name, res["structure"], res["name"], q)] = (v, label)
        rows = []
        frame = self.properties_frame(experiment)
        for r in frame.itertuples(index=False):
            res = r.result
            for q, v in (res.get("values") or {}).items():
                ref, label = refs.get((r.experiment, r.structure, r.name, q), (None, None))
                rows.append({"key": r.key, "experiment": r.experiment, "model": r.model, "data": r.data,
                             "variant": r.variant, "optimizer": r.optimizer, "seed": r.seed, "which": r.which,
                             "property": r.name, "structure": r.structure, "status": r.status, "quantity": q,
                             "unit": (res.get("units") or {}).get(q, ""), "value": v, "reference": ref,
                             "reference_label": label})
        return pd.DataFrame(rows, columns=["key", "experiment", "model", "data", "variant", "optimizer", "seed",
                                           "which", "property", "structure", "status", "quantity", "unit", "value",
                                           "reference", "reference_label"])
