"""The `optbench` command line (efs, errors, template, info) in MLIP's formats.

Contracts checked: `template` writes a potential the engine reads back with the level's
basis size; `efs` writes a .cfg whose energies/forces/stress equal the engine's
predictions; `errors --json` gives the metrics of `compute_metrics`, and the text report
has MLIP's headings; bad input exits with status 2 and a message naming the file.
"""

from __future__ import annotations

import json

import numpy as np
from conftest import random_potential

from optbench.cli import main
from optbench.io import read_cfg, write_cfg


def test_template_efs_errors(engine, agpd_small, tmp_path, capsys):
    pot_path = tmp_path / "t.almtp"
    assert main(["template", "8", "--species", "2", "-o", str(pot_path)]) == 0
    pot = engine.load_potential(pot_path)
    info = pot.info()
    assert info["alpha_scalar_moments"] == 9 and info["species_count"] == 2 and info["level"] is None

    trained = tmp_path / "r.mtp"
    random_potential(engine, level=8, seed=3, scale=0.1).save(trained)
    data_path = tmp_path / "d.cfg"
    write_cfg(agpd_small, data_path)
    out = tmp_path / "efs.cfg"
    assert main(["efs", str(trained), str(data_path), "-o", str(out), "--threads", "1"]) == 0
    got = read_cfg(out)
    e, f, s = engine.predict(engine.load_potential(trained), engine.dataset(agpd_small, 5.0))
    np.testing.assert_allclose([c.energy for c in got.configs], e, rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.concatenate([c.forces for c in got.configs]), f, rtol=0, atol=1e-10)
    np.testing.assert_allclose([c.stress for c in got.configs], s, rtol=0, atol=1e-10)

    capsys.readouterr()
    assert main(["errors", str(trained), str(data_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["n_configs"] == len(agpd_small)
    assert d["energy"]["rmse"] > 0 and d["units"]["forces"].startswith("eV/A")
    assert main(["errors", str(trained), str(data_path)]) == 0
    text = capsys.readouterr().out
    for heading in ("Energy:", "Energy per atom:", "Forces:", "Stresses (in energy units):"):
        assert heading in text


def test_bad_input_exits_2_with_message(tmp_path, capsys):
    bad = tmp_path / "bad.cfg"
    bad.write_text("BEGIN_CFG\n Size\n 1\n")
    pot = tmp_path / "p.mtp"
    assert main(["template", "6", "--species", "1", "-o", str(pot)]) == 0
    assert main(["errors", str(pot), str(bad)]) == 2
    assert "bad.cfg" in capsys.readouterr().err
    assert main(["errors", str(tmp_path / "missing.mtp"), str(bad)]) == 2
    assert "missing.mtp" in capsys.readouterr().err
