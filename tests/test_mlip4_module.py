"""The MLIP-4 Python-module route (optbench/mlip/mlip4_module.py, optbench/objective/mlip4.py) against a stand-in `mlip_4`
(tests/mlip4_standin/mlip_4.py) that exposes the documented surface on top of the
embedded engine, so the adapter's own logic runs for real.

Contracts: the adapter's mean loss and gradient equal the embedded Objective's, full
batch and for any mini-batch (batches summed from per-configuration loss objects);
a training run through the adapter has the embedded run's history step for step;
evaluation maps MLIP-4's error report onto the same metrics; save writes MLIP-4 JSON
that loads back to the same parameters; a missing module, a potential of another kind
and a failing binding call give clear errors, the last as a "failed" run, not an
exception; engine selection by model dict and experiment file reaches this route.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from optbench.mlip.mlip4_module import import_mlip4, load_mlip4_potential
from optbench.objective import Mlip4ModuleObjective
from optbench.optim.budget import Budget
from optbench.objective import build_objective
from optbench.objective import EngineObjective, LossWeights
from optbench.train import TrainSettings, train

STANDIN = Path(__file__).parent / "mlip4_standin"


@pytest.fixture(scope="module")
def mlip_4():
    sys.path.insert(0, str(STANDIN))
    try:
        yield import_mlip4("mlip_4")
    finally:
        sys.path.remove(str(STANDIN))
        sys.modules.pop("mlip_4", None)


@pytest.fixture(scope="module")
def data():
    from optbench.io.generator import generate_agpd_split
    return generate_agpd_split(10, 5, seed=4)


@pytest.fixture
def pot_json(engine, tmp_path):
    """A level-6 MTP as the stand-in's MLIP-4 JSON, parameters randomised (seed 7)."""
    pot = engine.potential_from_spec("mtp level=6 species=2 min_dist=2.0 max_dist=5.0")
    x = pot.default_params() + np.random.default_rng(7).uniform(-0.05, 0.05, pot.n_params)
    pot.set_params(x)
    pot.save(tmp_path / "p.almtp")
    path = tmp_path / "start.json"
    path.write_text(json.dumps({"kind": "mtp", "almtp": (tmp_path / "p.almtp").read_text()}))
    return path


def _pair(engine, mlip_4, pot_json, data, weights):
    adapter = Mlip4ModuleObjective(mlip_4, load_mlip4_potential(mlip_4, "mtp", pot_json), *data, weights)
    reference = EngineObjective(engine, engine.load_potential(pot_json.with_name("p.almtp")), *data, weights)
    return adapter, reference


def test_loss_and_gradient_equal_the_embedded_objective(engine, mlip_4, pot_json, data):
    """Full batch and mini-batches [3, 0, 7] and [5]: mean loss and gradient equal the
    embedded Objective's to 1e-12 relative, with energy, force and stress terms."""
    adapter, reference = _pair(engine, mlip_4, pot_json, data, LossWeights(stress=0.001))
    x = adapter.initial_params(seed=3, interval=0.01)  # around the loaded parameters
    for batch in (None, np.array([3, 0, 7]), np.array([5])):
        la, ga = adapter.loss_grad(x, batch)
        lr, gr = reference.loss_grad(x, batch)
        assert la == pytest.approx(lr, rel=1e-12)
        np.testing.assert_allclose(ga, gr, rtol=1e-12, atol=1e-14 * np.abs(gr).max())
    assert adapter.valid_loss(x) == pytest.approx(reference.valid_loss(x), rel=1e-12)
    assert adapter.configs_evaluated == 10 + 3 + 1


def test_training_through_the_module_matches_the_embedded_run(engine, mlip_4, pot_json, data):
    """Adam with mini-batches of 4 for 3 epochs, same seed: the same loss history and
    the same final validation EPA RMSE (to 1e-10) through either route."""
    adapter, reference = _pair(engine, mlip_4, pot_json, data, LossWeights(stress=0.0))
    reference.initial_params = adapter.initial_params  # both start from the loaded parameters
    settings = TrainSettings(optimizer="adam", lr=0.01, batch_size=4, budget=Budget(epochs=3), seed=2)
    a, r = train(adapter, settings), train(reference, settings)
    assert a.status == r.status == "budget"
    np.testing.assert_allclose(a.history.loss, r.history.loss, rtol=1e-10)
    assert a.valid.epa_rmse == pytest.approx(r.valid.epa_rmse, rel=1e-10)
    assert a.valid.force_rmse == pytest.approx(r.valid.force_rmse, rel=1e-10)


def test_save_round_trip_and_kind_check(mlip_4, pot_json, data, tmp_path):
    """save() writes MLIP-4 JSON whose params equal x; loading it as ETN is a ValueError
    naming the file."""
    adapter = Mlip4ModuleObjective(mlip_4, load_mlip4_potential(mlip_4, "mtp", pot_json), *data)
    x = adapter.initial_params(1, 0.02)
    adapter.save(x, tmp_path / "out.json")
    back = load_mlip4_potential(mlip_4, "mtp", tmp_path / "out.json")
    np.testing.assert_allclose(np.asarray(back.params), x, rtol=1e-12)
    with pytest.raises(ValueError, match="out.json: mlip_4.ETN.from_json_bytes failed"):
        load_mlip4_potential(mlip_4, "etn", tmp_path / "out.json")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        adapter.loss_grad(np.zeros(3))


def test_missing_module_names_the_setting():
    """No such module: ImportError naming it and the settings to change."""
    with pytest.raises(ImportError, match="'no_such_mlip'.*module = .*engine = \"embedded\""):
        import_mlip4("no_such_mlip")


def test_a_failing_binding_call_ends_the_run_as_failed(mlip_4, pot_json, data, monkeypatch):
    """LossFunction.calc raising mid-run gives a RunResult with status "failed" and the
    binding's message, not an exception out of train()."""
    adapter = Mlip4ModuleObjective(mlip_4, load_mlip4_potential(mlip_4, "mtp", pot_json), *data)
    calls = {"n": 0}
    original = mlip_4.LossFunction.calc

    def flaky(self):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("MLIP-4: neighbour list overflow")
        return original(self)

    monkeypatch.setattr(mlip_4.LossFunction, "calc", flaky)
    r = train(adapter, TrainSettings(optimizer="bfgs", budget=Budget(epochs=50)))
    assert r.status == "failed" and "neighbour list overflow" in r.message


def test_engine_selection_reaches_the_module_route(mlip_4, pot_json, data, tmp_path):
    """build_objective with engine "mlip4" gives the adapter; without a template it is a
    ValueError naming the setting; an experiment file accepts engine/module/template."""
    obj = build_objective({"kind": "mtp", "template": str(pot_json), "engine": "mlip4", "module": "mlip_4"},
                          *data, LossWeights())
    assert isinstance(obj, Mlip4ModuleObjective)
    with pytest.raises(ValueError, match="set template = PATH"):
        build_objective({"kind": "mtp", "level": 6, "engine": "mlip4"}, *data, LossWeights())
    from optbench.experiments.experiment import load_experiment

    exp = tmp_path / "e.toml"
    exp.write_text(f'name = "e"\n[budget]\nepochs = 1\n[models.m]\ntemplate = "{pot_json}"\nengine = "mlip4"\n'
                   f'module = "mlip_4"\n[data.d]\ngenerate = {{ n_train = 4, n_valid = 2 }}\n'
                   f'[[optimizers]]\nname = "bfgs"\n')
    spec = load_experiment(exp).runs[0]
    assert spec.model["engine"] == "mlip4" and spec.model["module"] == "mlip_4"


def test_cli_train_through_the_module(mlip_4, pot_json, data, tmp_path, capsys):
    """`optbench train POT.json DATA --engine mlip4` trains through the module and saves
    MLIP-4 JSON; --engine capi without --lib is refused naming --lib (exit 2)."""
    from optbench.cli import main
    from optbench.io import write_cfg

    write_cfg(data[0], tmp_path / "train.cfg")
    write_cfg(data[1], tmp_path / "valid.cfg")
    args = [str(pot_json), str(tmp_path / "train.cfg"), "--valid", str(tmp_path / "valid.cfg"),
            "--budget", "epochs=2", "--stress-weight", "0", "--save-to", str(tmp_path / "fit.json")]
    assert main(["train", *args, "--engine", "mlip4", "--optimizer", "adam", "--lr", "0.01"]) == 0
    assert "Errors on the validation set" in capsys.readouterr().out
    assert json.loads((tmp_path / "fit.json").read_text())["kind"] == "mtp"
    assert main(["train", *args, "--engine", "capi", "--optimizer", "bfgs"]) == 2
    assert "--engine capi needs --lib PATH" in capsys.readouterr().err
