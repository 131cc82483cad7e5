"""The [analysis] section, the curvature stored with each run, the report's curvature
section and `optbench analyze curvature`.

Contracts (a bad [analysis] is an error at its line: tests/test_experiment.py's
MALFORMED cases): the section goes into the runs'
settings (snapshot_every, curvature) and so into their keys, while files without it keep
theirs; a run with it stores the spectra of its start and end points (dense Hessian of an
MTP: every eigenvalue, as many as parameters), and the analysis does not change the
trajectory; the report shows the curvature table and figures; the command line prints
the spectra of a potential on data and of a stored run.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from optbench.cli import main
from optbench.experiments import load_experiment
from optbench.experiments.runner import run_experiment
from optbench.experiments.store import Store

HEAD = """
name = "c"
threads = 1
weights = { energy = 1.0, forces = 0.01, stress = 0.0 }
budget = { epochs = 8 }
models = { mtp4 = { level = 4 } }
data = { agpd = { generate = { n_train = 12, n_valid = 4, seed = 0 } } }
optimizers = [{ name = "bfgs", init_interval = 1e-2 },
              { name = "adam", lr = 1e-2, batch_size = 4, init_interval = 1e-2 }]
"""


def _write(tmp_path, text: str, name="c.toml"):
    path = tmp_path / name
    path.write_text(HEAD + textwrap.dedent(text))
    return path


def test_analysis_goes_into_the_run_settings_only_when_asked(tmp_path):
    """With [analysis] the runs carry snapshot_every and the curvature settings (new
    keys); without it, or with curvature = false, the runs and their keys are unchanged."""
    plain = load_experiment(_write(tmp_path, "", "a.toml"))
    off = load_experiment(_write(tmp_path, "[analysis]\ncurvature = false\n", "b.toml"))
    on = load_experiment(_write(tmp_path, "[analysis]\ncurvature = true\nevery = 5\ndense_max_params = 100\n",
                                "d.toml"))
    assert plain.keys("v") == off.keys("v") and "snapshot_every" not in plain.runs[0].settings
    assert on.runs[0].settings["snapshot_every"] == 5
    assert on.runs[0].settings["curvature"] == {"dense_max_params": 100}
    assert set(on.keys("v")).isdisjoint(plain.keys("v"))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """BFGS and Adam on a level-4 MTP, analysed at their start, every 4 steps and end."""
    tmp = tmp_path_factory.mktemp("curv")
    path = tmp / "c.toml"
    path.write_text(HEAD + "[analysis]\ncurvature = true\nevery = 4\n")
    exp = load_experiment(path)
    run_experiment(exp, workers=1, quiet=True)
    return path, exp


def test_runs_store_their_spectra(analysed):
    """Every run has analysed points, the first at step 0; each dense Hessian spectrum has
    one eigenvalue per parameter, ascending, its Gauss-Newton spectrum is non-negative to
    rounding (PSD), and Adam's effective matrix comes from its diagonal preconditioner."""
    _, exp = analysed
    with Store(exp.store_path) as st:
        frame = st.curvature_frame(exp.name)
        runs = st.runs_frame(exp.name)
    assert set(frame["key"]) == set(runs["key"])
    for key, sub in frame.groupby("key"):
        assert sub["step"].min() == 0 and len(sub) >= 2
        for res in sub["result"]:
            eig = np.asarray(res["hessian"]["eigenvalues"])
            assert eig.size == res["n_params"] and np.all(np.diff(eig) >= 0)
            gn = np.asarray(res["gauss_newton"]["eigenvalues"])
            assert gn.min() >= -1e-8 * gn.max()
    adam = frame[frame["variant"] == "adam"]
    end = adam.sort_values("step")["result"].iloc[-1]
    assert end["preconditioner"]["kind"] == "diagonal" and len(end["effective"]["eigenvalues"]) == end["n_params"]


def test_analysis_does_not_change_the_trajectory(analysed, tmp_path):
    """The same runs without [analysis] end at the same losses, bit for bit."""
    _, exp = analysed
    plain = load_experiment(_write(tmp_path, ""))
    run_experiment(plain, workers=1, quiet=True)
    with Store(exp.store_path) as a, Store(plain.store_path) as b:
        fa = a.runs_frame(exp.name).set_index("variant")["final_loss"]
        fb = b.runs_frame(plain.name).set_index("variant")["final_loss"]
    assert fa.to_dict() == fb.to_dict()


def test_report_has_the_curvature_section(analysed):
    """The report's curvature table (a row per variant) and its figures."""
    from optbench.report import write_report

    _, exp = analysed
    out = write_report(exp.store_path, experiment=exp.name)
    md = out["markdown"].read_text()
    assert "Curvature at the end of the runs" in md
    table = out["tables"]["curvature"]
    assert set(table["variant"]) == {"bfgs", "adam"}
    names = {p.name for p in out["figures"]}
    assert any(n.endswith("curvature-spectra.png") for n in names)
    assert any(n.endswith("curvature-condition.png") for n in names)


def test_cli_prints_spectra_of_a_potential_and_a_stored_run(analysed, tmp_path, capsys):
    """`optbench analyze curvature POT DATA` prints the Hessian and Gauss-Newton lines and
    writes every eigenvalue with --json; `... STORE KEY` prints what the run stored."""
    from optbench.io.generator import generate_agpd
    from optbench.io import write_cfg

    _, exp = analysed
    with Store(exp.store_path) as st:
        runs = st.runs_frame(exp.name)
    pot = runs["best_potential_path"].iloc[0]
    data = tmp_path / "d.cfg"
    write_cfg(generate_agpd(6, seed=3), data)
    out = tmp_path / "c.json"
    assert main(["analyze", "curvature", pot, str(data), "--species", "Ag,Pd", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "hessian" in text and "gauss_newton" in text
    res = json.loads(out.read_text())
    assert len(res["hessian"]["eigenvalues"]) == res["n_params"]
    assert main(["analyze", "curvature", str(exp.store_path), runs["key"].iloc[0]]) == 0
    assert "step 0" in capsys.readouterr().out
    assert main(["analyze", "curvature", str(exp.store_path), "nokey"]) == 2


def test_shipped_curvature_experiment_loads():
    """experiments/curvature_agpd.toml: 5 variants x 2 seeds, every run analysed every
    100 steps; BFGS ends on maxiter (so that SciPy hands back its inverse Hessian)."""
    from pathlib import Path

    exp = load_experiment(Path(__file__).resolve().parents[1] / "experiments" / "curvature_agpd.toml")
    assert len(exp.runs) == 10 and all(r.settings["snapshot_every"] == 100 for r in exp.runs)
    assert {r.variant for r in exp.runs} == {"bfgs", "adam", "adamw", "schedulefree", "adamw+lbfgs"}
    assert next(r for r in exp.runs if r.optimizer == "bfgs").settings["hyper"] == {"maxiter": 300}
