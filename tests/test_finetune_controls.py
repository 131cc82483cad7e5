"""Fine-tuning controls that apply to every model family, checked on a cheap MTP: the L-BFGS
refinement stage after a first-order optimizer, early stopping on validation, held-out
test sets and subsets in experiment files, and the file checks of foundation-model
sections (which need no torch: validating a file loads no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optbench.experiments import load_experiment
from optbench.experiments.values import ExperimentError
from optbench.io import load_data, load_tests, write_cfg
from optbench.train import Budget, TrainSettings, train


def test_refinement_follows_the_optimizer_within_the_same_budget(objective):
    """refine="lbfgs": Adam runs for 70 % of the epochs, then L-BFGS-B from Adam's point for
    the rest; the whole run keeps the one budget, the notes say where it switched, and the
    refined loss is below Adam's alone with the same budget's first share."""
    budget = Budget(epochs=40)
    plain = train(objective, TrainSettings(optimizer="adam", lr=1e-2, budget=Budget(epochs=28), seed=1))
    refined = train(objective, TrainSettings(optimizer="adam", lr=1e-2, budget=budget, seed=1, refine="lbfgs",
                                             refine_fraction=0.3))
    assert refined.configs_evaluated <= 40 * objective.n_train + objective.n_train
    assert any("L-BFGS-B refinement" in n for n in refined.notes)
    assert refined.message.startswith("L-BFGS-B refinement")
    # the first 28 epochs are Adam's, step for step
    k = plain.history.configs.index(plain.configs_evaluated)
    assert refined.history.loss[:k + 1] == plain.history.loss[:k + 1]
    assert objective.loss(refined.x) < 0.9 * objective.loss(plain.x)


def test_refine_needs_a_step_optimizer_and_sane_fraction(objective):
    """refine after a full-batch method, an unknown refinement or a fraction outside (0, 1)
    is a ValueError naming the setting."""
    with pytest.raises(ValueError, match="refine"):
        train(objective, TrainSettings(optimizer="bfgs", refine="lbfgs", budget=Budget(epochs=2)))
    with pytest.raises(ValueError, match="refine must be one of"):
        TrainSettings(refine="newton")
    with pytest.raises(ValueError, match="refine_fraction"):
        TrainSettings(refine="lbfgs", refine_fraction=1.0)


def test_early_stopping_ends_the_stage_at_a_plateau(objective):
    """early_stop=2: a run whose validation EPA does not improve for 2 evaluations in a row
    (a random walk of the parameters: tiny steps plus 1e-2 noise every step) ends with
    status "stopped", the message names early stopping, and the best parameters are
    those of the best evaluation."""
    r = train(objective, TrainSettings(optimizer="sgd", lr=1e-12, budget=Budget(epochs=50), early_stop=2,
                                       eval_every=1, perturb_sigma=1e-2, perturb_every=1))
    assert r.status == "stopped" and "early stopping" in r.message
    assert r.steps < 50
    evals = [row["valid_epa_rmse"] for row in r.history.evals]
    assert r.best_valid.epa_rmse == pytest.approx(min(evals))


def _experiment(tmp_path: Path, model: str, data: str, entry: str = "") -> Path:
    text = f"""name = "ft"
seeds = 1
[budget]
epochs = 1
{model}
{data}
[[optimizers]]
name = "adam"
{entry}
"""
    path = tmp_path / "ft.toml"
    path.write_text(text)
    return path


def _cfg_files(tmp_path: Path):
    from optbench.io.generator import generate_agpd_split
    a, b = generate_agpd_split(6, 4, seed=2)
    write_cfg(a, tmp_path / "a.cfg")
    write_cfg(b, tmp_path / "b.cfg")
    return a, b


def test_several_training_files_tests_and_subsets(tmp_path):
    """train = [two files] is one training set (their configurations in order); tests =
    {label = file} loads held-out sets in the training set's element order; n_train draws
    a subset reproducibly with split_seed."""
    a, b = _cfg_files(tmp_path)
    path = _experiment(tmp_path, "[models.m]\nlevel = 2",
                       '[data.d]\ntrain = ["a.cfg", "b.cfg"]\nvalid = "b.cfg"\ntests = { held = "a.cfg" }\n'
                       'n_train = 7\nsplit_seed = 3')
    spec = load_experiment(path).runs[0]
    train_set, valid = load_data(spec.data)
    assert len(train_set) == 7 and len(valid) == len(b)
    again, _ = load_data(spec.data)
    assert [c.energy for c in again.configs] == [c.energy for c in train_set.configs]
    full = dict(spec.data, n_train=None)
    assert len(load_data(full)[0]) == len(a) + len(b)
    tests = load_tests(spec.data, train_set.species)
    assert list(tests) == ["held"] and len(tests["held"]) == len(a)


@pytest.mark.parametrize("model, message", [
    ('[models.m]\nkind = "mace"', "needs model = PATH"),
    ('[models.m]\nkind = "sevennet"\ntrain_groups = "heads"', "unknown parameter group 'heads'"),
    ('[models.m]\nkind = "sevennet"\nlevel = 8', "level does not apply to a sevennet model"),
    ('[models.m]\nkind = "sevennet"\ndtype = "float16"', "dtype 'float16'"),
    ('[models.m]\nkind = "sevennet"\nmodel = "missing.pth"', "missing.pth"),
    ('[models.m]\nlevel = 8\ntrain_groups = "readout"', "describes a foundation model"),
])
def test_foundation_model_sections_are_checked(tmp_path, model, message):
    """Bad foundation-model settings are ExperimentErrors with the file's line and key."""
    _cfg_files(tmp_path)
    path = _experiment(tmp_path, model, '[data.d]\ntrain = "a.cfg"\nvalid = "b.cfg"')
    with pytest.raises(ExperimentError, match=message) as err:
        load_experiment(path)
    assert str(err.value).startswith(str(path))


def test_foundation_model_dict_and_refine_grid(tmp_path):
    """A SevenNet section becomes the model dict the objective builder reads, and refine =
    ["none", "lbfgs"] makes two variants of one optimizer."""
    _cfg_files(tmp_path)
    path = _experiment(tmp_path, '[models.m]\nkind = "sevennet"\ntrain_groups = ["readout", "interactions"]',
                       '[data.d]\ntrain = "a.cfg"\nvalid = "b.cfg"', 'refine = ["none", "lbfgs"]\nearly_stop = 3')
    exp = load_experiment(path)
    assert exp.models["m"] == {"kind": "sevennet", "model": "7net-0", "dtype": "float64",
                               "train_groups": ["readout", "interactions"], "energy_shift": True}
    assert sorted(r.variant for r in exp.runs) == ["adam refine=lbfgs", "adam refine=none"]
    settings = {r.variant: r.train_settings() for r in exp.runs}
    assert settings["adam refine=lbfgs"].refine == "lbfgs" and settings["adam refine=none"].early_stop == 3
    assert np.all([r.model["kind"] == "sevennet" for r in exp.runs])


@pytest.mark.requires_shared
def test_shipped_finetune_experiments_load(shared_path):
    """experiments/finetune_mo.toml is the study's grid (7 optimizers x with/without L-BFGS
    x 3 seeds = 42 runs on AIMD + elastic, tested on Mo_Test and Mo_Surface) and
    finetune_demo.toml the demo's (3 variants x 2 seeds on 20 cells); both load."""
    root = Path(__file__).resolve().parents[1] / "experiments"
    mo = load_experiment(root / "finetune_mo.toml")
    assert len(mo.runs) == 42 and len({r.variant for r in mo.runs}) == 14
    assert {r.optimizer for r in mo.runs} == {"adam", "adamw", "radam", "sgd", "lamb", "ranger", "schedulefree"}
    data = mo.runs[0].data
    assert [Path(p).name for p in data["train"]] == ["Mo_AIMD.json", "Mo_Elastic.json"]
    assert sorted(data["tests"]) == ["mo_test", "surface"]
    demo = load_experiment(root / "finetune_demo.toml")
    assert len(demo.runs) == 6 and demo.runs[0].data["n_train"] == 20


def test_held_out_test_set_metrics_reach_the_record(tmp_path):
    """A run whose test set is its validation file records test metrics equal to its
    validation metrics (last and best parameters, to 1e-12), and a worker reads the test
    sets once (cached like the training data)."""
    from optbench.experiments.execute import execute_run
    from optbench.experiments.record import load_test_sets

    _cfg_files(tmp_path)
    path = _experiment(tmp_path, "[models.m]\nlevel = 4",
                       '[data.d]\ntrain = "a.cfg"\nvalid = "b.cfg"\ntests = { held = "b.cfg" }')
    spec = load_experiment(path).runs[0]
    record = execute_run(spec.to_dict())
    held = record["tests"]["held"]
    for which, split in (("last", "valid"), ("best", "best_valid")):
        for block in ("energy_per_atom", "forces"):
            assert held[which][block]["rmse"] == pytest.approx(record[split][block]["rmse"], rel=1e-12)
    assert load_test_sets(spec.data, ["Ag", "Pd"]) is load_test_sets(spec.data, ["Ag", "Pd"])
