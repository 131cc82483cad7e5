"""The runner and the results store (optbench/experiments/runner.py, execute.py, store.py).

Contracts: a sweep killed with SIGKILL mid-way loses no finished run, and running it
again finishes the rest without redoing any finished run; the Dask path gives the same
metrics as local worker processes; a run with a bad data file ends "failed" with a
message naming the file while the other runs finish; a finished result is never
overwritten; a run held by a live runner is not taken, one whose runner died is;
export writes CSV and Parquet with one row per run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from optbench.experiments.execute import execute_run
from optbench.experiments.runner import run_experiment
from optbench.experiments.runspec import RunSpec, current_code_version
from optbench.experiments.store import Store

MODEL = {"kind": "mtp", "level": 6, "min_dist": 2.0, "max_dist": 5.0, "engine": "embedded"}
DATA = {"kind": "generate", "n_train": 16, "n_valid": 8, "seed": 0}
WEIGHTS = {"energy": 1.0, "forces": 0.01, "stress": 0.0}


@dataclass
class Sweep:
    """The part of experiment.Experiment that the runner reads."""

    name: str
    store_path: Path
    runs: list


def _runs(budget="epochs=6", seeds=(0, 1), optimizers=("adam", "bfgs"), data=DATA):
    out = []
    for opt in optimizers:
        for seed in seeds:
            settings = {"budget": budget, "seed": seed, "init_interval": 0.01}
            if opt == "adam":
                settings.update(lr=0.01, batch_size=8)
            out.append(RunSpec("t", "mtp6", MODEL, "agpd", data, WEIGHTS, opt, opt, settings))
    return out


def test_local_and_dask_give_the_same_metrics(tmp_path):
    """Epoch budgets are deterministic, so 2 local processes and a 2-worker Dask
    LocalCluster must store the same validation errors and histories for every run."""
    runs = _runs()
    local = run_experiment(Sweep("t", tmp_path / "local" / "s.sqlite", runs), workers=2, quiet=True)
    dask = run_experiment(Sweep("t", tmp_path / "dask" / "s.sqlite", runs), workers=2, scheduler="local", quiet=True)
    assert local.ran == dask.ran == {"budget": 4}
    a = Store(tmp_path / "local" / "s.sqlite").runs_frame().set_index("key").sort_index()
    b = Store(tmp_path / "dask" / "s.sqlite").runs_frame().set_index("key").sort_index()
    assert list(a.index) == list(b.index)
    for col in ("valid_epa_rmse", "valid_force_rmse", "train_epa_rmse", "final_loss", "configs_evaluated", "steps"):
        assert a[col].tolist() == b[col].tolist(), col
    for key in a.index:  # histories equal but for the wall-clock seconds
        h_local, h_dask = (Store(tmp_path / d / "s.sqlite").history(key) for d in ("local", "dask"))
        assert (h_local["loss"], h_local["configs"]) == (h_dask["loss"], h_dask["configs"])
    assert all(Path(p).read_text().startswith("MTP") for p in a["potential_path"])


def test_rerun_skips_finished_and_bad_run_fails_alone(tmp_path):
    """A second sweep over the same store runs nothing; a run whose data file is missing
    is stored "failed" with the file in its message while the others finish."""
    bad = {"kind": "files", "train": str(tmp_path / "missing.cfg"), "valid": None}
    runs = _runs(seeds=(0,)) + _runs(seeds=(0,), optimizers=("bfgs",), data=bad)
    sweep = Sweep("t", tmp_path / "s.sqlite", runs)
    first = run_experiment(sweep, workers=2, quiet=True)
    assert first.ran == {"budget": 2, "failed": 1}
    second = run_experiment(sweep, workers=2, quiet=True)
    assert second.ran == {} and second.already_finished == 3
    frame = Store(sweep.store_path).runs_frame()
    failed = frame[frame.status == "failed"]
    assert len(failed) == 1 and "missing.cfg" in failed.message.iloc[0]
    retried = run_experiment(sweep, workers=1, quiet=True, retry_failed=True)
    assert retried.ran == {"failed": 1} and retried.already_finished == 2


SWEEP_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_runner import Sweep, _runs
from optbench.experiments.runner import run_experiment

if __name__ == "__main__":
    runs = _runs(budget="epochs=400,seconds=0.6", seeds=range(4), optimizers=("adam",))
    print(run_experiment(Sweep("t", Path({store!r}), runs), workers=1, quiet=True).text())
"""


def test_sigkill_mid_sweep_loses_nothing_and_redoes_nothing(tmp_path):
    """SIGKILL the runner after two of four runs are stored: those two keep their
    results (finished_at, one attempt), the interrupted one is taken again by the next
    sweep, which completes all four."""
    store_path = tmp_path / "s.sqlite"
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT.format(tests=str(Path(__file__).parent), store=str(store_path)))
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    deadline = time.monotonic() + 120
    finished = {}
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if store_path.exists():
            with Store(store_path) as st:
                finished = {k: s for k, s in st.statuses().items() if s == "budget"}
            if len(finished) >= 2:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(finished) >= 2, "the sweep did not store two runs in 120 s"
    with Store(store_path) as st:
        before = st.runs_frame().set_index("key")
        statuses = st.statuses()
    assert len(before) < 4 and "interrupted" in statuses.values()
    rerun = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with Store(store_path) as st:
        after = st.runs_frame().set_index("key")
        attempts = dict(st.db.execute("SELECT key, attempts FROM runs").fetchall())
    assert len(after) == 4 and set(after.status) == {"budget"}
    for key in before.index:  # finished before the kill: untouched
        assert after.loc[key, "finished_at"] == before.loc[key, "finished_at"]
        assert attempts[key] == 1
    assert max(attempts.values()) == 2  # the one the kill interrupted was run again


def test_claims_and_finished_results(tmp_path):
    """claim: a new run is taken; the same run held by a live runner (this test's
    parent process) is not; one held by a dead runner is (interrupted); one held on
    another host only with take_over. finish: a second
    finish of a finished run changes nothing."""
    spec = _runs(seeds=(0,), optimizers=("bfgs",))[0]
    version = current_code_version()
    with Store(tmp_path / "s.sqlite") as st:
        key = spec.key(version)
        assert st.claim(key, spec.to_dict(), version)
        st.db.execute("UPDATE runs SET owner_pid = ? WHERE key = ?", (os.getppid(), key))
        assert st.statuses()[key] == "running"
        assert not st.claim(key, spec.to_dict(), version)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        st.db.execute("UPDATE runs SET owner_pid = ? WHERE key = ?", (dead.pid, key))
        assert st.statuses()[key] == "interrupted"
        assert st.claim(key, spec.to_dict(), version)
        st.db.execute("UPDATE runs SET host = 'another-host', owner_pid = 1 WHERE key = ?", (key,))
        assert st.statuses()[key] == "running"  # another host's runner cannot be checked from here
        assert not st.claim(key, spec.to_dict(), version)
        assert st.claim(key, spec.to_dict(), version, take_over=True)
        record = execute_run(spec.to_dict())
        st.finish(key, record)
        loss = st.runs_frame()["final_loss"].iloc[0]
        st.finish(key, {**record, "history": {**record["history"], "loss": [123.0]}})
        assert st.runs_frame()["final_loss"].iloc[0] == loss
        assert not st.claim(key, spec.to_dict(), version)
        with pytest.raises(ValueError, match="not a finished status"):
            st.finish(key, {"status": "running"})


def test_claims_since_a_runner_started_are_not_taken_again(tmp_path):
    """claim(since=T), what a runner started at T passes: take_over takes another host's
    claim made before T only, retry_failed a failure stored before T only (a run another
    runner took or retried after T is not run twice); release gives back only this
    process's unfinished claim."""
    spec = _runs(seeds=(0,), optimizers=("bfgs",))[0]
    version = current_code_version()
    with Store(tmp_path / "s.sqlite") as st:
        key = spec.key(version)
        assert st.claim(key, spec.to_dict(), version)
        st.db.execute("UPDATE runs SET host = 'another-host', owner_pid = 1, started_at = 100.0 WHERE key = ?", (key,))
        assert not st.release(key)  # another host's claim
        assert not st.claim(key, spec.to_dict(), version, take_over=True, since=50.0)
        assert st.claim(key, spec.to_dict(), version, take_over=True, since=150.0)
        st.finish(key, {"status": "failed", "message": "boom"})
        st.db.execute("UPDATE runs SET finished_at = 100.0 WHERE key = ?", (key,))
        assert not st.claim(key, spec.to_dict(), version, retry_failed=True, since=50.0)
        assert st.claim(key, spec.to_dict(), version, retry_failed=True, since=150.0)
        assert st.release(key) and st.statuses([key]) == {}


def test_export_csv_and_parquet(tmp_path):
    """export: one row per finished run with its metric columns, in CSV and Parquet."""
    import pandas as pd

    sweep = Sweep("t", tmp_path / "s.sqlite", _runs(seeds=(0,)))
    run_experiment(sweep, workers=1, quiet=True)
    with Store(sweep.store_path) as st:
        csv = pd.read_csv(st.export(tmp_path / "runs.csv"))
        parquet = pd.read_parquet(st.export(tmp_path / "runs.parquet"))
        with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
            st.export(tmp_path / "runs.xlsx")
    assert len(csv) == len(parquet) == 2
    assert csv["valid_epa_rmse"].tolist() == pytest.approx(parquet["valid_epa_rmse"].tolist())
    assert set(csv["optimizer"]) == {"adam", "bfgs"}
    assert json.loads(csv["spec"].iloc[0])["model"] == MODEL


def test_store_rejects_a_file_that_is_not_a_store(tmp_path):
    """A path that is not SQLite is a ValueError naming it, not a sqlite3 traceback."""
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are not results\n" * 100)
    with pytest.raises(ValueError, match="notes.sqlite: not a usable optbench store"):
        Store(bad)


TINY_EXPERIMENT = """
name = "tiny"
seeds = 2
baseline = "bfgs"

[weights]
stress = 0.0

[budget]
epochs = 4

[data.gen]
generate = { seed = 1, n_train = 12, n_valid = 6 }

[models.mtp6]
level = 6

[[optimizers]]
name = "bfgs"
init_interval = 0.01

[[optimizers]]
name = "adam"
lr = [0.01, 0.03]
batch_size = 6
init_interval = 0.01
"""


def test_cli_validate_run_report_export(tmp_path, capsys):
    """`optbench validate` prints the 6 runs of a 2-seed x 3-variant file; `optbench run`
    stores them and writes report.md/report.html beside the store; a second `run` runs
    nothing; `export` writes one CSV row per run; a malformed file exits 2 naming its
    file and line."""
    import pandas as pd

    from optbench.cli import main

    exp = tmp_path / "tiny.toml"
    exp.write_text(TINY_EXPERIMENT)
    assert main(["validate", str(exp)]) == 0
    assert "total: 6 runs" in capsys.readouterr().out
    assert main(["run", str(exp), "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "6 run now (6 budget)" in err
    report = tmp_path / "results" / "tiny" / "report"
    assert "adam lr=0.03" in (report / "report.md").read_text()
    assert (report / "report.html").read_text().count("data:image/png;base64,") >= 4
    assert main(["run", str(exp), "--no-report"]) == 0
    assert "6 already in the store, 0 run now" in capsys.readouterr().err
    assert main(["export", str(exp), "-o", str(tmp_path / "runs.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 6
    exp.write_text(TINY_EXPERIMENT.replace('name = "adam"', 'name = "adma"'))
    assert main(["run", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "tiny.toml:23: optimizers[1].name" in err and "adma" in err


def test_etn_runs_are_stored_with_json_potentials(tmp_path):
    """An ETN model in a sweep: trained by BFGS and Adam, stored like any run, its
    potentials saved as the engine's ETN JSON (.json), which the engine loads back."""
    from optbench.engine.capi import Engine

    etn = {"kind": "etn", "shape": [[1], [3], [2]], "ranks": [[1], [1]], "lmax": 1, "min_dist": 2.0,
           "max_dist": 5.0, "engine": "embedded"}
    runs = [RunSpec("t", "etn", etn, "agpd", DATA, WEIGHTS, opt, opt,
                    {"budget": "epochs=4", "seed": 0, "init_interval": 0.01,
                     **({"lr": 0.01, "batch_size": 8} if opt == "adam" else {})})
            for opt in ("bfgs", "adam")]
    summary = run_experiment(Sweep("t", tmp_path / "s.sqlite", runs), workers=1, quiet=True)
    assert summary.ran == {"budget": 2}
    frame = Store(tmp_path / "s.sqlite").runs_frame()
    for path in frame["potential_path"]:
        assert path.endswith(".json")
        assert Engine().load_potential(path).info()["kind"] == "etn"
