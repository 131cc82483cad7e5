"""What `optbench train` does with files: a potential file is a starting point (the run
starts from its coefficients, not from the engine's defaults), outputs are checked before
training, written atomically, and written only when the run produced them, so a failed
run never replaces a trained potential."""

from __future__ import annotations

import json
import os

import pytest

from optbench.cli import main
from optbench.io import atomic_output, generate_agpd_split, read_cfg, write_cfg, write_text_atomic
from optbench.metrics import compute_metrics


@pytest.fixture()
def files(tmp_path):
    train, valid = generate_agpd_split(16, 8, seed=4)
    write_cfg(train, tmp_path / "train.cfg")
    write_cfg(valid, tmp_path / "valid.cfg")
    return tmp_path


def _valid_epa(engine, pot_path, cfg_path) -> float:
    pot = engine.load_potential(pot_path)
    data = read_cfg(cfg_path)
    return compute_metrics(data.configs, *engine.predict(pot, engine.dataset(data, pot.cutoff))).epa_rmse


def test_training_from_a_potential_file_starts_from_its_coefficients(engine, files, capsys):
    """A trained file given as POT: the first evaluation of a run with a negligible
    learning rate has the file's own validation error (what `optbench errors` reports), to
    1e-6 relative; from a spec string the run starts at the engine's defaults, several times worse."""
    fit = files / "fit.almtp"
    assert main(["train", "mtp level=6", str(files / "train.cfg"), "--optimizer", "bfgs", "--budget", "epochs=30",
                 "--save-to", str(fit), "--threads", "1"]) == 0
    own = _valid_epa(engine, fit, files / "valid.cfg")
    record = files / "again.json"
    assert main(["train", str(fit), str(files / "train.cfg"), "--valid", str(files / "valid.cfg"),
                 "--optimizer", "sgd", "--lr", "1e-30", "--budget", "epochs=1", "--eval-every", "1",
                 "--save-to", str(files / "again.almtp"), "--json", str(record), "--threads", "1"]) == 0
    first = json.loads(record.read_text())["history"]["evals"][0]["valid_epa_rmse"]
    assert first == pytest.approx(own, rel=1e-6)
    assert main(["train", "mtp level=6", str(files / "train.cfg"), "--valid", str(files / "valid.cfg"),
                 "--optimizer", "sgd", "--lr", "1e-30", "--budget", "epochs=1", "--eval-every", "1",
                 "--save-to", str(files / "spec.almtp"), "--json", str(record), "--threads", "1"]) == 0
    from_spec = json.loads(record.read_text())["history"]["evals"][0]["valid_epa_rmse"]
    assert from_spec > 3 * own
    capsys.readouterr()


def test_a_failed_run_leaves_the_trained_potential_in_place(engine, files, capsys):
    """A `native` run whose mlp fails (here /bin/false) exits 1, says the potential was not
    saved, and the file at --save-to keeps its bytes; the --json record is written, with no
    potential named."""
    target = files / "fit.almtp"
    engine.potential_from_spec("mtp level=6 species=2").save(target)
    before = target.read_bytes()
    record = files / "run.json"
    code = main(["train", str(target), str(files / "train.cfg"), "--optimizer", "native", "--mlp", "/bin/false",
                 "--budget", "epochs=1", "--save-to", str(target), "--json", str(record)])
    err = capsys.readouterr().err
    assert code == 1
    assert "not saved" in err and "unchanged" in err
    assert target.read_bytes() == before
    rec = json.loads(record.read_text())
    assert rec["status"] == "failed" and rec["potential"] is None


def test_outputs_are_checked_before_training(files, capsys):
    """An unwritable --json fails at once: no data read, no training started, nothing written."""
    code = main(["train", "mtp level=6", str(files / "train.cfg"), "--optimizer", "bfgs", "--budget", "epochs=5",
                 "--save-to", str(files / "fit.almtp"), "--json", str(files / "no" / "run.json")])
    err = capsys.readouterr().err
    assert code == 2 and "--json" in err and "does not exist" in err
    assert "training" not in err and not (files / "fit.almtp").exists()


def test_atomic_output_replaces_only_when_complete(tmp_path):
    """atomic_output: an exception inside the block leaves the old file and no temporary;
    a completed block replaces the file in one step, keeping the suffix for writers that
    choose the format by extension."""
    path = tmp_path / "pot.almtp"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".almtp"
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["pot.almtp"]
    path.chmod(0o640)
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["pot.almtp"]
    assert path.stat().st_mode & 0o777 == 0o640  # the replaced file's mode is kept
    fresh = tmp_path / "fresh.txt"
    write_text_atomic(fresh, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would make it, not mkstemp's 0600
