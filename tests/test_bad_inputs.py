"""A corpus of bad inputs to the `optbench` command, as a new user gives them.

Every case must end with exit status 2, print no traceback, print a message that names
the option, file, line or key to fix, and leave every file that was on disk as it was
(no output written, nothing overwritten). The cases run in one workspace of good files
(a training and a validation set, a trained potential, an experiment file) plus one bad
file each for the data and potential cases. Signals (Ctrl-C, SIGTERM, SIGKILL of `optbench
run`) are covered by tests/test_runner_signals.py.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from optbench.cli import main
from optbench.io import generate_agpd_split, write_cfg

EXPERIMENT = """\
name = "bad"
[budget]
epochs = 1  # one epoch of 4 configurations: the runs are never the point here
[models.mtp]
level = 6
[data.agpd]
generate = { n_train = 4, n_valid = 2 }
[[optimizers]]
name = "adam"
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, engine):
    """Good files, a trained potential and one bad file per kind of data/potential fault."""
    ws = tmp_path_factory.mktemp("bad_inputs")
    train, valid = generate_agpd_split(8, 4, seed=1)
    write_cfg(train, ws / "train.cfg")
    write_cfg(valid, ws / "valid.cfg")
    pot = engine.potential_from_spec("mtp level=6 species=2 min_dist=2.0 max_dist=5.0")
    pot.save(ws / "pot.almtp")
    (ws / "trained.almtp").write_text((ws / "pot.almtp").read_text())
    (ws / "exp.toml").write_text(EXPERIMENT)
    (ws / "not_a_dir").write_text("a file where a folder is expected\n")
    (ws / "binary.cfg").write_bytes(bytes(range(256)) * 4)
    text = (ws / "train.cfg").read_text()
    (ws / "truncated.cfg").write_text(text[: text.index("END_CFG")])
    (ws / "empty.cfg").write_text("\n")
    (ws / "data.txt").write_text(text)
    lines = text.splitlines()
    sc = lines.index(" Supercell")
    lines[sc + 2] = lines[sc + 1]  # two equal lattice vectors: zero volume
    (ws / "flat_valid.cfg").write_text("\n".join(lines) + "\n")
    lines = text.splitlines()
    first_atom = next(i for i, ln in enumerate(lines) if ln.strip().startswith("1 "))
    second = lines[first_atom + 1].split()
    first = lines[first_atom].split()
    second[2:5] = first[2:5]  # atom 2 on atom 1
    lines[first_atom + 1] = "    " + " ".join(second)
    (ws / "coincident.cfg").write_text("\n".join(lines) + "\n")
    lines = text.splitlines()
    e = lines.index(" Energy")
    lines[e + 1] = "    nan"
    (ws / "nan_energy.cfg").write_text("\n".join(lines) + "\n")
    rec = {"sim": {"cfg": {"cell": np.eye(3).tolist(), "pos": [[0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]],
                           "types": [0, 0, 0]}, "energy": -1.0, "forces": [[0, 0, 0], [0, 0, 0]]}}
    (ws / "bad_forces.json").write_text(json.dumps([rec]))
    (ws / "invalid.json").write_text('[{"sim": ')
    (ws / "ag.xyz").write_text("1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3 vasp_energy=-2.0 "
                               "pbc=\"T T T\"\nAg 0 0 0\n")
    (ws / "unlabelled.xyz").write_text("1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3 "
                                       "pbc=\"T T T\"\nAg 0 0 0\n")
    (ws / "garbage.almtp").write_text("MTP\nversion = 1.1.0\nspecies_count = two\n")
    (ws / "syntax.toml").write_text(EXPERIMENT.replace('name = "bad"', 'name = "bad'))
    (ws / "dotdot.toml").write_text(EXPERIMENT.replace('name = "bad"', 'name = ".."'))
    (ws / "unknown_key.toml").write_text("colour = 1\n" + EXPERIMENT)
    (ws / "zero_weights.toml").write_text(EXPERIMENT + "[weights]\nenergy = 0\nforces = 0\nstress = 0\n")
    (ws / "baseline.toml").write_text(EXPERIMENT.replace('name = "bad"', 'name = "bad"\nbaseline = "nosuch"'))
    (ws / "etn.toml").write_text(EXPERIMENT.replace("[models.mtp]\nlevel = 6",
                                                    '[models.etn]\nkind = "etn"\nshape = [[1], [0]]\nranks = [[1]]'))
    (ws / "label_key.toml").write_text(EXPERIMENT.replace("generate = { n_train = 4, n_valid = 2 }",
                                                          'train = "train.cfg"\nvalid = "valid.cfg"\nenergy_key = "E"'))
    (ws / "threads.toml").write_text(EXPERIMENT.replace('name = "bad"', 'name = "bad"\nthreads = 100000'))
    (ws / "lr_bfgs.toml").write_text(EXPERIMENT.replace('name = "adam"', 'name = "bfgs"\nlr = 0.1'))
    (ws / "other.toml").write_text(EXPERIMENT.replace('name = "bad"', 'name = "other"'))
    _store_with_one_run(ws / "exp.toml")
    return ws


def _store_with_one_run(experiment: Path) -> None:
    """exp.toml's store with its one run finished (a record as the runner writes it)."""
    from optbench.experiments import Store, load_experiment

    exp = load_experiment(experiment)
    run = exp.runs[0]
    with Store(exp.store_path) as st:
        st.claim(run.key(), run.to_dict(), "test")
        st.finish(run.key(), {"status": "budget", "message": "budget of 1 epochs reached", "steps": 1,
                              "history": {"step": [1], "loss": [1.0], "configs": [4], "seconds": [0.1], "evals": []}})


TRAIN = ["train", "pot.almtp", "train.cfg", "--optimizer", "adam", "--budget", "epochs=1", "--save-to", "out.almtp"]


def _train(*extra: str, replace: dict | None = None) -> list[str]:
    argv = list(TRAIN)
    for old, new in (replace or {}).items():
        argv[argv.index(old)] = new
    return argv + list(extra)


# (id, argv, regex the error message must match: it names the option / file / key)
CASES = [
    # command-line options of `optbench train`
    ("seed negative", _train("--seed", "-1"), r"argument --seed: -1 is out of range"),
    ("threads zero", _train("--threads", "0"), r"argument --threads: 0 is out of range"),
    ("threads huge", _train("--threads", "100000"), r"argument --threads: 100000 is out of range"),
    ("threads text", _train("--threads", "many"), r"argument --threads: 'many' is not a whole number"),
    ("budget twice", _train(replace={"epochs=1": "epochs=2,epochs=3"}), r"--budget: .*epochs is given twice"),
    ("budget evals fraction", _train(replace={"epochs=1": "evals=2.5"}), r"--budget: .*'2.5' is not a whole number"),
    ("budget unknown", _train(replace={"epochs=1": "hours=2"}), r"--budget: budget item 'hours=2'"),
    ("budget empty", _train(replace={"epochs=1": ","}), r"--budget: a budget needs at least one"),
    ("budget negative", _train(replace={"epochs=1": "epochs=-1"}), r"--budget: budget epochs must be a positive"),
    ("valid fraction tiny", _train("--valid-fraction", "0.01"), r"valid_fraction 0.01 of 8 configurations"),
    ("valid fraction one", _train("--valid-fraction", "1"), r"argument --valid-fraction: 1 must be < 1"),
    ("valid and fraction", _train("--valid", "valid.cfg", "--valid-fraction", "0.2"),
     r"argument --valid-fraction: not allowed with argument --valid"),
    ("perturb without every", _train("--perturb", "1e-3"), r"--perturb '1e-3': give SIGMA,EVERY"),
    ("perturb text", _train("--perturb", "a,b"), r"--perturb 'a,b': give SIGMA,EVERY"),
    ("perturb every zero", _train("--perturb", "1e-3,0"), r"--perturb '1e-3,0'"),
    ("all weights zero", _train("--energy-weight", "0", "--force-weight", "0", "--stress-weight", "0"),
     r"--energy-weight/--force-weight/--stress-weight: every loss weight .* is 0"),
    ("weight negative", _train("--force-weight", "-1"), r"argument --force-weight: -1 must be >= 0"),
    ("lr with bfgs", _train("--lr", "0.1", replace={"adam": "bfgs"}), r"--lr does not apply to bfgs"),
    ("batch with lbfgs", _train("--batch-size", "4", replace={"adam": "lbfgs"}), r"--batch-size does not apply to lbfgs"),
    ("schedule with varpro", _train("--schedule", "cosine", replace={"adam": "varpro"}),
     r"--schedule does not apply to varpro"),
    ("hyper not a number", _train("--hyper", "b1=abc"), r"--hyper: adam: b1 must be a number, got 'abc'"),
    ("hyper unknown", _train("--hyper", "b7=1"), r"--hyper: adam: unknown hyperparameter\(s\) b7"),
    ("hyper no value", _train("--hyper", "b1"), r"hyperparameter 'b1': expected name=value"),
    ("hyper flag not bool", _train("--hyper", "nesterov=1", replace={"adam": "muon"}),
     r"--hyper: muon: nesterov must be true or false"),
    ("optimizer unknown", _train(replace={"adam": "adamw2"}), r"--optimizer 'adamw2': unknown"),
    ("lr negative", _train("--lr", "-1"), r"argument --lr: -1 must be > 0"),
    ("lr nan", _train("--lr", "nan"), r"argument --lr: 'nan' is not a finite number"),
    ("clip zero", _train("--clip", "0"), r"argument --clip: 0 must be > 0"),
    ("batch zero", _train("--batch-size", "0"), r"argument --batch-size: 0 is out of range"),
    ("eval every zero", _train("--eval-every", "0"), r"argument --eval-every: 0 is out of range"),
    ("init interval negative", _train("--init-interval", "-1"), r"argument --init-interval: -1 must be > 0"),
    ("schedule unknown", _train("--schedule", "zigzag"), r"--schedule: schedule must be one of"),
    ("schedule bad option", _train("--schedule", "cosine,warmup=x"), r"--schedule: schedule option 'warmup=x'"),
    ("keep unknown", _train("--keep", "middle"), r"argument --keep: invalid choice"),
    # outputs: checked before anything runs
    ("save to missing folder", _train(replace={"out.almtp": "nofolder/out.almtp"}),
     r"--save-to nofolder/out.almtp: folder nofolder does not exist"),
    ("save to under a file", _train(replace={"out.almtp": "not_a_dir/out.almtp"}),
     r"--save-to not_a_dir/out.almtp: folder not_a_dir does not exist"),
    ("save to a folder", _train(replace={"out.almtp": "."}), r"--save-to \.: exists and is not a file"),
    ("json to missing folder", _train("--json", "nofolder/run.json"), r"--json nofolder/run.json: folder nofolder"),
    ("save mtp as json", _train(replace={"out.almtp": "out.json"}), r"out.json: MTP potentials are saved as .mtp or .almtp"),
    # potentials
    ("potential neither file nor spec", _train(replace={"pot.almtp": "pot.almpt"}),
     r"potential 'pot.almpt': no such file, and not a spec"),
    ("potential spec odd level", _train(replace={"pot.almtp": "mtp level=7"}), r"level"),
    ("potential garbage file", _train(replace={"pot.almtp": "garbage.almtp"}), r"garbage.almtp: missing"),
    ("engine capi without lib", _train("--engine", "capi"), r"--engine capi needs --lib PATH"),
    ("lib with embedded", _train("--engine", "embedded", "--lib", "x.so"), r"--lib loads another library"),
    ("mlp-cli with adam", _train("--engine", "mlp-cli"), r"--engine mlp-cli trains only with --optimizer native"),
    ("mlp with adam", _train("--mlp", "/bin/true"), r"--mlp applies to --optimizer native"),
    # data files
    ("data missing", _train(replace={"train.cfg": "nosuch.cfg"}), r"nosuch.cfg: cannot read"),
    ("data binary", _train(replace={"train.cfg": "binary.cfg"}), r"binary.cfg: not a text file"),
    ("data truncated", _train(replace={"train.cfg": "truncated.cfg"}), r"truncated.cfg:\d+: truncated file"),
    ("data empty", _train(replace={"train.cfg": "empty.cfg"}), r"'empty.cfg' is empty"),
    ("data unknown extension", _train(replace={"train.cfg": "data.txt"}), r"data.txt: unknown data format"),
    ("data wrong format", _train("--format", "pymatgen"), r"train.cfg:1: invalid JSON"),
    ("json forces shape", _train(replace={"train.cfg": "bad_forces.json"}),
     r"bad_forces.json\[0\]: forces has 2 rows for 3 atoms"),
    ("json invalid", _train(replace={"train.cfg": "invalid.json"}), r"invalid.json:1: invalid JSON"),
    ("valid zero volume", _train("--valid", "flat_valid.cfg"), r"flat_valid.cfg:1: degenerate cell"),
    ("data coincident atoms", _train(replace={"train.cfg": "coincident.cfg"}),
     r"coincident.cfg:1: atoms 1 and 2 are at the same position"),
    ("data nan energy", _train(replace={"train.cfg": "nan_energy.cfg"}), r"nan_energy.cfg:\d+: Energy contains NaN"),
    ("label key on cfg", _train("--energy-key", "E"), r"train.cfg: energy_key .* do not apply to this format"),
    ("label key missing", ["errors", "pot.almtp", "ag.xyz", "--energy-key", "nope"],
     r"ag.xyz: no frame has the energy key 'nope'; keys found: vasp_energy"),
    # the other potential commands
    ("errors unlabelled data", ["errors", "pot.almtp", "unlabelled.xyz", "--species", "Ag,Pd"],
     r"unlabelled.xyz: no configuration has an energy, force or stress label"),
    ("errors missing potential", ["errors", "nosuch.almtp", "valid.cfg"], r"nosuch.almtp"),
    ("efs output folder missing", ["efs", "pot.almtp", "valid.cfg", "-o", "nofolder/out.cfg"], r"nofolder/out.cfg"),
    ("template odd level", ["template", "7", "--species", "2", "-o", "t.almtp"], r"level"),
    ("template wrong suffix", ["template", "6", "--species", "2", "-o", "t.json"], r"t.json: MTP potentials"),
    ("template not a spec", ["template", "big", "--species", "2", "-o", "t.almtp"], r"model 'big': give an MTP level"),
    ("info garbage", ["info", "garbage.almtp"], r"garbage.almtp: missing"),
    # experiment files and stores
    ("validate missing file", ["validate", "nosuch.toml"], r"nosuch.toml: cannot read the experiment file"),
    ("validate syntax", ["validate", "syntax.toml"], r"syntax.toml:1: TOML syntax"),
    ("validate name dotdot", ["validate", "dotdot.toml"], r"dotdot.toml:1: name: '\.\.': use letters"),
    ("validate unknown key", ["validate", "unknown_key.toml"], r"unknown_key.toml:1: colour: unknown key at the top level"),
    ("validate zero weights", ["validate", "zero_weights.toml"], r"zero_weights.toml:\d+: weights: every loss weight"),
    ("validate baseline", ["validate", "baseline.toml"], r"baseline.toml:2: baseline: no variant or optimizer 'nosuch'"),
    ("validate etn", ["validate", "etn.toml"], r"etn.toml:\d+: models.etn.shape: not a valid ETN: ETN: core 2 couples"),
    ("validate lr with bfgs", ["validate", "lr_bfgs.toml"], r"lr_bfgs.toml:\d+: optimizers\[0\].lr: bfgs takes no steps"),
    ("validate label key on cfg", ["validate", "label_key.toml"],
     r"label_key.toml:\d+: data.agpd.energy_key: energy_key names a label of extended XYZ files"),
    ("validate threads huge", ["validate", "threads.toml"], r"threads.toml:2: threads: must be at most 1024"),
    ("validate set malformed", ["validate", "exp.toml", "--set", "datasets"], r"--set 'datasets': expected NAME=VALUE"),
    ("run workers zero", ["run", "exp.toml", "--workers", "0"], r"argument --workers: 0 is out of range"),
    ("report baseline unknown", ["report", "exp.toml", "--baseline", "nosuch"],
     r"--baseline 'nosuch': no variant or optimizer of that name"),
    ("report before any run", ["report", "other.toml"], r"other.toml: no results yet"),
    ("export before any run", ["export", "other.toml", "-o", "runs.csv"], r"other.toml: no results yet"),
    ("export to missing folder", ["export", "exp.toml", "-o", "nofolder/runs.csv"], r"-o nofolder/runs.csv: folder"),
    ("report missing store", ["report", "nosuch.sqlite"], r"nosuch.sqlite: no such store"),
    ("export wrong suffix", ["export", "exp.toml", "-o", "runs.txt"], r"runs.txt: export writes .csv or .parquet"),
    ("command unknown", ["fit", "pot.almtp"], r"invalid choice: 'fit'"),
]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_corpus_is_large_and_distinct():
    """At least 60 cases, each with its own name."""
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("argv, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error_that_changes_nothing(workspace, monkeypatch, capsys, argv, pattern):
    """Exit status 2, no traceback, a message naming what to fix, every file unchanged and
    no file added."""
    monkeypatch.chdir(workspace)
    before = _snapshot(workspace)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's errors
        code = stop.code
    out = capsys.readouterr()
    text = out.err + out.out
    assert code == 2, text
    assert "Traceback" not in text
    import re

    assert re.search(pattern, text), text
    assert _snapshot(workspace) == before


def test_experiment_corpus_files_are_otherwise_valid(workspace, monkeypatch, capsys):
    """The experiment the bad cases derive from is itself valid: each case fails for its
    one fault only."""
    monkeypatch.chdir(workspace)
    assert main(["validate", "exp.toml"]) == 0
    assert "total: 1 run" in capsys.readouterr().out
    assert textwrap.dedent(EXPERIMENT) == EXPERIMENT
