"""Reference results beside optbench's: an experiment file's [[references]] sections
(optbench/experiments/references.py), the study's own per-seed results read through
experiments/study_agpd_mtp.toml, a FILE:LINE error for every kind of bad section, and
the report's "Against the reference results" table (optbench/report/references.py) on a
synthetic store, with its ratios worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, shared_dir
from test_experiment import HEAD as EXPERIMENT_HEAD

from optbench.cli import main
from optbench.experiments import (
    REFERENCE_COLUMNS,
    Store,
    describe_plan,
    load_experiment,
)
from optbench.experiments.experiment import ExperimentError
from optbench.metrics import ErrorStats, Metrics
from optbench.report import write_report
from optbench.report.references import run_threads

STUDY_FILE = REPO_ROOT / "experiments" / "study_agpd_mtp.toml"
STUDY = shared_dir() / "reference" / "study"
requires_study = pytest.mark.skipif(
    not (STUDY.is_dir() and (shared_dir() / "datasets" / "pdag_study").is_dir()),
    reason="../shared/reference/study (the study's published CSVs) and ../shared/datasets/pdag_study are not beside "
           "the repository; these checks run in CI")

# The study README's table (MTP-16 rows), as printed: variant -> (val EPA meV/atom,
# val force meV/A, wall s).
STUDY_TABLE = {
    "native": ("2.10", "47.5", "2810"),
    "bfgs": ("2.33", "55.4", "2895"),
    "adam": ("29.3", "338.6", "1914"),
    "momentum": ("50.9", "1148.9", "1924"),
    "sgd": ("93.7", "1424.9", "1958"),
    "muon": ("80.2", "503.8", "2053"),
    "muon_factor": ("113.4", "598.7", "1913"),
}


def _as_printed(value: float, printed: str) -> str:
    """`value` with as many decimals as `printed` has."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return f"{value:.{decimals}f}"


# ------------------------------------------------------------------- the study's files


@requires_study
def test_study_references_have_the_readme_means():
    """experiments/study_agpd_mtp.toml reads the study's CSVs (two spellings of the EPA
    column) into 5 seeds per variant whose means are the README's table, to its printed
    precision, with 8 cores each; every reference variant is a variant of the file."""
    exp = load_experiment(STUDY_FILE)
    refs = exp.references
    assert tuple(refs.columns) == REFERENCE_COLUMNS
    assert set(refs["model"]) == {"mtp16"} and set(refs["data"]) == {"pdag"} and set(refs["label"]) == {"study"}
    assert set(refs["cores"]) == {8}
    assert set(refs["variant"]) == set(STUDY_TABLE) and set(STUDY_TABLE) <= set(exp.variants())
    for variant, (epa, force, seconds) in STUDY_TABLE.items():
        rows = refs[refs["variant"] == variant]
        assert sorted(rows["seed"]) == [1, 2, 3, 4, 5], variant
        assert _as_printed(1e3 * rows["valid_epa_rmse"].mean(), epa) == epa, variant
        assert _as_printed(1e3 * rows["valid_force_rmse"].mean(), force) == force, variant
        assert _as_printed(rows["train_seconds"].mean(), seconds) == seconds, variant


@requires_study
def test_study_experiment_validates(capsys):
    """`optbench validate experiments/study_agpd_mtp.toml`: the study's settings (MTP-16,
    radial basis 8 on 1.9 .. 5.0 A, MLIP's loss weights, 5 seeds, 10 variants with the
    study's budgets in epochs plus a seconds cap) and a line for the references."""
    assert main(["validate", str(STUDY_FILE)]) == 0
    out = capsys.readouterr().out
    assert "50 runs" in out and "reference study for mtp16 on pdag: 7 file(s)" in out
    exp = load_experiment(STUDY_FILE)
    assert describe_plan(exp)
    run = exp.runs[0]
    assert run.model == {"kind": "mtp", "level": 16, "min_dist": 1.9, "max_dist": 5.0, "radial_basis_size": 8,
                         "engine": "embedded"}
    assert run.weights == {"energy": 1.0, "forces": 0.01, "stress": 0.001, "weight_scaling": 1,
                           "weight_scaling_forces": 0}
    assert exp.variants() == ["native", "bfgs", "adam", "momentum", "sgd", "muon", "muon_factor", "adam_lbfgs",
                              "varpro", "lm"]
    budgets = {r.variant: r.settings["budget"] for r in exp.runs}
    assert budgets["adam"] == "epochs=1600,seconds=600" and budgets["native"].startswith("epochs=5000")
    bfgs = next(r for r in exp.runs if r.variant == "bfgs")
    assert bfgs.settings["hyper"] == {"maxiter": 5000, "gtol": 1e-6} and bfgs.settings["init_interval"] == 0.1
    assert sorted({r.seed for r in exp.runs}) == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------- bad sections

# test_experiment's valid experiment (one model "m", one generated data set "d") with two
# variants, adam and bfgs, and a good [[references]] section for them.
HEAD = EXPERIMENT_HEAD + '\n[[optimizers]]\nname = "adam"\n\n[[optimizers]]\nname = "bfgs"\n'
GOOD = """
[[references]]
label = "ref"
files = ["res_adam.csv", "res_bfgs.csv"]
model = "m"
data = "d"
variant = { adam = "adam", bfgs = "bfgs" }
columns = { seed = "pot", valid_epa_rmse = ["epa", "epa_rmse"], valid_force_rmse = "f", train_seconds = "t" }
units = { valid_epa_rmse = "meV/atom" }
cores = 8
"""


def _csvs(folder: Path) -> None:
    """res_adam.csv (seeds 1, 2; column epa) and res_bfgs.csv (seeds 1, 2, 3; column
    epa_rmse), EPA in meV/atom, forces in eV/A, seconds."""
    (folder / "res_adam.csv").write_text("pot,epa,f,t,note\n1,10.0,0.2,100,x\n2,20.0,0.4,300,y\n")
    (folder / "res_bfgs.csv").write_text("pot,epa_rmse,f,t\n1,1.0,0.05,50\n2,2.0,0.05,70\n3,3.0,0.05,90\n")


def _write(tmp_path: Path, text: str) -> Path:
    _csvs(tmp_path)
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


def test_good_section_reads_units_alternatives_and_variants(tmp_path):
    """A section with a column given as alternatives, meV/atom converted to eV/atom, one
    variant per file; model and data may be left out when the experiment has one each."""
    refs = load_experiment(_write(tmp_path, HEAD + GOOD.replace('model = "m"\ndata = "d"\n', ""))).references
    assert tuple(refs.columns) == REFERENCE_COLUMNS and len(refs) == 5
    adam = refs[refs["variant"] == "adam"]
    assert list(adam["seed"]) == [1, 2] and np.allclose(adam["valid_epa_rmse"], [0.010, 0.020])
    assert np.allclose(adam["valid_force_rmse"], [0.2, 0.4]) and list(adam["train_seconds"]) == [100, 300]
    bfgs = refs[refs["variant"] == "bfgs"]
    assert np.allclose(bfgs["valid_epa_rmse"], [0.001, 0.002, 0.003])
    assert set(refs["model"]) == {"m"} and set(refs["data"]) == {"d"} and set(refs["cores"]) == {8}
    assert set(refs["label"]) == {"ref"} and all(Path(f).is_absolute() for f in refs["file"])


def test_glob_and_a_variant_for_every_file(tmp_path):
    """A glob expands in sorted order; a variant given as a string applies to every file;
    no [[references]] at all: None."""
    text = HEAD + GOOD.replace('["res_adam.csv", "res_bfgs.csv"]', '"res_a*.csv"').replace(
        '{ adam = "adam", bfgs = "bfgs" }', '"adam"')
    refs = load_experiment(_write(tmp_path, text)).references
    assert set(refs["variant"]) == {"adam"} and len(refs) == 2
    assert load_experiment(_write(tmp_path, HEAD)).references is None


# One bad line each: it replaces GOOD's line of the same key (a key GOOD lacks is added
# after the header) => the key path the error names (its line: that key's) => its text.
BAD_LINES = """\
files = ["res_adam.csv", "res_bfgs.csv", "nowhere.csv"] => references[0].files[2] => reference file not found:
files = "zz_*.csv" => references[0].files => no reference file matches
files = [] => references[0].files => expected a path or a non-empty list of paths
columns = { seed = "pot", valid_epa_rmse = "epa", train_seconds = "time" } => references[0].columns.train_seconds => has no column 'time'
columns = { valid_epa_rmse = ["e1", "e2"] } => references[0].columns.valid_epa_rmse => has none of the columns 'e1', 'e2'
columns = { energy = "e" } => references[0].columns.energy => unknown key in [references[0].columns]
columns = { seed = "pot" } => references[0].columns => name the column of at least one of valid_epa_rmse
columns = { seed = "f", valid_epa_rmse = "epa" } => references[0].columns.seed => holds a seed that is not a whole number
columns = { valid_epa_rmse = "epa", train_seconds = "note" } => references[0].columns.train_seconds => column 'note' has a value that is not a number ('x')
model = "mtp99" => references[0].model => no model 'mtp99' in the experiment; defined: m
data = "pdag" => references[0].data => no data 'pdag' in the experiment; defined: d
variant = { adam = "adam", bfgs = "lbfgs" } => references[0].variant.bfgs => no variant 'lbfgs' on model 'm' / data 'd'; variants there: adam; bfgs
variant = { adam = "adam" } => references[0].files[1] => res_bfgs.csv: its name ends with none of the variant keys (adam)
variant = { adam = "adam", bfgs = "bfgs", lbfgs = "bfgs" } => references[0].variant.lbfgs => no reference file's name (without extension) ends with 'lbfgs'
variant = "sgd" => references[0].variant => no variant 'sgd' on model 'm'
units = { valid_epa_rmse = "kcal/mol" } => references[0].units.valid_epa_rmse => unknown unit 'kcal/mol' for valid_epa_rmse; known: eV/atom, meV/atom
cores = 0 => references[0].cores => must be an integer >= 1
label = "a b" => references[0].label => use letters, digits
ranks = 8 => references[0].ranks => unknown key in [references[0]]; known: label, files, model, data
"""


def _with_line(line: str) -> str:
    """HEAD + GOOD with `line` in place of GOOD's line of the same key (or added)."""
    key = line.split("=")[0].strip()
    lines = GOOD.splitlines()
    at = next((i for i, t in enumerate(lines) if t.startswith(f"{key} =")), None)
    if at is None:
        lines.insert(lines.index("[[references]]") + 1, line)
    else:
        lines[at] = line
    return HEAD + "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", BAD_LINES.splitlines(), ids=[c.split(" =")[0] + str(i) for i, c in
                                                             enumerate(BAD_LINES.splitlines())])
def test_bad_section_names_file_line_and_key(tmp_path, case):
    """Every bad [[references]] line is an ExperimentError "FILE:LINE: KEY.PATH: ..." at
    the line of the key it names, with the file or column at fault when there is one."""
    line, key_path, expected = case.split(" => ")
    text = _with_line(line)
    path = _write(tmp_path, text)
    key = key_path.split(".")[1].split("[")[0]
    lineno = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith(f"{key} ="))
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{lineno}: {key_path}: "), message
    assert expected in message, message


def test_bad_sections_beyond_one_line(tmp_path):
    """No cores (at the header's line), a seed given twice for one variant (at the second
    section's files), [references] as a plain table, a model left out when the
    experiment has two."""
    no_cores = HEAD + GOOD.replace("cores = 8\n", "")
    header = no_cores.splitlines().index("[[references]]") + 1
    with pytest.raises(ExperimentError, match=rf":{header}: references\[0\]: give cores = the ranks x threads"):
        load_experiment(_write(tmp_path, no_cores))
    twice = HEAD + GOOD + '[[references]]\nlabel = "ref"\nfiles = "res_adam.csv"\nvariant = "adam"\ncores = 1\n' \
                          'columns = { seed = "pot", valid_epa_rmse = "epa" }\n'
    files_at = [i for i, t in enumerate(twice.splitlines(), 1) if t.startswith("files =")][1]
    with pytest.raises(ExperimentError, match=rf":{files_at}: references\[1\]\.files: seed 1 of variant 'adam' \(ref\) "
                                              "occurs more than once"):
        load_experiment(_write(tmp_path, twice))
    table = HEAD + '\n[references]\nlabel = "x"\n'
    with pytest.raises(ExperimentError, match=r"references: expected \[\[references\]\] entries"):
        load_experiment(_write(tmp_path, table))
    two_models = HEAD.replace("[data.d]", "[models.m2]\nlevel = 6\n\n[data.d]") + GOOD.replace('model = "m"\n', "")
    with pytest.raises(ExperimentError, match=r"references\[0\]: give model = one of the experiment's model labels: "
                                              "m, m2"):
        load_experiment(_write(tmp_path, two_models))


def test_missing_file_and_column_are_named(tmp_path):
    """A missing file's error gives its absolute path; a missing column's names the file
    and lists its columns."""
    path = _write(tmp_path, _with_line('files = ["res_adam.csv", "res_bfgs.csv", "nowhere.csv"]'))
    with pytest.raises(ExperimentError, match=str(tmp_path / "nowhere.csv")):
        load_experiment(path)
    path = _write(tmp_path, _with_line('columns = { seed = "pot", valid_epa_rmse = "epa", train_seconds = "time" }'))
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert f"{tmp_path / 'res_adam.csv'} has no column 'time'; its columns: pot, epa, f, t, note" in str(info.value)


# ------------------------------------------------------------------- the report

def _metrics(epa_mev: float, force_mev: float) -> dict:
    return Metrics(n_configs=10, n_atoms=100, energy=ErrorStats(10, rmse=epa_mev * 1e-2),
                   energy_per_atom=ErrorStats(10, rmse=epa_mev * 1e-3), forces=ErrorStats(300, rmse=force_mev * 1e-3),
                   force_component_rmse=force_mev * 1e-3 / np.sqrt(3)).to_dict()


def _finish(store: Store, key: str, spec: dict, epa_mev: float, force_mev: float, seconds: float) -> None:
    assert store.claim(key, spec, "test")
    m = _metrics(epa_mev, force_mev)
    store.finish(key, {"status": "budget", "message": "epochs", "train_seconds": seconds, "wall_seconds": seconds,
                       "steps": 4, "configs_evaluated": 40, "train": m, "valid": m, "best_train": m, "best_valid": m,
                       "history": {"step": [1, 2], "loss": [2.0, 1.0], "configs": [10, 20],
                                   "seconds": [seconds / 2, seconds], "evals": []}})


# optbench's side: (variant, optimizer, threads) -> per seed (EPA meV/atom, force meV/A, train s)
OURS = {("adam", "adam", 2): [(10.0, 100.0, 50.0), (14.0, 140.0, 70.0)],
        ("bfgs", "bfgs", 4): [(1.0, 20.0, 30.0), (3.0, 40.0, 50.0), (2.0, 30.0, 40.0)]}


@pytest.fixture()
def store_path(tmp_path) -> Path:
    path = tmp_path / "runs" / "store.sqlite"
    with Store(path) as st:
        for (variant, optimizer, threads), seeds in OURS.items():
            for seed, (epa, force, secs) in enumerate(seeds):
                spec = {"experiment": "t", "model_name": "m", "data_name": "d", "optimizer": optimizer,
                        "variant": variant, "threads": threads, "settings": {"seed": seed, "budget": "epochs=4"}}
                _finish(st, f"{variant}-{seed}", spec, epa, force, secs)
    return path


def _reference_frame() -> pd.DataFrame:
    """The reference: adam seeds 1-2 EPA 20, 30 meV/atom, force 0.2, 0.4 eV/A, 100, 300 s
    on 8 cores; bfgs seeds 1-4 EPA 2 meV/atom, force 0.05 eV/A, 60 s; a variant we did
    not run (sgd) and a model we did not train."""
    rows = [("m", "d", "adam", 1, 0.020, 0.2, 100.0), ("m", "d", "adam", 2, 0.030, 0.4, 300.0)]
    rows += [("m", "d", "bfgs", s, 0.002, 0.05, 60.0) for s in range(1, 5)]
    rows += [("m", "d", "sgd", 1, 0.1, 1.0, 10.0), ("other", "d", "adam", 1, 0.1, 1.0, 10.0)]
    return pd.DataFrame([{"model": m, "data": d, "variant": v, "label": "study", "seed": s, "valid_epa_rmse": e,
                          "valid_force_rmse": f, "train_seconds": t, "cores": 8} for m, d, v, s, e, f, t in rows])


def test_report_table_ratios_by_hand(store_path, tmp_path):
    """Per variant: both sides' means (meV/atom, meV/A, s, core-seconds = s x cores /
    threads) and optbench / reference, worked out by hand; the seed line; a reference
    variant without runs gets an empty optbench side; a reference group without runs is
    listed among the problems."""
    out = write_report(store_path, tmp_path / "report", references=_reference_frame())
    tab = out["tables"]["references"].set_index("variant")
    assert list(tab.index) == ["bfgs", "adam", "sgd"]  # baseline (bfgs) first, then the reference-only one
    adam, bfgs = tab.loc["adam"], tab.loc["bfgs"]
    assert adam["ref_n"] == 2 and adam["n"] == 2
    assert adam["ref_epa_mev"] == pytest.approx(25.0) and adam["epa_mev"] == pytest.approx(12.0)
    assert adam["epa_ratio"] == pytest.approx(12.0 / 25.0)
    assert adam["ref_force_mev"] == pytest.approx(300.0) and adam["force_ratio"] == pytest.approx(120.0 / 300.0)
    assert adam["ref_seconds"] == pytest.approx(200.0) and adam["seconds_ratio"] == pytest.approx(60.0 / 200.0)
    assert adam["ref_core_seconds"] == pytest.approx(1600.0) and adam["core_seconds"] == pytest.approx(120.0)
    assert adam["core_seconds_ratio"] == pytest.approx(120.0 / 1600.0)
    assert bfgs["ref_n"] == 4 and bfgs["n"] == 3
    assert bfgs["epa_ratio"] == pytest.approx(2.0 / 2.0) and bfgs["force_ratio"] == pytest.approx(30.0 / 50.0)
    assert bfgs["core_seconds"] == pytest.approx(160.0) and bfgs["core_seconds_ratio"] == pytest.approx(160.0 / 480.0)
    sgd = tab.loc["sgd"]
    assert sgd["n"] == 0 and np.isnan(sgd["epa_mev"]) and np.isnan(sgd["epa_ratio"]) and sgd["ref_n"] == 1
    md = Path(out["markdown"]).read_text()
    assert "### Against the reference results" in md
    assert "Seeds: study: bfgs 4, adam 2, sgd 1; optbench: bfgs 3, adam 2, sgd 0. No optbench run yet for sgd." in md
    assert "| adam | study | 2 | 25 | 300 | 200 | 1600 | 2 | 12 | 120 | 60 | 120 | 0.48 | 0.4 | 0.3 | 0.075 |" in md
    assert any("reference results for other on d (study) but no finished run" in p for p in out["problems"])
    html = Path(out["html"]).read_text()
    assert "Against the reference results" in html


def test_core_count_of_a_run():
    """A run's cores are its spec's engine threads (1 when it names none), and 1 for MLIP's
    native trainer (`mlp train` is one process)."""
    runs = pd.DataFrame({"spec": ['{"threads": 4}', '{"threads": 4}', "{}"], "optimizer": ["adam", "native", "bfgs"]})
    assert list(run_threads(runs)) == [4.0, 1.0, 1.0]


def test_report_without_references_has_no_table(store_path, tmp_path):
    """No references (None): no such section and an empty table."""
    out = write_report(store_path, tmp_path / "report")
    assert "Against the reference results" not in Path(out["markdown"]).read_text()
    assert out["tables"]["references"].empty


def test_report_refuses_a_frame_without_the_columns(store_path, tmp_path):
    with pytest.raises(ValueError, match="references: missing column\\(s\\) cores"):
        write_report(store_path, tmp_path / "report", references=_reference_frame().drop(columns="cores"))


def test_optbench_report_of_the_experiment_file_shows_the_references(tmp_path, capsys):
    """`optbench report exp.toml` passes the file's [[references]] to the report: a store
    with the experiment's runs (as the runner records them) gets the comparison table."""
    path = _write(tmp_path, HEAD.replace('seeds = 2', 'seeds = 2\nthreads = 2') + GOOD)
    exp = load_experiment(path)
    with Store(exp.store_path) as st:
        for i, run in enumerate(exp.runs):
            _finish(st, run.key(), run.to_dict(), 5.0 + i, 100.0, 10.0)
    assert main(["report", str(path), "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    md = (tmp_path / "out" / "report.md").read_text()
    assert "### Against the reference results" in md
    assert "Seeds: ref: bfgs 3, adam 2; optbench: 2 seed(s) per variant." in md
    # adam: ours EPA 5, 6 -> 5.5 meV/atom, 100 meV/A, 10 train s x 2 threads = 20 core-s;
    # the reference's 15 meV/atom, 300 meV/A, 200 s x 8 cores = 1600 core-s.
    assert "| adam | ref | 2 | 15 | 300 | 200 | 1600 | 2 | 5.5 | 100 | 10 | 20 | 0.3667 | 0.3333 | 0.05 | 0.0125 |" in md


def test_optbench_run_writes_the_comparison(tmp_path, capsys):
    """`optbench run exp.toml` ends with the report, references included."""
    path = _write(tmp_path, HEAD.replace("seconds = 5", "epochs = 2") + GOOD)
    assert main(["run", str(path), "--workers", "1"]) == 0
    capsys.readouterr()
    md = (tmp_path / "results" / "t" / "report" / "report.md").read_text()
    assert "### Against the reference results" in md and "Seeds: ref: bfgs 3, adam 2; optbench: 2 seed(s)" in md
