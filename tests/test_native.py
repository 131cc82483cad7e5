"""The "native" optimizer: MLIP's own `mlp train`, run through optbench/mlip/mlp.py and
reported in the same RunResult as every other optimizer.

No MLIP binary exists on the test machines, so a stand-in `mlp` (a Python script written
into tmp_path) plays its part: it checks the command line it is given, prints a log in
MLIP-3's format and saves a potential followed, as every file the real `mlp train` saves,
by MLIP's `#MVS_v1.1` selection section (text lines, then binary data). With ../shared present it replays MLIP-3's real
log of `mtp08.mtp` and saves that real trained potential, so the run record must hold
MLIP's 275 iterations and our engine's errors of MLIP's potential must equal MLIP's own
error report.

Contracts: the command carries the run's loss weights and its budget as MLIP's
iteration limit; the history is the log's; the final potential (with the scaling MLIP
chose) is read back and evaluated; a crash ends the run "failed" and a run past its time
budget "timed_out", both with the log kept; a missing binary is an error naming the
setting to fix.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import requires_shared, shared_dir
from optbench.optim.budget import Budget
from optbench.objective import EngineObjective, LossWeights
from optbench.train import TrainSettings, train

FAKE_MLP = r'''
import os, random, re, sys, time

def selection_state():
    # What MLIP-3 appends to every potential `mlp train` saves (the real one:
    # ../shared/reference/mlip3/native_run/trained.almtp): "#MVS_v1.1", its weights as
    # text, then the maxvol selection state: "#", binary doubles (NUL padding, 0xFF and
    # newline bytes among them), "#", an index list, "#", the selected configurations.
    rng = random.Random(13)
    head = ("#MVS_v1.1\nenergy_weight 1.0000000000000000e+00\nforce_weight 0.0000000000000000e+00\n"
            "stress_weight 0.0000000000000000e+00\nsite_en_weight 0.0000000000000000e+00\nweight_scaling 2\n#")
    binary = b"\x00" * 128 + rng.randbytes(4000) + b"\xff\xff\n\x00\n\xff" + rng.randbytes(1000)
    index = "".join(f"{i} 0\n" for i in rng.sample(range(40), 40)) + "-1 -1\n"
    cfg = ("BEGIN_CFG\n Size\n    1\n AtomData:  id type       cartes_x      cartes_y      cartes_z\n"
           "    1 0  0.0 0.0 0.0\n Energy\n    -1.0\n Feature   selected_eqn_inds\t0\nEND_CFG\n\n")
    return head.encode() + binary + b"\n#\n" + index.encode() + b"#\n" + cfg.encode()

def save_potential(text, path):
    with open(path, "wb") as fh:
        fh.write(text.encode() + selection_state())

args = sys.argv[1:]
if args[0] == "check_errors":  # a fixed report in MLIP's format: the adapter must parse it
    n = sum(1 for line in open(args[2]) if line.strip() == "BEGIN_CFG")
    print("_________________Errors report_________________")
    print("Energy per atom:")
    print(f"\tErrors checked for {n} configurations")
    print("\tMaximal absolute difference = 0.0042")
    print("\tAverage absolute difference = 0.0021")
    print("\tRMS     absolute difference = 0.0031")
    print("")
    print("Forces:")
    print(f"\tErrors checked for {10 * n} atoms")
    print("\tRMS     absolute difference = 0.087")
    print("_______________________________________________")
    sys.exit(0)
assert args[0] == "train", args
pot, cfg = args[1], args[2]
opts = dict(a[2:].split("=", 1) for a in args[3:])
with open(os.environ["FAKE_MLP_ARGS"], "w") as fh:
    fh.write("\n".join(args))
mode = os.environ.get("FAKE_MLP_MODE", "converge")
print("0.000 Basic trainer initialization complete", flush=True)
for k, v in opts.items():
    print(f"0.001 \t{k} = {v}", flush=True)
n = sum(1 for line in open(cfg) if line.strip() == "BEGIN_CFG")
print(f"0.002 {n} configurations found in the training set", flush=True)
if mode == "crash":
    print("0.003 ERROR: something MLIP did not like", flush=True)
    sys.exit(3)
if mode == "hang":
    for i in range(1000):
        print(f"{0.01 * i:.3f} BFGS iter {i}: f={1.0 / (i + 1):.8f}", flush=True)
        time.sleep(0.05)
replay = os.environ.get("FAKE_MLP_REPLAY")
if replay:
    sys.stdout.write(open(replay).read())
    save_potential(open(os.environ["FAKE_MLP_POT"]).read(), opts["save_to"])
    sys.exit(0)
for i in range(int(opts["iteration_limit"])):
    print(f"{0.5 * (i + 1):.3f} BFGS iter {i}: f={0.1 / (i + 1):.8f}", flush=True)
print("5.000 BFGS ended due to small decr. in 50 iterations", flush=True)
text = open(pot).read()
text = re.sub(r"scaling = [^\n]*", "scaling = 0.75", text, count=1)
save_potential(text, opts["save_to"])
print(f'5.100 Selection: state saved to "{opts["save_to"]}"', flush=True)
print("5.100 training complete", flush=True)
'''


@pytest.fixture
def fake_mlp(tmp_path, monkeypatch):
    """Path of the stand-in mlp; FAKE_MLP_ARGS receives the arguments it was given."""
    path = tmp_path / "mlp"
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(FAKE_MLP))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_MLP_ARGS", str(tmp_path / "args.txt"))
    monkeypatch.delenv("OPTBENCH_MLP", raising=False)
    return path


@pytest.fixture(scope="module")
def agpd_split():
    from optbench.io.generator import generate_agpd_split
    return generate_agpd_split(12, 6, seed=3)


def _objective(engine, train_set, valid, scaling=None):
    pot = engine.potential_from_spec("mtp level=8 species=2 min_dist=2.0 max_dist=5.0")
    if scaling is not None:
        pot.set_scalar("scaling", scaling)
    return EngineObjective(engine, pot, train_set, valid, LossWeights(energy=1.0, forces=0.02, stress=0.0))


def test_native_run_is_recorded_like_any_optimizer(engine, agpd_split, fake_mlp, tmp_path):
    """An epoch budget of 7 becomes --iteration_limit=7; the loss weights and weight
    scaling are passed on; the 7 logged iterations are the history; the saved potential's
    parameters and the scaling MLIP chose (0.75 here) come back, its #MVS_v1.1 section
    (binary) unread and named in the notes; status "converged"."""
    obj = _objective(engine, *agpd_split)
    work = tmp_path / "run"
    settings = TrainSettings(optimizer="native", budget=Budget(epochs=7), seed=2, init_interval=0.05,
                             hyper={"mlp": str(fake_mlp), "workdir": str(work)})
    r = train(obj, settings)
    assert r.status == "converged", r.message
    args = (tmp_path / "args.txt").read_text().split("\n")
    assert args[:3] == ["train", str(work / "start.almtp"), str(work / "train.cfg")]
    assert {"--iteration_limit=7", "--energy_weight=1.0", "--force_weight=0.02", "--stress_weight=0.0",
            "--weight_scaling=1", "--weight_scaling_forces=0", f"--save_to={work / 'trained.almtp'}"} <= set(args)
    assert r.steps == 7 and r.nit == 7
    assert r.history.loss == pytest.approx([0.1 / (i + 1) for i in range(7)])
    assert r.history.configs == [12 * (i + 1) for i in range(7)]
    x0 = obj.initial_params(2, 0.05)
    np.testing.assert_allclose(r.x, x0, rtol=1e-9, atol=1e-12)  # the stand-in trains nothing
    assert obj.potential.get_scalar("scaling") == 0.75
    assert r.valid is not None and np.isfinite(r.valid.epa_rmse)
    assert (work / "mlp_train.log").read_text().count("BFGS iter") == 7
    assert any(str(work) in note for note in r.notes)
    assert b"#MVS_v1.1" in (work / "trained.almtp").read_bytes()
    mvs = [note for note in r.notes if "#MVS_v1.1" in note]
    assert len(mvs) == 1 and "trained.almtp:" in mvs[0] and "not read" in mvs[0]


def test_native_crash_is_a_failed_run_with_its_log(engine, agpd_split, fake_mlp, tmp_path, monkeypatch):
    """mlp exiting with code 3 ends the run "failed" (no exception), naming the code and
    the kept log."""
    monkeypatch.setenv("FAKE_MLP_MODE", "crash")
    obj = _objective(engine, *agpd_split)
    r = train(obj, TrainSettings(optimizer="native", budget=Budget(epochs=5),
                                 hyper={"mlp": str(fake_mlp), "workdir": str(tmp_path / "w")}))
    assert r.status == "failed"
    assert "exit code 3" in r.message and "mlp_train.log" in r.message
    assert "did not like" in (tmp_path / "w" / "mlp_train.log").read_text()


def test_native_past_its_time_budget_is_timed_out(engine, agpd_split, fake_mlp, tmp_path, monkeypatch):
    """A 2 s budget kills an mlp that keeps iterating: status "timed_out", the iterations
    it logged are the history, the log is kept."""
    monkeypatch.setenv("FAKE_MLP_MODE", "hang")
    obj = _objective(engine, *agpd_split)
    r = train(obj, TrainSettings(optimizer="native", budget=Budget(seconds=2.0),
                                 hyper={"mlp": str(fake_mlp), "workdir": str(tmp_path / "w")}))
    assert r.status == "timed_out", r.message
    assert 5 <= r.steps < 1000
    assert "killed" in (tmp_path / "w" / "mlp_train.log").read_text()


def test_native_without_a_binary_names_the_setting(engine, agpd_split, monkeypatch):
    """No --mlp, no $OPTBENCH_MLP, no mlp on PATH: a ValueError saying all three."""
    monkeypatch.delenv("OPTBENCH_MLP", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    obj = _objective(engine, *agpd_split)
    with pytest.raises(ValueError, match="--mlp PATH.*OPTBENCH_MLP.*PATH"):
        train(obj, TrainSettings(optimizer="native", budget=Budget(epochs=1)))


@requires_shared
def test_native_replaying_mlip3_gives_mlips_errors(engine, fake_mlp, monkeypatch, tmp_path):
    """The stand-in replays MLIP-3's real log of mtp08.mtp and saves that potential: the
    record holds its 75 + 200 iterations and status "stopped" (its iteration limit), and
    our errors of MLIP's potential on emt_train.cfg equal MLIP's report in that log
    (to 1e-5 relative, MLIP's printed digits: both evaluate the same potential)."""
    from optbench.mlip.logs import parse_train_log
    from optbench.io import read_cfg

    ref = shared_dir() / "reference" / "mlip3"
    monkeypatch.setenv("FAKE_MLP_REPLAY", str(ref / "logs" / "train_mtp08.log"))
    monkeypatch.setenv("FAKE_MLP_POT", str(ref / "potentials" / "mtp08.mtp"))
    train_set = read_cfg(ref / "configs" / "emt_train.cfg")
    # Start from MLIP's own potential file: its moment basis is listed in MLIP's order.
    obj = EngineObjective(engine, engine.load_potential(ref / "potentials" / "mtp08.mtp"), train_set, None, LossWeights(energy=1.0, forces=0.01, stress=0.0))
    r = train(obj, TrainSettings(optimizer="native", budget=Budget(epochs=1000),
                                 hyper={"mlp": str(fake_mlp), "workdir": str(tmp_path / "w"), "format": "mtp"}))
    assert r.status == "stopped", r.message
    assert r.steps == 275 and r.nit == 200
    assert r.history.loss[-1] == 0.0017358392
    assert r.history.seconds[-1] == pytest.approx(402.648, abs=1.0)
    mlip = parse_train_log((ref / "logs" / "train_mtp08.log").read_text()).errors
    assert r.train.epa_rmse == pytest.approx(mlip["energy_per_atom"]["rmse"], rel=1e-5)
    assert r.train.force_rmse == pytest.approx(mlip["forces"]["rmse"], rel=1e-5)  # both: RMS of the vector norm


def test_cli_train_native_with_mlp_path(tmp_path, agpd_split, fake_mlp, capsys):
    """`optbench train ... --optimizer native --mlp PATH` runs the given binary and ends
    with the same error report and JSON record as any optimizer; --mlp with another
    optimizer is refused (exit 2, naming the option)."""
    import json

    from optbench.cli import main
    from optbench.io import write_cfg

    train_set, valid = agpd_split
    write_cfg(train_set, tmp_path / "train.cfg")
    write_cfg(valid, tmp_path / "valid.cfg")
    common = ["train", "mtp level=6", str(tmp_path / "train.cfg"), "--valid", str(tmp_path / "valid.cfg"),
              "--budget", "epochs=4", "--stress-weight", "0", "--save-to", str(tmp_path / "fit.almtp"),
              "--mlp", str(fake_mlp), "--threads", "1"]
    assert main(common + ["--optimizer", "native", "--json", str(tmp_path / "run.json"),
                          "--hyper", f"workdir={tmp_path / 'w'}"]) == 0
    assert "Errors on the validation set" in capsys.readouterr().out
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "converged" and record["steps"] == 4 and record["optimizer"] == "native"
    assert main(common + ["--optimizer", "bfgs"]) == 2
    assert "--mlp applies to --optimizer native" in capsys.readouterr().err


def _shrunk(runs, budget="epochs=3"):
    """The runs of a shipped experiment on 12 + 6 generated configurations and a
    budget of 3 epochs (3 mlp iterations), so a test can run them all."""
    from dataclasses import replace

    small = {"kind": "generate", "n_train": 12, "n_valid": 6, "seed": 0}
    return [replace(r, data=small, settings={**r.settings, "budget": budget}) for r in runs]


def test_mlp_cli_experiment_runs_on_both_engines(fake_mlp, tmp_path, monkeypatch):
    """experiments/mlp_cli_compare.toml, shrunk, with the stand-in mlp: native runs on
    the embedded and the mlp-cli engine, SciPy BFGS and Adam on the embedded one; the
    mlp-cli runs' validation errors are MLIP's report (3.1 meV/atom, 87 meV/A, as the
    stand-in's check_errors prints), the embedded ones our engine's."""
    from optbench.experiments.experiment import load_experiment
    from optbench.experiments.runner import run_experiment
    from optbench.experiments.store import Store
    from test_runner import Sweep

    monkeypatch.setenv("OPTBENCH_MLP", str(fake_mlp))
    exp = load_experiment(Path(__file__).parents[1] / "experiments" / "mlp_cli_compare.toml")
    sweep = Sweep(exp.name, tmp_path / "s.sqlite", _shrunk(exp.runs))
    summary = run_experiment(sweep, workers=2, quiet=True)
    assert summary.ran.get("failed", 0) == 0, Store(sweep.store_path).runs_frame()[["variant", "message"]]
    frame = Store(sweep.store_path).runs_frame()
    mlp_runs = frame[frame.model == "mlp"]
    assert len(mlp_runs) == 3 and set(mlp_runs.variant) == {"native"}
    assert mlp_runs.valid_epa_rmse.tolist() == [0.0031] * 3 and mlp_runs.valid_force_rmse.tolist() == [0.087] * 3
    embedded = frame[frame.model == "embedded"]
    assert set(embedded.variant) == {"native", "bfgs", "adam"}
    assert (embedded.valid_epa_rmse != 0.0031).all()


@pytest.mark.skipif(shutil.which("mlp") is None and not os.environ.get("OPTBENCH_MLP"),
                    reason="no MLIP mlp binary on PATH or in $OPTBENCH_MLP: the real-MLIP comparison needs one")
def test_mlp_cli_experiment_with_the_real_mlp(tmp_path):
    """With a real mlp: the shipped comparison (shrunk to 3 iterations) ends with no
    failed run on either engine."""
    from optbench.experiments.experiment import load_experiment
    from optbench.experiments.runner import run_experiment
    from test_runner import Sweep

    exp = load_experiment(Path(__file__).parents[1] / "experiments" / "mlp_cli_compare.toml")
    summary = run_experiment(Sweep(exp.name, tmp_path / "s.sqlite", _shrunk(exp.runs)), workers=2, quiet=True)
    assert summary.ran.get("failed", 0) == 0 and sum(summary.ran.values()) == 12
