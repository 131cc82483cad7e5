"""One training over MPI ranks (optbench.parallel, optbench.objective.distributed): the
contracts of the partition and of the metrics' partial sums, and under `mpiexec -n 2`
(skipped with the reason where mpi4py or mpiexec is missing) that N = 2 computes the
bits N = 1 computes (loss, gradient, linear system, whole BFGS and Adam histories), that
each rank holds only its share (pairs and resident memory), and that a dead, hung or
misconfigured rank ends the job with a message, in seconds, writing nothing."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from optbench.io.cfg import write_cfg
from optbench.io.generator import generate_agpd_split
from optbench.metrics import compute_metrics, error_sums, metrics_from_sums
from optbench.parallel import MPIUnavailable, contiguous_partition, launched_size, share_of, world

HERE = Path(__file__).parent / "mpi"
BIN = Path(sys.executable).parent


def _mpiexec() -> str | None:
    found = BIN / "mpiexec"
    return str(found) if found.exists() else shutil.which("mpiexec")


def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'mlip-optbench[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec (MPICH's wheel puts one beside the Python interpreter)"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def _launch(n: int, args: list[str], timeout: float = 240.0) -> subprocess.CompletedProcess:
    cmd = [_mpiexec(), "-n", str(n), *args] if n else args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-300))


# ------------------------------------------------------------------ without MPI
def test_partition_is_the_best_contiguous_split():
    """contiguous_partition's largest part equals the brute-force optimum over every
    placement of the boundaries, and every part is nonempty."""
    rng = np.random.default_rng(0)
    for trial in range(40):
        n, k = int(rng.integers(1, 9)), int(rng.integers(1, 5))
        if n < k:
            with pytest.raises(ValueError, match="at most"):
                contiguous_partition(np.ones(n), k)
            continue
        w = rng.integers(0, 50, size=n)
        b = contiguous_partition(w, k)
        assert b[0] == 0 and b[-1] == n and np.all(np.diff(b) >= 1)
        worst = max(w[b[i]:b[i + 1]].sum() for i in range(k))
        best = min(max(w[c[i]:c[i + 1]].sum() for i in range(k))
                   for cuts in itertools.combinations(range(1, n), k - 1) for c in [(0, *cuts, n)])
        assert worst == best


def test_share_of_keeps_the_batch_order():
    """A global batch maps to each rank's local indices, in the batch's order."""
    batch = np.array([9, 2, 5, 7, 0, 3])
    assert share_of(batch, 3, 8).tolist() == [2, 4, 0]
    assert share_of(batch, 0, 3).tolist() == [2, 0]
    assert share_of(None, 0, 3) is None


def test_metric_sums_of_parts_give_the_metrics_of_the_whole():
    """error_sums are additive: sums added and maxima maximised over two disjoint parts
    (one of them empty as a third) give compute_metrics of the union to 1e-14."""
    train, _ = generate_agpd_split(12, 0, seed=4)
    rng = np.random.default_rng(1)
    pred = [(c.energy + rng.normal(0, 0.1), c.forces + rng.normal(0, 0.05, c.forces.shape),
             c.stress + rng.normal(0, 0.3, 6)) for c in train.configs]

    def sums(configs, p):
        if not configs:
            return error_sums([], np.zeros(0), np.zeros((0, 3)), np.zeros((0, 6)))
        return error_sums(configs, np.array([e for e, _, _ in p]), np.concatenate([f for _, f, _ in p]),
                          np.array([s for _, _, s in p]))

    parts = [sums(train.configs[:5], pred[:5]), sums(train.configs[5:], pred[5:]), sums([], [])]
    total = metrics_from_sums(sum(s for s, _ in parts), np.max([m for _, m in parts], axis=0)).to_dict()
    whole = compute_metrics(train.configs, np.array([e for e, _, _ in pred]),
                            np.concatenate([f for _, f, _ in pred]), np.array([s for _, _, s in pred])).to_dict()

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, prefix + k + ".")
            else:
                yield prefix + k, v

    for (key, a), (_, b) in zip(flat(total), flat(whole)):
        if b is None:  # blocks without relative errors
            assert a is None, key
        else:
            assert a == pytest.approx(b, rel=1e-14, nan_ok=True), key


def test_launcher_detection(monkeypatch):
    """The rank count comes from the launcher's variables; without one, or with one rank,
    world() is None and nothing imports mpi4py; several ranks without mpi4py is an error
    that says what to install."""
    assert launched_size({}) == 1
    assert launched_size({"PMI_SIZE": "4"}) == 4
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert world() is None
    monkeypatch.setenv("PMI_SIZE", "1")
    assert world() is None
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    with pytest.raises(MPIUnavailable, match=r"one of 2 MPI ranks.*pip install"):
        world()


# ------------------------------------------------------------------ under mpiexec
@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """parity.py's numbers: plain (no MPI), the data-parallel code on 1 rank, and on 2."""
    if _mpi_missing():
        pytest.skip(_mpi_missing())
    d = tmp_path_factory.mktemp("mpi")
    out = {}
    for name, n, extra in (("plain", 0, []), ("n1", 0, ["force"]), ("n2", 2, [])):
        path = d / f"{name}.json"
        r = _launch(n, [sys.executable, str(HERE / "parity.py"), str(path), "200", *extra])
        assert r.returncode == 0, r.stderr[-3000:]
        out[name] = json.loads(path.read_text())
    return out


@needs_mpi
def test_two_ranks_compute_the_bits_of_one(parity):
    """Loss, gradient (whole set and a batch), validation loss, the linear system and
    whole BFGS and Adam (mini-batch 8) histories: N = 2 equals N = 1 to 1e-12 relative
    (measured: exactly, the leaves are added in the same order); against the plain
    objective without MPI single evaluations agree to rounding (1e-14)."""
    one, two, plain = parity["n1"], parity["n2"], parity["plain"]
    for key in ("loss", "grad", "batch_loss", "batch_grad", "loss_only", "valid_loss", "A", "b", "r0"):
        assert _rel(one[key], two[key]) <= 1e-12, key
        assert _rel(plain[key], two[key]) <= 1e-14, key
    for run in ("bfgs", "adam"):
        a, b = one["runs"][run], two["runs"][run]
        assert a["steps"] == b["steps"] > 10
        assert _rel(a["loss"], b["loss"]) <= 1e-12, run
        assert _rel(a["x"], b["x"]) <= 1e-12, run
    m1, m2 = one["valid_metrics"], two["valid_metrics"]
    assert m2["forces"]["count"] == m1["forces"]["count"] == sum(parity["plain"]["valid_atoms"])
    assert m2["forces"]["rmse"] == pytest.approx(m1["forces"]["rmse"], rel=1e-13)


@needs_mpi
def test_each_rank_holds_only_its_share(parity):
    """Two ranks split the 200 configurations and their neighbour pairs (each within 2 %
    of half), and the resident memory each rank's share took is at most 70 % of what the
    whole set takes on one rank (measured 56-58 %)."""
    (whole,), shares = parity["n1"]["shares"], parity["n2"]["shares"]
    assert sum(s["configs"] for s in shares) == whole["configs"] == 200
    assert sum(s["pairs"] for s in shares) == whole["pairs"]
    for s in shares:
        assert abs(s["pairs"] / whole["pairs"] - 0.5) < 0.02
        assert s["rss_kib"] < 0.7 * whole["rss_kib"], (s, whole)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    train, _ = generate_agpd_split(48, 0, seed=2)
    path = tmp_path_factory.mktemp("mpidata") / "agpd.cfg"
    write_cfg(train, path)
    return path


def _train_args(data_file, out: Path, *extra: str) -> list[str]:
    return ["train", "mtp level=6", str(data_file), "--optimizer", "bfgs", "--budget", "epochs=40", "--threads", "1",
            "--valid-fraction", "0.25", "--save-to", str(out), *extra]


@needs_mpi
def test_optbench_train_under_mpiexec(data_file, tmp_path):
    """`mpiexec -n 2 optbench train` trains on both ranks' shares: one report, one file,
    the same validation errors as the plain command (to rounding)."""
    plain, mpi = tmp_path / "plain.almtp", tmp_path / "mpi.almtp"
    r1 = _launch(0, [str(BIN / "optbench"), *_train_args(data_file, plain, "--json", str(tmp_path / "plain.json"))])
    r2 = _launch(2, [str(BIN / "optbench"), *_train_args(data_file, mpi, "--json", str(tmp_path / "mpi.json"))])
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr[-3000:]
    assert "over 2 MPI ranks" in r2.stderr and r2.stdout.count("Errors report") == 2  # rank 0 alone prints
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("plain", "mpi"))
    assert b["steps"] == a["steps"]
    assert b["valid"]["forces"]["rmse"] == pytest.approx(a["valid"]["forces"]["rmse"], rel=1e-6)
    assert mpi.is_file()


@needs_mpi
@pytest.mark.parametrize("mode", ["kill", "hang"])
def test_a_dead_or_hung_rank_ends_the_job(data_file, tmp_path, mode):
    """Rank 1 killed (SIGKILL) or hung at its third loss evaluation: the job ends within
    seconds with a message (MPICH's mpiexec reports the killed rank; a hung one is found
    by rank 0's deadline, --mpi-timeout 3), a nonzero status, and no potential file."""
    out = tmp_path / "never.almtp"
    t = time.monotonic()
    r = _launch(2, [sys.executable, str(HERE / "sabotage.py"), mode, "3", "--",
                    *_train_args(data_file, out, "--mpi-timeout", "3")], timeout=120)
    took = time.monotonic() - t
    assert r.returncode != 0 and took < 60
    assert not out.exists()
    text = r.stdout + r.stderr
    if mode == "kill":
        assert "BAD TERMINATION" in text or "rank" in text
    else:
        assert "no answer from every rank within 3 s" in text and "nothing was written" in text


@needs_mpi
def test_bad_input_is_one_clear_error(data_file, tmp_path):
    """A missing file: every rank stops at once; rank 0 alone prints the error naming it.
    More ranks than configurations: the error says how many ranks can be used. MLIP's
    own trainer (native) under mpiexec: one error saying to start it without."""
    r = _launch(2, [str(BIN / "optbench"), *_train_args(tmp_path / "missing.cfg", tmp_path / "p.almtp")], timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("error:") == 1 and "missing.cfg" in r.stderr, r.stderr
    one, _ = generate_agpd_split(1, 0, seed=1)
    tiny = tmp_path / "one.cfg"
    write_cfg(one, tiny)
    args = ["train", "mtp level=6", str(tiny), "--optimizer", "adam", "--budget", "epochs=2",
            "--save-to", str(tmp_path / "p.almtp")]
    r = _launch(2, [str(BIN / "optbench"), *args], timeout=60)
    assert r.returncode == 2 and "use at most 1 ranks" in r.stderr, r.stderr
    args = ["train", "mtp level=6", str(data_file), "--optimizer", "native", "--save-to", str(tmp_path / "p.almtp")]
    r = _launch(2, [str(BIN / "optbench"), *args], timeout=60)
    assert r.returncode == 2 and r.stderr.count("runs over MPI itself") == 1, r.stderr


_EXPERIMENT = """
name = "mpi_pair"
seeds = 1
threads = 1
{ranks}
store = "{store}"

[weights]
energy = 1.0
forces = 0.01
stress = 0.0

[budget]
epochs = 25

[models.mtp6]
kind = "mtp"
level = 6
min_dist = 2.0
max_dist = 5.0
{engine}

[data.agpd]
generate = {{ n_train = 40, n_valid = 12, seed = 1 }}

[[optimizers]]
name = "{optimizer}"
init_interval = 1e-2
{extra}
"""


def _experiment(tmp_path, name: str, ranks: str = "", engine: str = "", optimizer: str = "lbfgs",
                extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(_EXPERIMENT.format(ranks=ranks, store=f"{name}.sqlite", engine=engine, optimizer=optimizer,
                                       extra=extra))
    return path


@pytest.mark.parametrize("ranks, engine, optimizer, message", [
    ("mpi_ranks = 0", "", "lbfgs", "mpi_ranks: must be an integer >= 1"),
    ("mpi_ranks = 500", "", "lbfgs", "must be at most 128"),
    ("mpi_ranks = 2", 'engine = "mlp-cli"', "native", "does not spread over MPI ranks"),
    ("mpi_ranks = 2", "", "native", "runs MPI itself"),
])
def test_mpi_ranks_in_an_experiment_file_is_checked(tmp_path, ranks, engine, optimizer, message):
    """mpi_ranks must be a count the data can be cut into, with a model and optimizer
    that optbench can spread; the error names the file and line."""
    from optbench.experiments.experiment import ExperimentError, load_experiment

    path = _experiment(tmp_path, "bad", ranks, engine, optimizer)
    with pytest.raises(ExperimentError, match=message) as err:
        load_experiment(path)
    assert str(err.value).startswith(f"{path}:5:")


@needs_mpi
def test_optbench_run_spreads_a_run_marked_for_mpi(tmp_path):
    """An experiment with mpi_ranks = 2: `optbench run` starts each run as an MPI job,
    stores its record like any other, and the run's result is the one-process run's
    (validation force RMSE to 1e-6; the sums are ordered differently), its [analysis]
    too (the largest Hessian eigenvalue at the run's end, from distributed gradients and
    the distributed linear system, to 1e-6)."""
    from optbench.experiments.store import Store

    out, curvature = {}, {}
    for name, ranks in (("one", ""), ("two", "mpi_ranks = 2")):
        path = _experiment(tmp_path, name, ranks, extra="[analysis]\ncurvature = true\n")
        r = _launch(0, [str(BIN / "optbench"), "run", str(path), "--workers", "1", "--no-report"], timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        frame = Store(tmp_path / f"{name}.sqlite").runs_frame()
        assert list(frame["status"]) == ["budget"], frame.to_dict()
        out[name] = frame.iloc[0]
        curvature[name] = Store(tmp_path / f"{name}.sqlite").curvature_frame()
    assert out["two"]["valid_force_rmse"] == pytest.approx(out["one"]["valid_force_rmse"], rel=1e-6)
    assert len(curvature["two"]) == len(curvature["one"]) >= 2
    top = {k: c.iloc[-1]["result"]["hessian"]["summary"]["lambda_max"] for k, c in curvature.items()}
    assert top["two"] == pytest.approx(top["one"], rel=1e-6)
    assert "trained on 2 MPI ranks holding 20, 20" in str(out["two"]["notes"])


@needs_mpi
def test_a_foundation_model_is_spread_the_same_way(tmp_path):
    """SevenNet-0 (readout trained) on 4 configurations over 2 ranks: the energy shift
    is fitted on the whole training set (the ranks' normal equations added), and loss,
    gradient (whole set and a batch) and force RMSE equal the one-process objective's to
    1e-12 relative."""
    pytest.importorskip("sevenn", reason="the foundation extra (sevenn) is not installed")
    out = tmp_path / "torch.json"
    r = _launch(2, [sys.executable, str(HERE / "torch_parity.py"), str(out)], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["shares"] == [0, 2, 4]
    (one, two) = res["shift"]
    assert one.keys() == two.keys() and all(two[k] == pytest.approx(one[k], rel=1e-12) for k in one)
    assert res["start"] <= 1e-12
    for key in ("loss", "batch_loss", "force_rmse"):
        assert res[key][1] == pytest.approx(res[key][0], rel=1e-12), key
    assert res["grad"] <= 1e-12 and res["batch_grad"] <= 1e-12


@pytest.mark.requires_shared
def test_the_shipped_mpi_experiment_loads(shared_path):
    """experiments/mpi_pdag.toml: 6 runs of MTP-16 on the study's PdAg set, each marked
    for 2 MPI ranks (and only those keys differ from a one-process run's settings)."""
    from optbench.experiments.experiment import load_experiment

    exp = load_experiment(Path(__file__).parents[1] / "experiments" / "mpi_pdag.toml")
    assert len(exp.runs) == 6
    assert all(r.settings["mpi_ranks"] == 2 and r.threads == 1 for r in exp.runs)
    assert {r.variant for r in exp.runs} == {"bfgs", "adam", "adam+lbfgs"}
