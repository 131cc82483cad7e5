"""Tests of the ``mlp train`` adapter (optbench.mlip.mlp and optbench.mlip.logs).

The parsers run on the real MLIP-3 outputs in ``../shared/reference/mlip3/logs``; the
subprocess part runs a fake ``mlp`` (a Python script written into tmp_path), since no
MLIP binary exists on the test machines.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from optbench.mlip.logs import parse_error_report, parse_train_log
from optbench.mlip.mlp import find_mlp, run_mlp_train, train_command
from optbench.metrics import Metrics

REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "mlip3"
LOGS = REF / "logs"
needs_ref = pytest.mark.skipif(
    not LOGS.is_dir(), reason=f"MLIP-3 reference outputs not found at {LOGS}"
)


def _log(name: str):
    return parse_train_log((LOGS / name).read_text())


# ------------------------------------------------------------------ parsers, real logs


@needs_ref
def test_limit_run_iterations_losses_and_times():
    """train_mtp08.log: 75 pre-training + 200 main BFGS iterations, first/last loss, monotone times."""
    log = _log("train_mtp08.log")
    assert len(log.pretrain_iterations) == 75
    assert len(log.train_iterations) == 200
    assert len(log.iterations) == 275
    assert [it.iteration for it in log.train_iterations] == list(range(200))
    first, last = log.iterations[0], log.iterations[-1]
    assert (first.stage, first.iteration, first.loss, first.time_s) == ("pretrain", 0, 0.8330193, 15.673)
    assert (last.stage, last.iteration, last.loss, last.time_s) == ("train", 199, 0.0017358392, 402.648)
    assert log.train_iterations[0].loss == 0.0095592868
    times = [it.time_s for it in log.iterations]
    assert all(b >= a for a, b in zip(times, times[1:]))
    assert log.iteration_limit == 200 and log.tolerance == 0.001
    assert log.settings["save_to"] == "l08.mtp" and log.settings["log"] == "stdout"
    assert log.saved_to == "l08.mtp"


@needs_ref
def test_rescaling_records():
    """The rescaling passes: each trial's (scaling, condition number) and the chosen scalings."""
    log = _log("train_mtp08.log")
    t0 = log.rescale_trials[0]
    assert (t0.scaling, t0.condition_number, t0.time_s) == (0.83333333, 62.614177, 0.532)
    assert log.rescaled_to[0] == 0.83333333
    assert log.rescaled_to[-1] == 0.10281027  # the final rescale after the main fit
    # every pass chooses the scaling with the smallest condition number among its 5 trials
    assert len(log.rescale_trials) == 5 * len(log.rescaled_to)
    for k, chosen in enumerate(log.rescaled_to):
        group = log.rescale_trials[5 * k : 5 * k + 5]
        assert min(group, key=lambda r: r.condition_number).scaling == chosen


@needs_ref
def test_converged_vs_iteration_limit():
    """cap1000 run stopped by the tolerance after 800 iterations; the others hit their limit."""
    conv = _log("train_mtp08_cap1000_converged.log")
    assert conv.stop_reason == "tolerance" and conv.converged and conv.completed
    assert len(conv.train_iterations) == 800 and conv.iteration_limit == 1000
    assert conv.final_loss == 0.0010386257
    lim = _log("train_mtp08.log")
    assert lim.stop_reason == "iteration_limit" and not lim.converged and lim.completed
    l16 = _log("train_mtp16_final_cap100.log")
    assert l16.stop_reason == "iteration_limit" and len(l16.train_iterations) == 100
    assert l16.iteration_limit == 100


@needs_ref
def test_error_reports_match_readme():
    """Validation errors equal the README's table (EPA RMSE meV/atom; force RMSE norm / component meV/A)."""
    expected = {  # file: (EPA RMSE, force RMSE norm, force RMSE per component)
        "check_errors_mtp08_val.txt": (2.67, 64.7, 37.3),
        "check_errors_mtp08_cap1000_val.txt": (1.94, 51.4, 29.7),
        "check_errors_mtp16_final_val.txt": (0.86, 33.2, 19.2),
    }
    for name, (epa, f_norm, f_comp) in expected.items():
        rep = parse_error_report((LOGS / name).read_text())
        assert round(rep["energy_per_atom"]["rmse"] * 1e3, 2) == epa, name
        assert round(rep["forces"]["rmse"] * 1e3, 1) == f_norm, name
        assert round(Metrics.from_blocks(rep, 1, 1, count_key="n").force_component_rmse * 1e3, 1) == f_comp, name
    rep = parse_error_report((LOGS / "check_errors_mtp08_val.txt").read_text())
    assert rep["energy"] == {"n": 60, "max": 0.420717, "mae": 0.067737, "rmse": 0.102247}
    assert rep["forces"]["n"] == 2160
    assert rep["forces"]["rel_max"] == 0.0451505 and rep["forces"]["rel_rms"] == 0.0384809
    assert rep["stress"]["rmse"] == 4.57236 and rep["stress"]["rel_rms"] == 0.0573025
    assert rep["virial_stress"]["max"] == 4.06604


@needs_ref
def test_final_report_in_train_log_equals_check_errors_on_train_set():
    """The report printed at the end of mlp train (training set) equals check_errors on it."""
    log = _log("train_mtp08.log")
    rep = parse_error_report((LOGS / "check_errors_mtp08_train.txt").read_text())
    assert log.errors == rep


# ------------------------------------------------------------------ command, binary


def test_train_command_is_a_list_and_quotes_nothing(tmp_path):
    """Argument list in MLIP-3 syntax; a path with spaces stays one unquoted argument."""
    pot = tmp_path / "my pot" / "08.almtp"
    cmd = train_command("mlp", pot, "train set.cfg", "out dir/l08.mtp",
                        energy_weight=1.0, force_weight=0.01, stress_weight=0.0,
                        iteration_limit=200, tolerance=1e-3, init_random=True, log="stdout")
    assert isinstance(cmd, list) and all(isinstance(a, str) for a in cmd)
    assert cmd[:4] == ["mlp", "train", str(pot), "train set.cfg"]
    assert "--iteration_limit=200" in cmd and "--init_random=true" in cmd
    assert "--force_weight=0.01" in cmd and "--tolerance=0.001" in cmd
    assert "--save_to=out dir/l08.mtp" in cmd and cmd[-1] == "--log=stdout"
    assert not any('"' in a or "'" in a for a in cmd)
    no_rand = train_command("mlp", "p", "c", "s", energy_weight=1, force_weight=0.01,
                            stress_weight=0.001, iteration_limit=5, tolerance=1e-3,
                            init_random=False, log="l.txt")
    assert not any(a.startswith("--init_random") for a in no_rand)


def test_find_mlp_missing_names_the_settings(tmp_path, monkeypatch):
    """With no argument, no OPTBENCH_MLP and no mlp on PATH: FileNotFoundError naming the fixes."""
    monkeypatch.delenv("OPTBENCH_MLP", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="OPTBENCH_MLP") as exc:
        find_mlp(None)
    assert "--mlp PATH" in str(exc.value)
    fake = _fake(tmp_path, "print('hi')")
    monkeypatch.setenv("OPTBENCH_MLP", str(fake))
    assert find_mlp(None) == str(fake)
    assert find_mlp(str(fake)) == str(fake)
    with pytest.raises(FileNotFoundError):
        find_mlp(str(tmp_path / "nope"))


# ------------------------------------------------------------------ fake mlp runs


def _fake(tmp_path: Path, body: str, name: str = "mlp") -> Path:
    """Write an executable Python script standing in for mlp."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# prints MLIP-3-style lines (time stamp first) and writes --save_to
_FAKE_TRAIN = """
import sys, time
t0 = time.time()
args = dict(a[2:].split("=", 1) for a in sys.argv[4:] if a.startswith("--"))
def log(s):
    print(f"{time.time() - t0:.3f} {s}", flush=True)
log("\\titeration_limit = " + args["iteration_limit"])
log("\\tsave_to = " + args["save_to"])
log("12 configurations found in the training set")
log("Rescaling...")
log("   scaling = 0.9, condition number = 12.5")
log("Rescaling to 0.9... done")
log("Pre-training ended")
limit = int(args["iteration_limit"])
f = 1.0
for i in range(limit):
    f *= 0.5
    log(f"BFGS iter {i}: f={f}")
    if STOP_EARLY and i == 2:
        log("BFGS ended due to small decr. in 50 iterations")
        break
else:
    log("step limit reached")
log("MTPR training ended")
open(args["save_to"], "w").write("MTP\\n")
log('Selection: state saved to "' + args["save_to"] + '"')
log("training complete")
"""


@pytest.mark.parametrize("stop_early,status", [(False, "stopped"), (True, "converged")])
def test_fake_run_parses_history(tmp_path, stop_early, status):
    """A fake mlp printing a few iterations: status, parsed history, save_to written, log kept."""
    mlp = _fake(tmp_path, f"STOP_EARLY = {stop_early}\n" + _FAKE_TRAIN)
    save = tmp_path / "out dir" / "l08.mtp"
    save.parent.mkdir()
    cmd = train_command(str(mlp), "pot.almtp", "train.cfg", save, energy_weight=1.0,
                        force_weight=0.01, stress_weight=0.0, iteration_limit=5,
                        tolerance=1e-3, init_random=False, log="stdout")
    run = run_mlp_train(cmd, tmp_path / "logs" / "train.log", timeout_s=30, echo=False)
    assert run.status == status, run.message
    assert run.returncode == 0 and save.is_file()
    n = 3 if stop_early else 5
    assert [it.loss for it in run.log.train_iterations] == [0.5 ** (i + 1) for i in range(n)]
    assert all(it.time_s is not None for it in run.log.iterations)
    assert run.log.iteration_limit == 5 and run.log.rescale_trials[0].condition_number == 12.5
    assert run.log_path.read_text().count("BFGS iter") == n


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); its state in /proc says so
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except (OSError, IndexError):
        return True


def test_fake_run_times_out_and_kills_group(tmp_path):
    """A fake mlp that hangs (ignoring SIGTERM, with a child): timed_out, log kept, group killed."""
    pidfile = tmp_path / "pids"
    mlp = _fake(tmp_path, f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # forces the SIGKILL path
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pidfile)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("0.001 BFGS iter 0: f=0.5", flush=True)
        time.sleep(600)
    """)
    t0 = time.monotonic()
    run = run_mlp_train([str(mlp), "train"], tmp_path / "hang.log", timeout_s=1.0,
                        grace_s=0.5, echo=False)
    assert time.monotonic() - t0 < 6
    assert run.status == "timed_out", run.message
    assert run.log_path.is_file() and "BFGS iter 0" in run.log_path.read_text()
    assert [it.loss for it in run.log.iterations] == [0.5]
    pids = [int(p) for p in pidfile.read_text().split()]
    deadline = time.monotonic() + 3
    while not all(_pid_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_pid_gone(p) for p in pids), pids


def test_fake_run_exit_code_is_failed(tmp_path):
    """A fake mlp exiting 3 after an error line: failed, code and last lines in the message."""
    mlp = _fake(tmp_path, """
        import sys
        print("0.000 Basic trainer initialization complete", flush=True)
        print("ERROR: cannot open train.cfg", file=sys.stderr, flush=True)
        sys.exit(3)
    """)
    run = run_mlp_train([str(mlp), "train", "p", "train.cfg"], tmp_path / "f.log", 30,
                        echo=False)
    assert run.status == "failed" and run.returncode == 3
    assert "exit code 3" in run.message and "cannot open train.cfg" in run.message
    assert "cannot open train.cfg" in run.log_path.read_text()


def test_missing_binary_is_failed(tmp_path):
    """A binary that cannot be started gives status failed, with the reason in the kept log."""
    run = run_mlp_train([str(tmp_path / "no-mlp"), "train"], tmp_path / "m.log", 5, echo=False)
    assert run.status == "failed" and run.returncode is None
    assert "could not start" in run.log_path.read_text()
