"""The statistics (optbench.report.stats) and the report (optbench.report) on a
synthetic results store built by hand, with every aggregate checked against numbers
worked out by hand from the planted values.

The store (model "mtp8", data "agpd"):
  bfgs           seeds 0-3, EPA 1.0 1.2 1.1 1.3 meV/atom, train 10 12 11 13 s; seed 2
                 says "precision loss" (status converged), seed 3 stopped on ABNORMAL
  adam lr=0.01   seeds 0-3, EPA 10 11 12 100 meV/atom (seed 3 an outlier), seed 4 failed
  adam lr=0.001  seeds 0-1 (an lr sweep for adam)
  sgd lr=1e-09   seeds 0-3 with identical results (the seed never reached the run)
Each run's history evaluates 4 times, at T k/4 s with EPA (5 - k) x its final EPA.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from optbench.report import stats
from optbench.metrics import ErrorStats, Metrics
from optbench.report import write_report
from optbench.experiments.store import Store

REPO = Path(__file__).resolve().parents[1]
CHECK_SCRIPT = REPO / "scripts" / "check_report_html.py"
sys.path.insert(0, str(REPO / "scripts"))
from check_report_html import find_chromium  # noqa: E402

BFGS_EPA = [1.0, 1.2, 1.1, 1.3]          # meV/atom, seeds 0-3
BFGS_FORCE = [50.0, 52.0, 51.0, 53.0]    # meV/A
BFGS_SECONDS = [10.0, 12.0, 11.0, 13.0]
ADAM_EPA = [10.0, 11.0, 12.0, 100.0]
ADAM_FORCE = [150.0, 160.0, 170.0, 900.0]
ADAM_SECONDS = [5.0, 5.0, 6.0, 6.0]


def _metrics(epa_mev: float, force_mev: float) -> dict:
    """A Metrics record (as RunResult.to_dict holds it) with the given RMSEs."""
    return Metrics(n_configs=10, n_atoms=100, energy=ErrorStats(10, rmse=epa_mev * 1e-2),
                   energy_per_atom=ErrorStats(10, rmse=epa_mev * 1e-3), forces=ErrorStats(300, rmse=force_mev * 1e-3),
                   force_component_rmse=force_mev * 1e-3 / np.sqrt(3)).to_dict()


def _history(seconds: float, epa_mev: float, final_loss: float, batch: int = 10, steps: int = 40) -> dict:
    """Loss falling to final_loss over `steps` steps in `seconds`; evaluations at
    seconds * k/4 with EPA (5 - k) * epa_mev, k = 1..4."""
    step = list(range(1, steps + 1))
    loss = [final_loss * (1 + 20 * np.exp(-s / 8)) for s in step]
    loss[-1] = final_loss
    evals = [{"step": steps * k // 4, "configs": batch * steps * k // 4, "seconds": seconds * k / 4,
              "loss": loss[steps * k // 4 - 1], "train_epa_rmse": (5 - k) * epa_mev * 1e-3,
              "train_force_rmse": 0.1, "valid_epa_rmse": (5 - k) * epa_mev * 1e-3, "valid_force_rmse": 0.1,
              "valid_loss": 1.0} for k in range(1, 5)]
    return {"step": step, "loss": loss, "configs": [batch * s for s in step],
            "seconds": [seconds * s / steps for s in step], "evals": evals}


def _add_run(store: Store, variant: str, optimizer: str, seed: int, status: str = "budget", message: str = "",
             epa: float | None = None, force: float | None = None, seconds: float = 1.0, final_loss: float = 1.0,
             lr: float | None = None, success: bool | None = None, nit: int | None = None,
             history: bool = True, valid: bool = True, model: str = "mtp8", data: str = "agpd") -> str:
    key = f"{model}-{data}-{variant}-{seed}".replace(" ", "_")
    spec = {"experiment": "synthetic", "model_name": model, "data_name": data, "optimizer": optimizer,
            "variant": variant, "settings": {"seed": seed, "lr": lr, "budget": "epochs=4"}}
    assert store.claim(key, spec, "test")
    have = epa is not None
    result = {"status": status, "message": message, "train_seconds": seconds if have else None,
              "wall_seconds": seconds + 1 if have else None, "steps": 40 if have else 0,
              "configs_evaluated": 400 if have else 0, "nit": nit, "nfev": None if nit is None else nit + 5,
              "success": success, "best_step": 40, "notes": [],
              "train": _metrics(epa, force) if have else None,
              "valid": _metrics(epa, force) if have and valid else None,
              "best_train": _metrics(epa, force) if have else None,
              "best_valid": _metrics(epa, force) if have and valid else None,
              "history": _history(seconds, epa, final_loss) if have and history else None}
    store.finish(key, result)
    return key


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    """The synthetic store of the module docstring, at <tmp>/runs/results.sqlite (built
    once: the tests only read it)."""
    path = tmp_path_factory.mktemp("synthetic") / "runs" / "results.sqlite"
    with Store(path) as st:
        bfgs_msgs = ["Optimization terminated successfully.", "Optimization terminated successfully.",
                     "Desired error not necessarily achieved due to precision loss.",
                     "ABNORMAL_TERMINATION_IN_LNSRCH"]
        for s in range(4):
            _add_run(st, "bfgs", "bfgs", s, "stopped" if s == 3 else "converged", bfgs_msgs[s], BFGS_EPA[s],
                     BFGS_FORCE[s], BFGS_SECONDS[s], final_loss=0.01 * (s + 1), success=s < 2, nit=100 + 10 * s)
        for s in range(4):
            _add_run(st, "adam lr=0.01", "adam", s, "budget", "epochs", ADAM_EPA[s], ADAM_FORCE[s],
                     ADAM_SECONDS[s], final_loss=0.5 + s, lr=0.01)
        _add_run(st, "adam lr=0.01", "adam", 4, "failed", "RuntimeError: engine exploded", lr=0.01)
        for s in range(2):
            _add_run(st, "adam lr=0.001", "adam", s, "budget", "epochs", 20.0 + s, 200.0, 5.0, final_loss=2.0,
                     lr=0.001)
        for s in range(4):
            _add_run(st, "sgd lr=1e-09", "sgd", s, "budget", "epochs", 50.0, 400.0, 4.0 + s, final_loss=5.0,
                     lr=1e-9)
    return path


@pytest.fixture(scope="module")
def report(store_path):
    """write_report on the synthetic store with a fixed budget and target (written once
    into the default place, the store's folder / report)."""
    return write_report(store_path, options={"budgets_seconds": [6.0], "budgets_configs": [200],
                                             "target_epa_mev": 2.3})


def _row(df, **where):
    mask = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        mask &= (df[k] == v).to_numpy()
    assert mask.sum() == 1, (where, mask.sum())
    return df[mask].iloc[0]


# ---------------------------------------------------------------------- stats.py

def test_summarize_by_hand():
    """summarize: mean, median, sample std (ddof=1), min, max and n of finite values only."""
    s = stats.summarize([1.0, 1.2, 1.1, 1.3, np.nan, None])
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(1.15) and s["median"] == pytest.approx(1.15)
    assert s["std"] == pytest.approx(np.sqrt(0.05 / 3))  # squared deviations .0225 .0025 .0025 .0225 over n-1
    assert (s["min"], s["max"]) == (1.0, 1.3)
    one = stats.summarize([2.0])
    assert one["n"] == 1 and one["mean"] == 2.0 and np.isnan(one["std"])
    assert stats.summarize([])["n"] == 0 and np.isnan(stats.summarize([np.nan])["mean"])


def test_robust_z_flags_planted_outlier_and_handles_zero_mad():
    """robust_z: (x - median) / (1.4826 MAD); |z| > 3.5 flags; MAD = 0 falls back to the
    mean absolute deviation, all-equal values score 0, NaN stays NaN and is never flagged."""
    z = stats.robust_z([10.0, 11.0, 12.0, 100.0])  # median 11.5, MAD median(1.5, .5, .5, 88.5) = 1
    assert z == pytest.approx([-1.5 / 1.4826, -0.5 / 1.4826, 0.5 / 1.4826, 88.5 / 1.4826])
    assert list(stats.outliers([10.0, 11.0, 12.0, 100.0])) == [False, False, False, True]
    # MAD 0: mean |dev| = 99/5, scale 1.2533 * 19.8; z of 100 = 99 / 24.81 = 3.99 > 3.5
    z0 = stats.robust_z([1.0, 1.0, 1.0, 1.0, 100.0])
    assert z0[-1] == pytest.approx(99 / (np.sqrt(np.pi / 2) * 99 / 5)) and z0[-1] > 3.5
    assert list(stats.robust_z([3.0, 3.0, 3.0])) == [0.0, 0.0, 0.0]
    zn = stats.robust_z([1.0, np.nan, 2.0, 3.0])
    assert np.isnan(zn[1]) and not stats.outliers([1.0, np.nan, 2.0, 3.0]).any()


def test_bootstrap_ci_brackets_mean_and_is_reproducible():
    """bootstrap_ci: a percentile interval of resampled means, inside the data's range
    and around the mean; the same seed gives the same interval; n < 2 gives NaN."""
    x = [10.0, 11.0, 12.0, 100.0]
    lo, hi = stats.bootstrap_ci(x)
    assert 10.0 <= lo < np.mean(x) < hi <= 100.0
    assert stats.bootstrap_ci(x) == (lo, hi)
    assert all(np.isnan(stats.bootstrap_ci([1.0])))
    assert all(np.isnan(stats.bootstrap_ci([1.0, np.nan])))


def test_paired_test_matches_scipy_wilcoxon():
    """paired_test: Wilcoxon signed-rank over the shared seeds with finite values, the
    same statistic and p as scipy.stats.wilcoxon on those pairs; mean per-seed ratio;
    no test (NaN) below 2 nonzero differences; the smallest possible p is 2 / 2**n."""
    a = {0: 10.0, 1: 11.0, 2: 12.0, 3: 100.0, 4: np.nan}
    b = {0: 1.0, 1: 1.2, 2: 1.1, 3: 1.3, 7: 5.0}
    t = stats.paired_test(a, b)
    ref = wilcoxon([10.0, 11.0, 12.0, 100.0], [1.0, 1.2, 1.1, 1.3])
    assert t["n_pairs"] == 4 and t["n_nonzero"] == 4
    assert t["statistic"] == pytest.approx(ref.statistic) and t["p_value"] == pytest.approx(ref.pvalue)
    assert t["p_value"] == pytest.approx(0.125) == t["min_p"]  # all 4 signs alike: 2 / 2**4
    assert t["mean_ratio"] == pytest.approx(np.mean([10 / 1.0, 11 / 1.2, 12 / 1.1, 100 / 1.3]))
    assert t["median_diff"] == pytest.approx(np.median([9.0, 9.8, 10.9, 98.7]))
    mixed = stats.paired_test({0: 1.0, 1: 5.0, 2: 2.0, 3: 7.0, 4: 3.0}, {0: 2.0, 1: 3.0, 2: 2.5, 3: 4.0, 4: 1.0})
    ref = wilcoxon([1.0, 5.0, 2.0, 7.0, 3.0], [2.0, 3.0, 2.5, 4.0, 1.0])
    assert mixed["p_value"] == pytest.approx(ref.pvalue) and mixed["statistic"] == pytest.approx(ref.statistic)
    few = stats.paired_test({0: 1.0, 1: 2.0}, {0: 1.0, 1: 3.0})  # one nonzero difference
    assert few["n_pairs"] == 2 and few["n_nonzero"] == 1 and np.isnan(few["p_value"])
    assert [stats.min_wilcoxon_p(n) for n in (3, 4, 5)] == [0.25, 0.125, 0.0625]


HAND_EVALS = [{"seconds": 1.0, "configs": 100, "valid_epa_rmse": 0.005},
              {"seconds": 2.0, "configs": 200, "valid_epa_rmse": 0.003},
              {"seconds": 3.0, "configs": 300, "valid_epa_rmse": 0.004},
              {"seconds": 4.0, "configs": 400},  # no validation at this one
              {"seconds": 5.0, "configs": 500, "valid_epa_rmse": 0.001}]


def test_equal_budget_and_time_to_target_on_hand_history():
    """best_within_budget: the lowest validation EPA among evaluations within the budget
    (seconds or configurations), NaN before the first; time_to_target: the first
    seconds/configurations with EPA <= target, None if never; the median counts never
    as infinitely slow."""
    assert stats.best_within_budget(HAND_EVALS, 2.5) == 0.003
    assert stats.best_within_budget(HAND_EVALS, 3.0) == 0.003  # the later 0.004 does not undo the best
    assert stats.best_within_budget(HAND_EVALS, 350, "configs") == 0.003
    assert stats.best_within_budget(HAND_EVALS, 1e9) == 0.001
    assert np.isnan(stats.best_within_budget(HAND_EVALS, 0.5))
    assert np.isnan(stats.best_within_budget([], 10.0))
    assert stats.time_to_target(HAND_EVALS, 0.0035) == 2.0
    assert stats.time_to_target(HAND_EVALS, 0.0035, "configs") == 200
    assert stats.time_to_target(HAND_EVALS, 0.001) == 5.0
    assert stats.time_to_target(HAND_EVALS, 0.0005) is None
    assert stats.median_time_to_target([2.0, 3.0, None]) == 3.0
    assert stats.median_time_to_target([2.0, None, None]) == np.inf


def test_moving_average_and_identical_groups():
    """moving_average: trailing mean over `window` points, same length, NaN skipped, no
    cancellation across decades; identical_groups: seeds agreeing to 1e-12 relative."""
    y = stats.moving_average([1.0, 3.0, 5.0, np.nan, 9.0], 2)
    assert y == pytest.approx([1.0, 2.0, 4.0, 5.0, 9.0])
    small = stats.moving_average([1e12, 1e-3, 1e-3, 1e-3], 2)
    assert small[-1] == 1e-3  # a cumulative-sum difference would have lost this
    assert stats.identical_groups([(5.0, 0.05), (5.0, 0.05), (5.0, 0.05 * (1 + 1e-9)), (np.nan, 1.0)]) == [[0, 1]]
    assert stats.all_identical([2.0, 2.0 * (1 + 1e-13)]) and not stats.all_identical([2.0])


# ---------------------------------------------------------------------- the report (optbench.report)

def test_summary_numbers_by_hand(report):
    """Summary table: per variant mean/median/std/min/max of validation EPA (meV/atom),
    force (meV/A) and train time over finite values only (the failed run does not count)."""
    summ = report["tables"]["summary"]
    epa = _row(summ, variant="bfgs", quantity="validation EPA RMSE")
    assert (epa["n"], epa["mean"], epa["median"]) == (4, pytest.approx(1.15), pytest.approx(1.15))
    assert epa["std"] == pytest.approx(np.std(BFGS_EPA, ddof=1))
    assert (epa["min"], epa["max"]) == (pytest.approx(1.0), pytest.approx(1.3))
    force = _row(summ, variant="bfgs", quantity="validation force RMSE")
    assert force["mean"] == pytest.approx(51.5) and force["unit"] == "meV/Å"
    adam = _row(summ, variant="adam lr=0.01", quantity="validation EPA RMSE")
    assert adam["n"] == 4 and adam["mean"] == pytest.approx(33.25) and adam["median"] == pytest.approx(11.5)
    secs = _row(summ, variant="adam lr=0.01", quantity="train time")
    assert secs["mean"] == pytest.approx(5.5) and secs["n"] == 4
    nit = _row(summ, variant="bfgs", quantity="SciPy nit")
    assert nit["mean"] == pytest.approx(115.0)
    ov = report["tables"]["overview"]
    b = _row(ov, variant="bfgs")
    assert b["scipy_success"] == "2 of 4" and b["epa_ci_lo_mev"] <= 1.15 <= b["epa_ci_hi_mev"]
    a = _row(ov, variant="adam lr=0.01")
    assert a["runs"] == 5 and "failed 1" in a["statuses"] and a["n_epa"] == 4
    assert a["epa_ci_lo_mev"] < 33.25 < a["epa_ci_hi_mev"]


def test_outlier_flagged_with_seed(report):
    """Outliers: the planted 100 meV/atom adam seed 3 (robust z 59.7) is listed with its
    seed, and named in the overview; nothing else in EPA is flagged."""
    out = report["tables"]["outliers"]
    epa = out[out["quantity"] == "validation EPA RMSE"]
    assert list(zip(epa["variant"], epa["seed"])) == [("adam lr=0.01", 3)]
    assert epa["robust_z"].iloc[0] == pytest.approx(88.5 / 1.4826)
    assert _row(report["tables"]["overview"], variant="adam lr=0.01")["outlier_seeds"] == "3"


def test_baseline_ratios_and_paired_test(report):
    """Against the baseline (bfgs by default): ratios of means, and the paired Wilcoxon
    p-value equal to scipy.stats.wilcoxon on the shared seeds' EPA."""
    assert report["baselines"][("mtp8", "agpd")] == "bfgs"
    vs = report["tables"]["vs_baseline"]
    a = _row(vs, variant="adam lr=0.01")
    assert a["epa_ratio"] == pytest.approx(33.25 / 1.15)
    assert a["force_ratio"] == pytest.approx(np.mean(ADAM_FORCE) / 51.5)
    assert a["time_ratio"] == pytest.approx(5.5 / 11.5)
    assert a["epa_n_pairs"] == 4
    assert a["epa_p"] == pytest.approx(wilcoxon(ADAM_EPA, BFGS_EPA).pvalue)
    assert a["force_p"] == pytest.approx(wilcoxon(ADAM_FORCE, BFGS_FORCE).pvalue)
    assert a["epa_mean_seed_ratio"] == pytest.approx(np.mean(np.array(ADAM_EPA) / BFGS_EPA))
    two = _row(vs, variant="adam lr=0.001")  # 2 shared seeds: exact p = 0.5 at best
    assert two["epa_n_pairs"] == 2 and two["epa_p"] == pytest.approx(wilcoxon([20.0, 21.0], [1.0, 1.2]).pvalue)
    base = _row(vs, variant="bfgs")
    assert base["epa_ratio"] == 1.0 and np.isnan(base["epa_p"])


def test_equal_budget_and_time_to_target_by_hand(report):
    """Equal budget (6 s): bfgs evaluations at T k/4 give best EPA 3.0 3.6 3.3 5.2
    meV/atom (seed 3's second one comes at 6.5 s), median 3.45; time to 2.3 meV/atom:
    7.5, 12, 8.25, 13 s, median 10.125, all 4 seeds reached it."""
    eq = report["tables"]["equal_budget"]
    b = _row(eq, variant="bfgs", axis="seconds", budget=6.0)
    assert b["median_mev"] == pytest.approx(3.45) and b["min_mev"] == pytest.approx(3.0)
    assert b["max_mev"] == pytest.approx(5.2) and b["n_with_eval"] == 4 and b["ended_before"] == 0
    # Configurations: every run evaluates at 100, 200, 300, 400; within 200 -> k = 2: 3 x final
    c = _row(eq, variant="bfgs", axis="configs", budget=200)
    assert c["median_mev"] == pytest.approx(3 * 1.15)
    adam = _row(eq, variant="adam lr=0.01", axis="seconds", budget=6.0)
    assert adam["ended_before"] == 2 and adam["n_with_eval"] == 4  # the 5 s runs ended before 6 s
    ttt = report["tables"]["time_to_target"]
    t = _row(ttt, variant="bfgs")
    assert t["reached"] == 4 and t["median_seconds"] == pytest.approx(10.125) and t["min_seconds"] == 7.5
    assert t["median_configs"] == pytest.approx(np.median([300, 400, 300, 400]))
    never = _row(ttt, variant="sgd lr=1e-09")
    assert never["reached"] == 0 and never["median_seconds"] == np.inf
    assert report["targets_mev"][("mtp8", "agpd")] == 2.3


def test_default_target_and_budgets(store_path, tmp_path):
    """Defaults: the target is the baseline's median final validation EPA (1.15
    meV/atom); the seconds budgets are 10 % and 50 % of the shortest run (4 s), then the
    0/50/100 % quantiles of the 14 runs' extents 4 5 5 5 5 5 6 6 6 7 10 11 12 13 s
    (the failed run has none): 4, 6, 13 s."""
    rep = write_report(store_path, tmp_path / "r2")
    assert rep["targets_mev"][("mtp8", "agpd")] == pytest.approx(1.15)
    budgets = sorted(set(rep["tables"]["equal_budget"].query("axis == 'seconds'")["budget"]))
    assert budgets == pytest.approx([0.4, 2.0, 4.0, 6.0, 13.0])


def test_keys_restrict_the_report_and_say_what_is_left_out(store_path, tmp_path):
    """keys= (an experiment's runs on the current code): only those runs are reported,
    and the report says how many finished runs it left out."""
    with Store(store_path) as st:
        frame = st.runs_frame()
    bfgs_keys = frame.loc[frame["variant"] == "bfgs", "key"].tolist()
    rep = write_report(store_path, tmp_path / "r3", keys=bfgs_keys)
    assert set(rep["tables"]["overview"]["variant"]) == {"bfgs"}
    left = len(frame) - len(bfgs_keys)
    assert any(p.startswith(f"{left} finished run(s) of other code versions") for p in rep["problems"])


def test_flags_identical_line_search_failed(report):
    """Flags: the sgd variant's 4 identical seeds, bfgs seed 3 (stopped, ABNORMAL) and
    seed 2 (says precision loss although status converged) as not converged, and the
    failed adam run with its message."""
    fl = report["tables"]["flags"]
    same = fl[fl["flag"] == "identical across seeds"]
    assert sorted(same["seed"]) == [0, 1, 2, 3] and set(same["variant"]) == {"sgd lr=1e-09"}
    ls = fl[fl["flag"].str.startswith("not converged")]
    assert sorted(zip(ls["variant"], ls["seed"])) == [("bfgs", 2), ("bfgs", 3)]
    assert "ABNORMAL" in _row(ls, seed=3)["detail"]
    failed = _row(fl, flag="failed")
    assert failed["seed"] == 4 and "engine exploded" in failed["detail"]
    md = report["markdown"].read_text()
    assert "identical across seeds" in md and "ABNORMAL_TERMINATION_IN_LNSRCH" in md


def test_files_written_self_contained(report, store_path):
    """report.md and report.html land in the store's folder / report; every figure is a
    PNG in figures/, referenced by the Markdown and embedded in the HTML as a base64 data
    URI; nothing in the HTML outside the image data names an http(s) URL."""
    out = store_path.parent / "report"
    assert report["html"] == out / "report.html" and report["markdown"] == out / "report.md"
    figs = report["figures"]
    names = {p.name for p in figs}
    for kind in ("loss", "quality-cost", "ensembles", "equal-budget", "sweep-adam-lr"):
        assert any(n.startswith("mtp8-agpd-") and n.endswith(f"_{kind}.png") for n in names), (kind, names)
    assert all(p.parent == out / "figures" and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in figs)
    text = report["html"].read_text()
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(srcs) == len(figs) and all(s.startswith("data:image/png;base64,") for s in srcs)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in srcs}
    assert embedded == {p.read_bytes() for p in figs}
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    md = report["markdown"].read_text()
    assert all(f"](figures/{p.name})" in md for p in figs)
    assert not [p for p in report["problems"] if "could not be drawn" in p]


def test_partial_store_does_not_crash(tmp_path):
    """A partial store: one variant, one seed without validation metrics, one timed-out
    run without history or metrics, one run still claimed (running): the report is
    written and says what is missing; an empty store gives a report that says so."""
    path = tmp_path / "partial.sqlite"
    with Store(path) as st:
        _add_run(st, "adam", "adam", 0, "budget", "epochs", 5.0, 50.0, 2.0, valid=False)
        _add_run(st, "adam", "adam", 1, "timed_out", "killed at the time limit")
        assert st.claim("pending", {"experiment": "synthetic", "model_name": "mtp8", "data_name": "agpd",
                                    "optimizer": "adam", "variant": "adam", "settings": {"seed": 2}}, "test")
    rep = write_report(path, tmp_path / "out")
    text = "\n".join(rep["problems"])
    assert "1 run(s) running" in text and "without a validation EPA" in text and "without a loss history" in text
    assert "no BFGS run" in text
    assert rep["html"].is_file() and "timed_out" in rep["markdown"].read_text()
    empty = write_report(Store(tmp_path / "empty.sqlite"), tmp_path / "out2")
    assert "no finished run" in "\n".join(empty["problems"]) and empty["figures"] == []
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing.sqlite")


# ---------------------------------------------------------------------- the browser check

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="chromium not installed (apt-get install chromium): the "
                                           "headless-browser check of report.html is skipped")


@needs_chromium
def test_chromium_renders_every_figure(report, tmp_path):
    """scripts/check_report_html.py opens report.html in offline headless Chromium: every
    figure renders (exit 0, "N of N figures rendered") and a screenshot is written."""
    shot = tmp_path / "shot.png"
    res = subprocess.run([sys.executable, str(CHECK_SCRIPT), str(report["html"]), "--screenshot", str(shot)],
                         capture_output=True, text=True, timeout=300)
    n = len(report["figures"])
    assert res.returncode == 0, res.stderr
    assert f"{n} of {n} figures rendered" in res.stdout
    assert shot.read_bytes()[:4] == b"\x89PNG"


@needs_chromium
def test_chromium_check_catches_broken_figure(report, tmp_path):
    """The check fails (exit 1, naming the figure) when an embedded image cannot decode."""
    text = report["html"].read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,AAAA", text,
                             count=1))
    res = subprocess.run([sys.executable, str(CHECK_SCRIPT), str(broken)], capture_output=True, text=True,
                         timeout=300)
    n = len(report["figures"])
    assert res.returncode == 1 and f"{n - 1} of {n} figures rendered" in res.stderr
    assert "did not render" in res.stderr


def test_check_script_without_chromium(report, tmp_path):
    """Without a browser the check exits 2 saying how to install one."""
    env = {"PATH": str(tmp_path), "CHROMIUM": str(tmp_path / "no-such-browser")}
    res = subprocess.run([sys.executable, str(CHECK_SCRIPT), str(report["html"])], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 2 and "chromium not found: apt-get install chromium" in res.stderr
