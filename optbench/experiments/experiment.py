"""Experiment files (TOML) -> the grid of runs they describe, as RunSpecs (runspec.py).

    exp = load_experiment("experiments/quick.toml")
    print(describe_plan(exp))            # what `optbench validate FILE` prints
    for spec in exp.runs: ...            # models x data x optimizer entries x grids x seeds

A bad file never gives a traceback: every problem is an `ExperimentError` (a ValueError)
whose message starts with ``FILE:LINE:`` and names the key, e.g.

    quick.toml:23: optimizers[2].hyper.b3: unknown hyperparameter for adam; known: b1, b2, eps

Array-of-tables entries are counted from 0 (``optimizers[2]`` is the third
``[[optimizers]]``). An unreadable file has no line: ``FILE: cannot read ...``.

File format
-----------
Units: seconds of training (evaluations of metrics are not charged), configurations
evaluated (one configuration's loss and gradient = 1), epochs (passes over the training
set), Angstrom for distances, meV/atom for energy-per-atom targets.

Top level
    name         required; [A-Za-z0-9_.-]+; the experiment's name in the store and reports.
    description  free text (default "").
    store        the SQLite results store; relative to the file's folder
                 (default ``results/<name>/store.sqlite`` beside the file).
    seeds        ensemble size n (seeds 0 .. n-1) or an explicit list of distinct seeds
                 >= 0, e.g. [0, 4, 7] (default 1).
    baseline     the variant the report divides by: a variant label, or an optimizer
                 name whose runs form a single variant (default: none).
    threads      engine threads per run (default 1).
    mpi_ranks    MPI ranks each run spreads its data over (default 1: no MPI): the run
                 is started as `mpiexec -n N python -m optbench.experiments.mpi_run`
                 (experiments/mpi_run.py; $OPTBENCH_MPIEXEC overrides the launcher), each
                 rank holding a share of the training and validation sets. Needs the
                 mpi extra, an engine model (embedded, capi) or a foundation model, and
                 not the native optimizer; each rank uses `threads` threads.

[paths]
    Variables, used as ``${name}`` in any string of the file (names [A-Za-z_][A-Za-z0-9_]*).
    Each value is a path; a relative one resolves against the file's folder. A variable
    is overridden by ``load_experiment(..., variables={name: value})`` or else by the
    environment variable ``OPTBENCH_<NAME upper-case>``; an override that is relative
    resolves against the current directory. ``variables`` may define names the file does
    not declare. A value may use variables declared above it. ``${`` has no escape.

[weights]
    LossWeights (optbench/objective/protocol.py): energy, forces, stress (numbers >= 0; defaults 1.0, 0.01,
    0.001) and weight_scaling, weight_scaling_forces (0, 1 or 2; defaults 1, 0): the
    energy and stress weights are divided by N**weight_scaling, the force weight by
    N**weight_scaling_forces, N the atoms of a configuration.

[budget]
    The budget of every run: epochs (number > 0), evals (configurations evaluated,
    integer >= 1), seconds (training seconds > 0); a run stops at whichever comes first.
    At least one; required unless every [[optimizers]] entry has its own.

[models.LABEL]    one table per model; LABEL ([A-Za-z0-9_.-]+) names it in tables
    kind      "mtp" (default) or "etn".
    level     MTP level: an even integer 2 .. 28; or
    template  an .mtp/.almtp file (path) to start from (for an ETN: the engine's ETN
              JSON); exactly one of level, template for an MTP.
    shape     ETN only: one list per core of radial channels per angular order l (one
              entry for all l, or lmax + 1 entries), e.g. [[1], [6], [3]].
    ranks     ETN only: one list per internal bond (cores - 1), default [[1], ...].
    lmax      ETN only: the largest angular order (default: from the lists, else 2).
              engine/README.md ("ETN") defines the model; the file is checked by
              building it with the embedded engine.
    min_dist  radial basis inner cutoff, Angstrom (level or shape only; default 2.0).
    max_dist  radial basis outer cutoff, Angstrom (level or shape only; default 5.0).
    radial_basis_size  Chebyshev radial basis functions (level or shape only; >= 2;
              default: the engine's, 8).
    engine    "embedded" (default, the built-in engine), "capi" (a library implementing
              engine/include/mlipc.h: give ``lib`` = its path), "mlip4" (MLIP-4's Python
              module: ``template`` = an MLIP-4 potential JSON, optional ``module`` =
              its import name, default "mlip_4") or "mlp-cli" (MLIP's mlp program,
              optimizer "native" only: optional ``mlp`` = a path or a name on PATH).
              See optbench/engine/choice.py.
    Foundation models (pretrained torch networks, fine-tuned; optbench/foundation/,
    optional extra optbench[foundation]):
    kind      "sevennet" or "mace";
    model     SevenNet: "7net-0" (default; inside the sevenn wheel) or a sevenn checkpoint
              path; MACE: the path of a MACE model file (required: nothing is downloaded);
    dtype     "float64" (default) or "float32" (faster; the parameter vector is float64);
    train_groups  "all" (default), or one or a list of "embedding", "interactions",
              "readout": the parameters trained (the rest stay pretrained);
    energy_shift  true (default): fit a per-element energy reference to the training set
              first and fold it into the model.

[data.LABEL]      one table per data set; LABEL ([A-Za-z0-9_.-]+) names it in tables
    generate        { n_train = 240, n_valid = 60, seed = 0 }: the Ag-Pd EMT generator
                    (optbench/io/generator.py; the defaults shown); or files:
    train           the training file (path; must exist);
    valid           a validation file, or
    valid_fraction  hold out this fraction (0 < f < 1) of ``train``, split by
    split_seed      (integer >= 0, default 0); exactly one of valid, valid_fraction.
    format          "cfg", "mlip4", "pymatgen" or "extxyz" (optbench.io.FORMATS;
                    default: by extension, .cfg / .xyz / .extxyz / .json sniffed).
    species         element of each type index, e.g. ["Ag", "Pd"] (default: the file's).
    train           may also be a list of files (of one format): one training set.
    tests           { LABEL = PATH, ... }: held-out test sets, evaluated with each run's
                    last and best-validation parameters after training (the report's
                    "Held-out test sets"; never used to train or choose parameters).
    n_train, n_valid  use a random subset of this many training / validation
                    configurations (drawn with split_seed).
    energy_key, forces_key, virial_key, stress_key
                    extended XYZ only: the keys of the labels (default: the first
                    of optbench.io.extxyz.DEFAULT_KEYS present, e.g. vasp_energy).

[[optimizers]]    one entry per optimizer setting; every LIST-valued setting is a grid
                  axis and the entry expands to the cartesian product of its axes
    name            an optimizer of optbench.optim.REGISTRY (required).
    label           the variant's name in tables (default: name).
    lr              base learning rate (> 0; default the optimizer's).
    batch_size      configurations per step (integer >= 1; default: all).
    clip            global-norm gradient clipping threshold (> 0; default none).
    schedule        learning-rate schedule, e.g. "cosine,warmup=100" (optbench/train/schedules.py).
    init_interval   initial parameters: engine defaults + uniform [-a, a] noise (a > 0).
    perturb         { sigma = 1e-4, every = 50 }: N(0, sigma^2) noise on the parameters
                    every `every` steps (sigma >= 0, every integer >= 1; both needed).
    eval_every      steps between train/validation evaluations (integer >= 1).
    target_epa_mev  stop at the first evaluation whose validation energy-per-atom RMSE
                    is at or below this, meV/atom (time-to-target runs).
    early_stop      end the optimizer when the validation EPA RMSE has not improved for
                    this many evaluations (integer >= 1).
    refine          "none" (default) or "lbfgs": an L-BFGS-B refinement on the whole
                    training set after the optimizer (from its best point when early
                    stopping ended it), for the last refine_fraction (0 < f < 1,
                    default 0.2) of every budget limit. A list is a grid axis:
                    refine = ["none", "lbfgs"] gives each optimizer with and without.
    hyper           { name = value }: the optimizer's hyperparameters (`optbench
                    optimizers` lists them); a list is a grid axis, except for a
                    hyperparameter whose value is itself a list (Muon's ns_coeffs),
                    where a list of lists is.
    budget          { epochs, evals, seconds } for this entry: replaces [budget].
    seeds           replaces the top-level seeds for this entry.
    models, data    lists of labels: run this entry on these models / data sets only
                    (default: all).
    lr, schedule, clip, batch_size, perturb, refine and refine_fraction apply to step-based
    optimizers (refine: not adam_lbfgs, which refines itself) and lr ... perturb to
    adam_lbfgs; optimizers without steps (bfgs, lbfgs, varpro, alternating, native)
    reject them rather than ignore them.

[report]          options of the report (optbench/report/)
    target_epa_mev    time-to-target threshold, meV/atom (> 0).
    budgets_seconds   equal-budget views at these training seconds (list, > 0).
    budgets_configs   equal-budget views at these configurations evaluated (integers >= 1).
    smooth            loss-history smoothing window, points (integer >= 1).
    The first three may instead be tables by "MODEL/DATA" labels, one value per pair:
    target_epa_mev = { "mtp8/pdag" = 3.0, "mtp16/pdag" = 2.0 }.

[properties]      physical properties of each finished run's potential (structures, compute,
                  reference, ...): optbench/experiments/properties_plan.py

[analysis]        the curvature of each run's loss (Hessian, Gauss-Newton and the optimizer's
                  preconditioned spectra) at the points it went through:
                  optbench/experiments/analysis_plan.py

[[references]]    results of another code (a published study) read from CSV files, one row
                  per seed, shown beside optbench's in the report (optbench/experiments/
                  references.py); one entry per set of files
    label     the reference's name in the report (label; default "reference").
    files     a path or a list of paths (globs allowed, e.g. "${study}/*_bfgs.csv"); a
              path that is no file, or a glob that matches none, is an error.
    model, data  the experiment's model and data labels these results compare with
              (default: the only one, when the experiment has one).
    variant   the experiment's variant (on that model and data) the files hold, or a
              table { file-name ending = variant }: each file takes the longest key its
              name without the extension ends with, e.g.
              { native_bfgs = "native", scipy_bfgs = "bfgs", my_adam = "adam" };
              every file must match a key and every key a file.
    columns   { quantity = the file's column }, quantities seed, valid_epa_rmse,
              valid_force_rmse (norm of the per-atom force error), train_seconds (wall
              time); a list gives alternatives, the first one a file has is read
              (valid_epa_rmse = ["val_energy_atom_rmse", "val_epa_rmse"]). At least one
              quantity; a quantity not named is left empty; without seed the rows are
              numbered from 0. A column no file has, or a value that is not a number, is
              an error naming the file. A seed twice in one variant is an error.
    units     { quantity = unit }: valid_epa_rmse "eV/atom" (default) or "meV/atom",
              valid_force_rmse "eV/A" (default) or "meV/A", train_seconds "s" (default),
              "min" or "h".
    cores     required: the cores the reference ran on (MPI ranks x threads); the report
              compares core-seconds (wall seconds x cores; optbench's: train seconds x
              ``threads``, x 1 for the native optimizer) besides wall seconds.

Expansion
---------
models x data x [[optimizers]] entries x each entry's grid x seeds, in that order, one
RunSpec each. A run's ``variant`` is the entry's label (or optimizer name) followed by
the settings that take more than one value in its grid, in the order written, e.g.
"adam lr=0.001 clip=10" (hyperparameters by their own name, table settings as
``perturb.sigma=0.0001``, ``budget.seconds=30``); runs differing only in seed share it.
Two entries that give the same variant on the same model and data set are an error:
give one a ``label``. Every path in a RunSpec is absolute.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from optbench.engine import MAX_THREADS
from optbench.experiments.baseline import BaselineError, choose_baseline
from optbench.experiments.entries import _entry, _expand
from optbench.experiments.analysis_plan import apply_analysis, parse_analysis
from optbench.experiments.mpi_plan import apply_mpi_ranks
from optbench.experiments.properties_plan import parse_properties
from optbench.experiments.references import read_references
from optbench.experiments.runspec import RunSpec, current_code_version
from optbench.experiments.sections import (
    _data,
    _default_budget,
    _model,
    _report,
    _seeds,
    _weights,
)
from optbench.experiments.toml_lines import KeyLocator
from optbench.experiments.values import (
    ExperimentError,
    _check_keys,
    _Context,
    _expect,
    _integer,
    _label,
    _read_variables,
    _string,
    _substitute,
    _table,
)
from optbench.train import Budget

if TYPE_CHECKING:
    import pandas as pd

# ------------------------------------------------------------------- the experiment


@dataclass
class Experiment:
    """An experiment file, loaded: its header, report options and the runs it expands to.

    path / store_path: absolute. baseline: the variant label the report divides by
    (resolved from an optimizer name when the file gave one), or None. runs: in the
    order models x data x entries x grids x seeds. models / data: the files' tables as
    RunSpec dicts, by label. threads: engine threads per run. references: the
    [[references]] rows (references.REFERENCE_COLUMNS; eV/atom, eV/A, seconds), the frame
    `optbench.report.write_report(references=...)` takes, or None when the file has none."""

    name: str
    path: Path
    description: str
    store_path: Path
    baseline: str | None
    report: dict
    runs: list[RunSpec]
    models: dict[str, dict] = field(default_factory=dict)
    data: dict[str, dict] = field(default_factory=dict)
    threads: int = 1
    references: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    properties: dict | None = None

    def variants(self) -> list[str]:
        """The variant labels, in the order of the runs, each once."""
        return list(dict.fromkeys(r.variant for r in self.runs))

    def keys(self, code_version: str | None = None) -> list[str]:
        """The store keys of the runs, in order, on `code_version` (default: the current
        code's, runspec.current_code_version)."""
        version = code_version if code_version is not None else current_code_version()
        return [r.key(version) for r in self.runs]

    def groups(self) -> dict[tuple[str, str, str], list[RunSpec]]:
        """The runs by (model, data set, variant): one ensemble of seeds each."""
        out: dict[tuple[str, str, str], list[RunSpec]] = {}
        for r in self.runs:
            out.setdefault((r.model_name, r.data_name, r.variant), []).append(r)
        return out


_TOP_KEYS = ("name", "description", "store", "seeds", "baseline", "threads", "mpi_ranks", "paths", "weights", "budget",
             "models", "data", "optimizers", "report", "references", "properties", "analysis")


def load_experiment(path, variables: dict[str, str] | None = None) -> Experiment:
    """Read, check and expand an experiment file (module docstring: the format).

    `variables` override or add [paths] variables (relative values: against the current
    directory). Every problem is an ExperimentError starting with ``FILE:LINE:``."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ExperimentError(f"{file}: cannot read the experiment file: {err}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column \d+\)", str(err))
        line = m.group(1) if m else max(1, len(text.splitlines()))  # else "(at end of document)"
        raise ExperimentError(f"{file}:{line}: TOML syntax: {err}") from None
    ctx = _Context(file, Path(os.path.abspath(path)).parent, KeyLocator(text))
    _check_keys(ctx, (), doc, _TOP_KEYS)
    ctx.variables = _read_variables(ctx, doc.get("paths", {}), dict(variables or {}))
    doc = {k: v if k == "paths" else _substitute(ctx, (k,), v) for k, v in doc.items()}
    return _build(ctx, doc)


def _build(ctx: _Context, doc: dict) -> Experiment:
    if "name" not in doc:
        raise ctx.error(("name",), "the experiment needs a name = \"...\" at the top")
    name = _label(ctx, ("name",), doc["name"])
    seeds = _seeds(ctx, ("seeds",), doc.get("seeds", 1))
    threads = _integer(ctx, ("threads",), doc.get("threads", 1), minimum=1)
    if threads > MAX_THREADS:
        raise ctx.error(("threads",), f"must be at most {MAX_THREADS}, got {threads}")
    models = _labelled(ctx, doc, "models", _model)
    data = _labelled(ctx, doc, "data", _data)
    raw_entries = doc.get("optimizers", [])
    if not isinstance(raw_entries, list):
        raise _expect(ctx, ("optimizers",), raw_entries, "[[optimizers]] entries (an array of tables)")
    if not raw_entries:
        raise ctx.error(("optimizers",), "at least one [[optimizers]] entry is needed")
    entries = [_entry(ctx, i, raw, seeds, models, data) for i, raw in enumerate(raw_entries)]
    default_budget = _default_budget(ctx, doc["budget"]) if "budget" in doc else None
    runs = _expand(ctx, name, models, data, entries, _weights(ctx, doc.get("weights", {})), default_budget, threads)
    runs = apply_analysis(runs, parse_analysis(ctx, doc.get("analysis")))
    runs = apply_mpi_ranks(ctx, runs, doc.get("mpi_ranks", 1))
    store = ctx.resolve(_string(ctx, ("store",), doc.get("store", f"results/{name}/store.sqlite")))
    exp = Experiment(name=name, path=ctx.folder / Path(ctx.file).name,
                     description=_string(ctx, ("description",), doc.get("description", "")),
                     store_path=Path(store), baseline=None,
                     report=_report(ctx, doc.get("report", {}), {f"{r.model_name}/{r.data_name}" for r in runs}),
                     runs=runs, models=models, data=data,
                     threads=threads, references=read_references(ctx, doc.get("references"), models, data, runs),
                     properties=parse_properties(ctx, doc.get("properties")))
    if "baseline" in doc:
        exp.baseline = _baseline(ctx, _string(ctx, ("baseline",), doc["baseline"]), runs)
    return exp


def _labelled(ctx: _Context, doc: dict, key: str, parse: Callable) -> dict[str, dict]:
    """[models.X] / [data.X] tables, parsed, by label; at least one."""
    tables = _table(ctx, (key,), doc.get(key, {}))
    if not tables:
        raise ctx.error((key,), f"at least one [{key}.LABEL] table is needed")
    return {label: parse(ctx, label, raw) for label, raw in tables.items()}


def _baseline(ctx: _Context, baseline: str, runs: list[RunSpec]) -> str:
    """The variant label `baseline` names (baseline.choose_baseline: a variant, or an
    optimizer with one variant); an error at the baseline key otherwise."""
    counts: dict[tuple[str, str], int] = {}
    for r in runs:
        counts[(r.variant, r.optimizer)] = counts.get((r.variant, r.optimizer), 0) + 1
    try:
        return choose_baseline([(v, opt, n) for (v, opt), n in counts.items()], baseline)[0]
    except BaselineError as err:
        raise ctx.error(("baseline",), str(err)) from None


# ------------------------------------------------------------------- the plan


def _seed_text(seeds: list[int]) -> str:
    """[0, 1, 2, 3] -> "0-3"; [0, 4, 7] -> "0,4,7"."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def describe_plan(exp: Experiment) -> str:
    """The plan of `exp` as text (what `optbench validate FILE` prints): the file and
    store, counts, one line per (model, data set, variant) with its seeds and budget,
    the total number of runs and the training seconds the budgets allow at most."""
    groups = exp.groups()
    n_runs = len(exp.runs)
    lines = [f"experiment {exp.name}: {exp.path}"]
    if exp.description:
        lines.append(f"  {exp.description.strip()}")
    lines += [f"store: {exp.store_path}",
              ", ".join([_count(len(exp.models), "model"), _count(len(exp.data), "data set"),
                         _count(len(exp.variants()), "variant"), _count(len(groups), "ensemble"),
                         _count(n_runs, "run"), f"{_count(exp.threads, 'engine thread')} a run"]),
              f"baseline: {exp.baseline or 'none'}"]
    width = max(len(v) for (_, _, v) in groups)
    for (model, data, variant), runs in groups.items():
        seeds = _seed_text([r.seed for r in runs])
        lines.append(f"  {model:<10s} {data:<10s} {variant:<{width}s}  seeds {seeds:<8s} "
                     f"budget {runs[0].settings['budget']}")
    seconds = [Budget.parse(r.settings["budget"]).seconds for r in exp.runs]
    timed = [s for s in seconds if s is not None]
    total = f"total: {_count(n_runs, 'run')}"
    if timed:
        total += (f"; at most {sum(timed):.0f} s of training in the {_count(len(timed), 'run')} with a "
                  "seconds budget")
    lines.append(total)
    if exp.properties:
        p = exp.properties
        ref = p["reference"] if p["reference"] != "numbers" else "numbers from the file"
        lines.append(f"properties of each run's {p['potential']} potential: {', '.join(p['compute'])} on "
                     f"{', '.join(p['structures'])}; reference: {ref}")
    return "\n".join(lines)


__all__ = ["Experiment", "ExperimentError", "load_experiment", "describe_plan"]
