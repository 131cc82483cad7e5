"""Experiment files -> RunSpecs (optbench/experiments/): grid expansion, variant
labels, seeds, restrictions, variables, the shipped experiments, run keys, and one
ExperimentError with file, line and key path for every kind of malformed file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO_ROOT, requires_shared
from optbench.optim.budget import Budget
from optbench.experiments.experiment import ExperimentError, describe_plan, load_experiment
from optbench.experiments.runspec import RunSpec

EXPERIMENTS = REPO_ROOT / "experiments"

# A valid experiment that the cases below extend: one model, one generated data set.
HEAD = """\
name = "t"
seeds = 2

[budget]
seconds = 5

[models.m]
level = 8

[data.d]
generate = { n_train = 4, n_valid = 2 }
"""

ADAM = """
[[optimizers]]
name = "adam"
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, **kw):
    return load_experiment(write(tmp_path, text), **kw)


# ------------------------------------------------------------------- expansion


def test_grid_expansion_counts_and_variant_labels(tmp_path):
    """2 lr x 2 clip x 3 seeds = 12 runs in 4 variants; a variant names the settings
    that vary, in the order written, and runs differing only in seed share it."""
    exp = load(tmp_path, HEAD + """
[[optimizers]]
name = "sgd"
lr = [1e-3, 1e-2]
clip = [1.0, 10]
batch_size = 2
seeds = 3
""")
    assert len(exp.runs) == 12
    assert exp.variants() == ["sgd lr=0.001 clip=1", "sgd lr=0.001 clip=10",
                              "sgd lr=0.01 clip=1", "sgd lr=0.01 clip=10"]
    for variant, runs in ((k[2], v) for k, v in exp.groups().items()):
        assert [r.seed for r in runs] == [0, 1, 2]
        assert {r.variant for r in runs} == {variant}
    first = exp.runs[0].settings
    assert first == {"hyper": {}, "lr": 0.001, "clip": 1.0, "batch_size": 2, "budget": "seconds=5", "seed": 0}
    assert isinstance(first["clip"], float)  # clip = 10 (a TOML integer) is stored as 10.0 too


def test_hyper_budget_perturb_axes_and_label(tmp_path):
    """Hyperparameter, budget and perturbation lists are axes too; a label replaces the
    optimizer name in variants; an entry budget replaces [budget]; target_epa_mev
    (meV/atom) becomes target_valid_epa (eV/atom)."""
    exp = load(tmp_path, HEAD + """
[[optimizers]]
name = "adam"
label = "A"
hyper = { b1 = [0.9, 0.95], eps = 1e-6 }
perturb = { sigma = [0, 1e-4], every = 50 }
budget = { seconds = [10, 20], epochs = 3 }
target_epa_mev = 3.0
""")
    assert len(exp.variants()) == 8
    assert exp.variants()[0] == "A b1=0.9 perturb.sigma=0 budget.seconds=10"
    s = exp.runs[-1].settings
    assert s["hyper"] == {"b1": 0.95, "eps": 1e-6}
    assert s["perturb_sigma"] == 1e-4 and s["perturb_every"] == 50
    assert s["budget"] == "epochs=3,seconds=20"
    assert s["target_valid_epa"] == pytest.approx(0.003)
    assert Budget.parse(s["budget"]) == Budget(epochs=3, seconds=20)


def test_list_valued_hyperparameter_is_an_axis_only_as_a_list_of_lists(tmp_path):
    """Muon's ns_coeffs is a list of three numbers: a flat list is one value, a list of
    lists a grid axis."""
    one = load(tmp_path, HEAD + '[[optimizers]]\nname = "muon"\nhyper = { ns_coeffs = [3.0, -4.0, 2.0] }\n')
    assert one.variants() == ["muon"] and one.runs[0].settings["hyper"]["ns_coeffs"] == [3.0, -4.0, 2.0]
    two = load(tmp_path, HEAD + '[[optimizers]]\nname = "muon"\n'
                                'hyper = { ns_coeffs = [[3.0, -4.0, 2.0], [2, -1.5, 0.5]] }\n')
    assert two.variants() == ["muon ns_coeffs=[3,-4,2]", "muon ns_coeffs=[2,-1.5,0.5]"]


def test_seeds_count_list_and_entry_override(tmp_path):
    """seeds = n means 0..n-1, a list is taken as it is, and an entry's seeds replace the
    top-level ones for that entry only."""
    exp = load(tmp_path, HEAD.replace("seeds = 2", "seeds = [0, 4, 7]") + ADAM
               + '\n[[optimizers]]\nname = "bfgs"\nseeds = 2\n')
    seeds = {v: [r.seed for r in runs] for (_, _, v), runs in exp.groups().items()}
    assert seeds == {"adam": [0, 4, 7], "bfgs": [0, 1]}


def test_restriction_to_models_and_data(tmp_path):
    """models x data x entries, where an entry's models / data lists restrict it."""
    exp = load(tmp_path, HEAD + """
[models.m16]
level = 16

[data.e]
generate = { n_train = 6, n_valid = 2, seed = 3 }

[[optimizers]]
name = "adam"

[[optimizers]]
name = "bfgs"
models = ["m16"]
data = ["e"]
""")
    combos = {(r.model_name, r.data_name, r.optimizer) for r in exp.runs}
    assert combos == {("m", "d", "adam"), ("m", "e", "adam"), ("m16", "d", "adam"), ("m16", "e", "adam"),
                      ("m16", "e", "bfgs")}
    assert len(exp.runs) == 5 * 2


def test_model_and_data_dicts_follow_the_runspec_contract(tmp_path):
    """Model and data dicts have exactly runspec.py's keys, with absolute paths; a
    generated set is {"kind": "generate", n_train, n_valid, seed}."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.cfg").write_text("")
    (tmp_path / "start.almtp").write_text("")
    exp = load(tmp_path, HEAD + """
[models.t]
template = "start.almtp"

[data.f]
train = "sub/a.cfg"
valid_fraction = 0.25
split_seed = 4
species = ["Ag", "Pd"]
""" + ADAM)
    assert exp.models["m"] == {"kind": "mtp", "level": 8, "min_dist": 2.0, "max_dist": 5.0, "engine": "embedded"}
    assert exp.models["t"] == {"kind": "mtp", "template": str(tmp_path / "start.almtp"), "engine": "embedded"}
    assert exp.data["d"] == {"kind": "generate", "n_train": 4, "n_valid": 2, "seed": 0}
    assert exp.data["f"] == {"kind": "files", "train": str(tmp_path / "sub" / "a.cfg"), "valid": None,
                             "valid_fraction": 0.25, "split_seed": 4, "format": None, "species": ["Ag", "Pd"]}
    assert exp.runs[0].weights == {"energy": 1.0, "forces": 0.01, "stress": 0.001, "weight_scaling": 1,
                                   "weight_scaling_forces": 0}


def test_report_options_overall_or_per_model_and_data(tmp_path):
    """[report] options are checked and normalised; target and budgets may be given per
    "MODEL/DATA" pair, as report.py takes them."""
    exp = load(tmp_path, HEAD + ADAM + """
[report]
target_epa_mev = { "m/d" = 3 }
budgets_seconds = [1, 2.5]
budgets_configs = [100]
smooth = 5
""")
    assert exp.report == {"target_epa_mev": {"m/d": 3.0}, "budgets_seconds": [1.0, 2.5], "budgets_configs": [100],
                          "smooth": 5}


def test_radial_basis_size_only_when_given(tmp_path):
    """radial_basis_size goes into the model dict only when the file gives it, so the
    run keys of files without it do not change."""
    exp = load(tmp_path, HEAD.replace("level = 8", "level = 8\nradial_basis_size = 10") + ADAM)
    assert exp.models["m"]["radial_basis_size"] == 10
    assert "radial_basis_size" not in load(tmp_path, HEAD + ADAM).models["m"]


def test_other_engines_are_checked_and_passed_on(tmp_path):
    """engine "capi" needs an existing lib (made absolute); "mlp-cli" takes an optional
    mlp, a bare name kept for the PATH lookup."""
    (tmp_path / "libx.so").write_text("")
    exp = load(tmp_path, HEAD + """
[models.c]
level = 8
engine = "capi"
lib = "libx.so"

[models.cli]
level = 8
engine = "mlp-cli"
mlp = "mlp"
""" + ADAM)
    assert exp.models["c"]["lib"] == str(tmp_path / "libx.so")
    assert exp.models["cli"]["mlp"] == "mlp"


def test_variables_substitution_and_overrides(tmp_path, monkeypatch):
    """${name} takes [paths] values resolved against the file's folder; OPTBENCH_<NAME>
    overrides them, and load_experiment(variables=...) overrides both."""
    for sub in ("here", "env", "arg"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "t.cfg").write_text("")
    text = HEAD.replace("[budget]", '[paths]\nroot = "here"\n\n[budget]').replace(
        "[data.d]", '[data.f]\ntrain = "${root}/t.cfg"\nvalid_fraction = 0.5\n\n[data.d]') + ADAM
    path = write(tmp_path, text)
    monkeypatch.delenv("OPTBENCH_ROOT", raising=False)
    assert load_experiment(path).data["f"]["train"] == str(tmp_path / "here" / "t.cfg")
    monkeypatch.setenv("OPTBENCH_ROOT", str(tmp_path / "env"))
    assert load_experiment(path).data["f"]["train"] == str(tmp_path / "env" / "t.cfg")
    exp = load_experiment(path, variables={"root": str(tmp_path / "arg")})
    assert exp.data["f"]["train"] == str(tmp_path / "arg" / "t.cfg")


def test_store_path_default_and_relative(tmp_path):
    """The store defaults to results/<name>/store.sqlite beside the file; a given one is
    relative to the file's folder."""
    assert load(tmp_path, HEAD + ADAM).store_path == tmp_path / "results" / "t" / "store.sqlite"
    exp = load(tmp_path, 'store = "out/s.sqlite"\n' + HEAD + ADAM)
    assert exp.store_path == tmp_path / "out" / "s.sqlite"


def test_baseline_by_variant_or_single_variant_optimizer(tmp_path):
    """baseline names a variant, or an optimizer with one variant (resolved to it)."""
    grid = '\n[[optimizers]]\nname = "adam"\nlabel = "Adam"\nlr = [0.01, 0.1]\n'
    exp = load(tmp_path, 'baseline = "bfgs"\n' + HEAD + grid + '\n[[optimizers]]\nname = "bfgs"\nlabel = "B"\n')
    assert exp.baseline == "B"
    exp = load(tmp_path, 'baseline = "Adam lr=0.1"\n' + HEAD + grid)
    assert exp.baseline == "Adam lr=0.1"


def test_describe_plan_lists_every_ensemble(tmp_path):
    """The plan names the store, the counts, one line per (model, data, variant) with
    seeds and budget, and the total number of runs."""
    exp = load(tmp_path, HEAD + '\n[[optimizers]]\nname = "adam"\nlr = [0.01, 0.1]\n')
    plan = describe_plan(exp)
    assert str(exp.store_path) in plan
    assert "2 variants" in plan and "4 runs" in plan
    assert "adam lr=0.01" in plan and "seeds 0,1" in plan and "budget seconds=5" in plan
    assert plan.splitlines()[-1].startswith("total: 4 runs")


def test_run_keys_are_stable_and_distinct(tmp_path):
    """Loading the same file twice gives the same run keys; no two runs share a key;
    every spec survives the JSON round trip the workers use."""
    text = HEAD + '\n[[optimizers]]\nname = "adam"\nlr = [0.01, 0.1]\n\n[[optimizers]]\nname = "bfgs"\n'
    a, b = load(tmp_path, text), load(tmp_path, text)
    keys = [r.key("v") for r in a.runs]
    assert keys == [r.key("v") for r in b.runs]
    assert len(set(keys)) == len(keys) == 6
    for r in a.runs:
        assert RunSpec.from_dict(json.loads(json.dumps(r.to_dict()))) == r
        r.train_settings()


# ------------------------------------------------------------------- shipped files


def test_quick_experiment_loads():
    """experiments/quick.toml (make demo): 15 runs, 5 variants, baseline bfgs, generated
    data, so it needs nothing outside the repository."""
    exp = load_experiment(EXPERIMENTS / "quick.toml")
    assert len(exp.runs) == 15 and len(exp.variants()) == 5
    assert exp.baseline == "bfgs"
    assert all(r.data["kind"] == "generate" for r in exp.runs)
    assert describe_plan(exp)


@requires_shared
@pytest.mark.parametrize("name", ["task1", "task1_etn", "task4", "task5", "task6"])
def test_study_experiments_load(name):
    """The study's blocks load against the real data in ../shared/datasets (file data
    exists, every setting is accepted, the baseline resolves)."""
    exp = load_experiment(EXPERIMENTS / f"{name}.toml")
    assert exp.runs and exp.baseline in exp.variants()
    for r in exp.runs:
        assert r.data["kind"] == "files" and Path(r.data["train"]).is_file()
        r.train_settings()


def test_etn_model_dict_and_spec(tmp_path):
    """An ETN model table becomes {"kind": "etn", "shape", "ranks", "lmax", radial basis,
    "engine"}; ranks default to 1 per bond; the engine spec built from it gives the
    documented parameter count (660 for [[1],[6],[3]], ranks [[1],[1]], 2 species)."""
    from optbench.engine import etn_spec, load_engine

    exp = load(tmp_path, HEAD.replace("level = 8", 'kind = "etn"\nshape = [[1], [6], [3]]\nlmax = 2') + ADAM)
    model = exp.runs[0].model
    assert model == {"kind": "etn", "shape": [[1], [6], [3]], "ranks": [[1], [1]], "lmax": 2, "min_dist": 2.0,
                     "max_dist": 5.0, "engine": "embedded"}
    assert load_engine().potential_from_spec(etn_spec(model, n_species=2)).n_params == 660


def test_every_shipped_experiment_is_tested():
    """No experiment file ships without a load test (mlp_cli_compare: tests/test_native.py
    runs it with a stand-in mlp; study_agpd_mtp: tests/test_references.py; finetune_demo,
    finetune_mo: tests/test_finetune_controls.py; properties_agpd and the [properties] of
    quick and finetune_demo: tests/test_properties_experiment.py; curvature_agpd:
    tests/test_curvature_experiment.py; mpi_pdag: tests/test_mpi.py)."""
    assert sorted(p.stem for p in EXPERIMENTS.glob("*.toml")) == ["curvature_agpd", "finetune_demo", "finetune_mo",
                                                                  "mlp_cli_compare", "mpi_pdag", "properties_agpd", "quick",
                                                                  "study_agpd_mtp", "task1", "task1_etn", "task4",
                                                                  "task5", "task6"]


# ------------------------------------------------------------------- malformed files

# Each case: (id, file text, what the message must name). The line the error must
# point to is the one marked "# <-" in the text.
MODEL_ONLY = HEAD.split("[data.d]")[0]
MALFORMED = [
    ("analysis not a flag", HEAD + ADAM + "[analysis]\ncurvature = 1  # <-\n",
     "analysis.curvature: expected true or false"),
    ("analysis every 0", HEAD + ADAM + "[analysis]\ncurvature = true\nevery = 0  # <-\n",
     "analysis.every: must be an integer >= 1"),
    ("analysis unknown key", HEAD + ADAM + "[analysis]\ncurvature = true\nlanczos = 3  # <-\n",
     "analysis.lanczos: unknown key in [analysis]"),
    ("unknown top key", HEAD.replace("seeds = 2", "seeds = 2\nbogus = 1  # <-") + ADAM,
     "bogus: unknown key at the top level"),
    ("unknown optimizer", HEAD + '[[optimizers]]\nname = "adamm"  # <-\n', "optimizers[0].name: unknown optimizer"),
    ("unknown hyper", HEAD + ADAM + "hyper = { b3 = 0.9 }  # <-\n",
     "optimizers[0].hyper.b3: unknown hyperparameter for adam; known: b1, b2, eps"),
    ("hyper in a sub-table", HEAD + ADAM + '\n[[optimizers]]\nname = "sgd"\n[optimizers.hyper]\n'
                                           "beta = 0.9  # <-\n", "optimizers[1].hyper.beta: unknown hyperparameter"),
    ("hyper value refused", HEAD + ADAM + "hyper = { b1 = [0.9, 1.5] }  # <-\n",
     "optimizers[0].hyper.b1[1]: adam: b1 must be in [0, 1)"),
    ("hyper wrong type", HEAD + '[[optimizers]]\nname = "muon"\nhyper = { nesterov = "yes" }  # <-\n',
     "optimizers[0].hyper.nesterov: expected true or false"),
    ("lr a string", HEAD + ADAM + 'lr = "0.01"  # <-\n', "optimizers[0].lr: expected a finite number"),
    ("negative batch_size", HEAD + ADAM + "batch_size = -4  # <-\n",
     "optimizers[0].batch_size: batch_size must be >= 1"),
    ("empty grid list", HEAD + ADAM + "lr = []  # <-\n", "optimizers[0].lr: an empty list"),
    ("repeated grid value", HEAD + ADAM + "lr = [0.1, 1e-1]  # <-\n", "optimizers[0].lr: repeated value"),
    ("missing data file", MODEL_ONLY + '[data.d]\ntrain = "nowhere.json"  # <-\nvalid_fraction = 0.2\n' + ADAM,
     "data.d.train: train file not found"),
    ("undefined variable", MODEL_ONLY + '[data.d]\ntrain = "${nowhere}/a.json"  # <-\nvalid_fraction = 0.2\n' + ADAM,
     "data.d.train: undefined variable ${nowhere}"),
    ("budget without limit", HEAD.replace("seconds = 5", "") .replace("[budget]", "[budget]  # <-") + ADAM,
     "budget: a budget needs at least one of epochs, evals, seconds"),
    ("no budget at all", HEAD.replace("[budget]\nseconds = 5\n", "") + "\n[[optimizers]]  # <-\nname = \"adam\"\n",
     "optimizers[0]: no budget"),
    ("duplicate variant", HEAD + ADAM + "lr = 0.1\n\n[[optimizers]]  # <-\nname = \"adam\"\nlr = 0.2\n",
     "optimizers[1]: variant 'adam' on model 'm' / data 'd' is also made by optimizers[0]"),
    ("bad TOML syntax", HEAD + ADAM + "lr = 0.01.5  # <-\n", "TOML syntax"),
    ("list left open at the end", HEAD + ADAM + "lr = [0.1,  # <-\n", "TOML syntax"),
    ("grid in the default budget", HEAD.replace("seconds = 5", "seconds = [5, 10]  # <-") + ADAM,
     "budget.seconds: the default budget takes one value"),
    ("unknown model kind", HEAD.replace("level = 8", 'level = 8\nkind = "ace"  # <-') + ADAM,
     "models.m.kind: unknown model kind 'ace'; known: mtp, etn"),
    ("unknown engine", HEAD.replace("level = 8", 'level = 8\nengine = "mlip5"  # <-') + ADAM,
     "models.m.engine: unknown engine 'mlip5'"),
    ("level not an integer", HEAD.replace("level = 8", "level = 8.5  # <-") + ADAM,
     "models.m.level: expected an integer, got a number (8.5)"),
    ("odd level", HEAD.replace("level = 8", "level = 7  # <-") + ADAM, "models.m.level: MTP level must be an even"),
    ("unknown report key", HEAD + ADAM + "\n[report]\nsmoothing = 3  # <-\n",
     "report.smoothing: unknown key in [report]; known: target_epa_mev"),
    ("report option for an unknown pair", HEAD + ADAM + '\n[report]\ntarget_epa_mev = { "m/x" = 3 }  # <-\n',
     "report.target_epa_mev.m/x: no model/data pair 'm/x'; pairs: m/d"),
    ("baseline not found", HEAD.replace("seeds = 2", 'seeds = 2\nbaseline = "sgd"  # <-') + ADAM,
     "baseline: no variant or optimizer 'sgd'; variants: adam"),
    ("ambiguous baseline", HEAD.replace("seeds = 2", 'seeds = 2\nbaseline = "adam"  # <-') + ADAM + "lr = [0.1, 0.2]\n",
     "baseline: optimizer 'adam' has 2 variants"),
    ("unknown entry key", HEAD + ADAM + "learning_rate = 0.1  # <-\n", "optimizers[0].learning_rate: unknown key"),
    ("lr for a method without steps", HEAD + '[[optimizers]]\nname = "bfgs"\nlr = 0.1  # <-\n',
     "optimizers[0].lr: bfgs takes no steps"),
    ("bad schedule", HEAD + ADAM + 'schedule = "cosine,warmup=x"  # <-\n', "optimizers[0].schedule: schedule option"),
    ("restriction to an unknown model", HEAD + ADAM + 'models = ["m", "m99"]  # <-\n',
     "optimizers[0].models[1]: no model 'm99'; defined: m"),
    ("perturb without every", HEAD + ADAM + "perturb = { sigma = 1e-4 }  # <-\n",
     "optimizers[0].perturb: perturb needs both sigma and every"),
    ("valid and valid_fraction", MODEL_ONLY.replace("[models.m]", '[paths]\nhere = "."\n\n[models.m]')
     + '[data.d]\ntrain = "${here}/exp.toml"\nformat = "cfg"\nvalid = "${here}/exp.toml"\n'
       "valid_fraction = 0.2  # <-\n" + ADAM, "data.d.valid_fraction: give exactly one of valid, valid_fraction"),
    ("negative loss weight", HEAD + "\n[weights]\nstress = -1  # <-\n" + ADAM,
     "weights.stress: loss weight 'stress' must be finite and >= 0"),
    ("zero seeds", HEAD.replace("seeds = 2", "seeds = 0  # <-") + ADAM, "seeds: must be an integer >= 1"),
    ("missing name", HEAD.replace('name = "t"', "# <-") + ADAM, "name: the experiment needs a name"),
    ("capi without lib", HEAD.replace("level = 8", 'level = 8\nengine = "capi"  # <-') + ADAM,
     "models.m.engine: engine \"capi\" needs lib"),
    ("native workdir", HEAD + '[[optimizers]]\nname = "native"\nhyper = { workdir = "w" }  # <-\n',
     "optimizers[0].hyper.workdir: every run of the variant would share this folder"),
    ("optimizers as a table", HEAD + "[optimizers]  # <-\nname = \"adam\"\n",
     "optimizers: expected [[optimizers]] entries"),
    # A multi-line string and a multi-line list whose lines look like keys and headers.
    ("error after multi-line values",
     HEAD.replace("seeds = 2", 'description = """\nlr = 1\n[[optimizers]]\n"""\nseeds = 2')
     + ADAM + 'lr = [\n  0.1,  # a comment ]\n  0.2,\n]\nclip = "x"  # <-\n',
     "optimizers[0].clip: expected a finite number"),
    ("etn shape not lists", HEAD.replace("level = 8", 'kind = "etn"\nshape = [1, 6, 3]  # <-') + ADAM,
     "models.m.shape: expected a list of lists of integers"),
    ("etn with a level", HEAD.replace("level = 8", 'kind = "etn"\nlevel = 8  # <-\nshape = [[1], [6], [3]]') + ADAM,
     "models.m.level: level describes an MTP"),
    ("etn ranks count", HEAD.replace("level = 8", 'kind = "etn"\nshape = [[1], [6], [3]]\nranks = [[1]]  # <-')
     + ADAM, "models.m.ranks: 3 cores need 2 ranks lists, got 1"),
    ("etn shape the engine refuses", HEAD.replace("level = 8", 'kind = "etn"\nlmax = 1\nshape = [[1], [6, 4, 2], [3]]  # <-')
     + ADAM, "models.m.shape: not a valid ETN"),
    ("shape on an mtp", HEAD.replace("level = 8", 'level = 8\nshape = [[1], [6], [3]]  # <-') + ADAM,
     "models.m.shape: shape describes an ETN"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_file_names_file_line_and_key(tmp_path, text, expected):
    """A malformed file raises ExperimentError (never another exception) starting with
    FILE:LINE: where LINE is the offending line, and naming the key path."""
    path = write(tmp_path, text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "# <-" in t)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert expected in message, message


def test_malformed_cases_cover_the_required_kinds():
    """The table above keeps at least the 15 kinds of mistakes the format promises to
    report (each with its own message)."""
    assert len(MALFORMED) >= 15
    assert len({c[0] for c in MALFORMED}) == len(MALFORMED)


def test_unreadable_file_is_an_experiment_error(tmp_path):
    """A missing file is an ExperimentError naming it, not an OSError."""
    with pytest.raises(ExperimentError, match="nothing.toml: cannot read"):
        load_experiment(tmp_path / "nothing.toml")
