"""The report itself: write_report reads a results store, builds the (model, data)
groups and writes report.md, the self-contained report.html and figures/*.png, one
section per group (its tables and figures) after a list of what is missing or suspect.

Units: the store holds eV/atom, eV/Å and seconds; tables and figures show meV/atom and
meV/Å. The report never fails on a partial store: what is missing is said in it.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from optbench.experiments.store import Store
from optbench.io.outputs import atomic_output, write_text_atomic
from optbench.report.curvature import curvature_section
from optbench.report.figures import (
    fig_box,
    fig_equal_budget,
    fig_loss,
    fig_quality_cost,
    fig_sweep,
    sweep_settings,
)
from optbench.report.groups import (
    AXES,
    Group,
    load_frame,
    load_histories,
    make_groups,
    slug,
)
from optbench.report.properties import (
    correlation_table,
    drop_symmetry_zeros,
    error_table,
    property_table,
    property_values,
    reference_values,
    with_errors,
)
from optbench.report.property_figures import fig_error_vs_force, fig_md, fig_phonons, fig_property_errors
from optbench.report.references import (
    check_references,
    of_group,
    reference_table,
    seeds_line,
)
from optbench.report.render import Document, display, fmt
from optbench.report.tables import (
    baseline_table,
    default_budgets,
    default_target,
    equal_budget_table,
    flag_table,
    outlier_table,
    overview_table,
    summary_table,
    test_set_table,
    time_to_target_table,
)
from optbench.status import FINISHED

_OVERVIEW_COLS = {"variant": "variant", "optimizer": "optimizer", "runs": "runs", "statuses": "statuses",
                  "scipy_success": "SciPy success", "n_epa": "n with EPA", "epa_mean_mev": "EPA mean (meV/atom)",
                  "epa_ci_lo_mev": "95% CI low", "epa_ci_hi_mev": "95% CI high",
                  "force_mean_mev": "force mean (meV/Å)", "seconds_mean": "train s mean",
                  "outlier_seeds": "outlier seeds"}
_TEST_COLS = {"test set": "test set", "variant": "variant", "n": "n", "EPA mean": "EPA mean (meV/atom)",
              "EPA std": "EPA std", "force mean": "force mean (meV/Å)", "force std": "force std"}
_SUMMARY_COLS = {"quantity": "quantity", "unit": "unit", "variant": "variant", "n": "n", "mean": "mean",
                 "median": "median", "std": "std", "min": "min", "max": "max"}
_BASELINE_COLS = {"variant": "variant", "epa_ratio": "EPA mean / base", "force_ratio": "force mean / base",
                  "time_ratio": "time mean / base", "epa_n_pairs": "shared seeds",
                  "epa_mean_seed_ratio": "EPA per-seed ratio (mean)",
                  "epa_median_diff_mev": "EPA median diff (meV/atom)",
                  "epa_wilcoxon_W": "EPA W", "epa_p": "EPA p", "force_p": "force p", "epa_min_p": "smallest p possible"}
_TTT_COLS = {"variant": "variant", "reached": "seeds reached", "runs": "runs",
             "median_seconds": "median s (never if ≤ half)", "min_seconds": "fastest s",
             "median_configs": "median configs", "min_configs": "fewest configs"}
_FLAG_COLS = {"variant": "variant", "seed": "seed", "status": "status", "flag": "flag", "detail": "detail"}
_REFERENCE_COLS = {"variant": "variant", "label": "reference", "ref_n": "ref seeds",
                   "ref_epa_mev": "ref EPA (meV/atom)", "ref_force_mev": "ref force (meV/Å)", "ref_seconds": "ref wall s",
                   "ref_core_seconds": "ref core·s", "n": "seeds", "epa_mev": "EPA (meV/atom)",
                   "force_mev": "force (meV/Å)", "seconds": "train s", "core_seconds": "core·s",
                   "epa_ratio": "EPA / ref", "force_ratio": "force / ref", "seconds_ratio": "time / ref",
                   "core_seconds_ratio": "core·s / ref"}
_OUTLIER_COLS = {"variant": "variant", "seed": "seed", "quantity": "quantity", "unit": "unit", "value": "value",
                 "median": "variant median", "robust_z": "robust z"}


def _budget_display(tab: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Rows variant, one column per budget: "median [min-max] (n)" of best EPA meV/atom."""
    sub = tab[tab["axis"] == axis]
    unit = AXES[axis][2]
    out = {"variant": list(dict.fromkeys(sub["variant"]))}
    for b in dict.fromkeys(sub["budget"]):
        cells = []
        for v in out["variant"]:
            r = sub[(sub["variant"] == v) & (sub["budget"] == b)].iloc[0]
            cells.append("no eval" if r["n_with_eval"] == 0 else
                         f"{fmt(r['median_mev'])} [{fmt(r['min_mev'])}–{fmt(r['max_mev'])}] "
                         f"({r['n_with_eval']}/{r['runs']})")
        out[f"≤ {fmt(b)} {unit}".strip()] = cells
    return pd.DataFrame(out)


def _option_for(value, g: Group):
    """An option given for all groups, or per group as {"model/data": value}."""
    if isinstance(value, dict):
        return value.get(f"{g.model}/{g.data}")
    return value


def _unfinished(store: Store, experiment: str | None) -> list[str]:
    """Lines for the runs that are not finished (running, or interrupted: runner gone)."""
    every = store.runs_frame(experiment, finished_only=False)
    every = every[~every["status"].isin(FINISHED)]
    if every.empty:
        return []
    now = store.statuses(every["key"])
    counts = pd.Series([now.get(k, s) for k, s in zip(every["key"], every["status"])]).value_counts()
    return [f"{n} run(s) {s}, not in this report (no result yet)" for s, n in counts.items()]


def write_report(store, out_dir=None, *, experiment: str | None = None, baseline: str | None = None,
                 options: dict | None = None, keys=None, data_findings: list[str] | None = None,
                 references: pd.DataFrame | None = None) -> dict:
    """Write report.md, report.html (self-contained) and figures/*.png for the finished
    runs of `store` (a Store or the path of one), of `experiment` when given, only the
    runs `keys` when given (an experiment's runs on the current code: results of older
    code versions stay in the store but are not pooled with them), into
    `out_dir` (default: the store's folder / "report"); PNGs left in out_dir/figures by
    an earlier report and not drawn again are removed.

    baseline: a variant label or an optimizer name (default: options["baseline"], else
    SciPy BFGS, else MLIP's native trainer, else each group's first variant; the rule of
    optbench.experiments.baseline). A group where it names no variant, or an optimizer
    with several variants, takes the default instead and the report lists why.
    options: target_epa_mev (time-to-target, meV/atom; default the baseline's median
    final validation EPA), budgets_seconds / budgets_configs (equal-budget tables;
    default: see `default_budgets`), smooth (loss moving-average
    window in points; default len/50), baseline. target and budgets may be
    {"model/data": value} dicts.
    data_findings: one-line messages about the data (e.g. the `message` of each
    optbench.io.check_data finding: validation configurations also in the training set,
    duplicates, outliers), listed first under "What is missing or suspect" and first in
    "problems"; None or [] leaves the report as it is without them.
    references: reference results to compare with (optbench.report.references:
    REQUIRED_COLUMNS model, data, variant, label, seed, valid_epa_rmse in eV/atom,
    valid_force_rmse in eV/Å, train_seconds (wall), cores; one row per seed, e.g. an
    experiment's `references`): each group that has some gets a table "Against the
    reference results" (means of both sides, wall and core-seconds, ratios optbench /
    reference) and a line saying how many seeds each side has; None: no such table.

    Returns {"markdown", "html", "out_dir": Path, "figures": [Path], "tables":
    {name: DataFrame} (overview, summary, outliers, vs_baseline, equal_budget,
    time_to_target, flags, references; shown units), "problems": [str] (what is missing),
    "baselines" and "targets_mev": {(model, data): ...}}."""
    options = dict(options or {})
    unknown = set(options) - {"target_epa_mev", "budgets_seconds", "budgets_configs", "smooth", "baseline"}
    if unknown:
        raise ValueError(f"report options: unknown {', '.join(sorted(unknown))}")
    references = check_references(references)
    own = not isinstance(store, Store)
    if own:
        if not Path(store).is_file():
            raise FileNotFoundError(f"{store}: no results store there")
        store = Store(store)
    try:
        return _write(store, out_dir, experiment, baseline or options.get("baseline"), options, keys,
                      data_findings, references)
    finally:
        if own:
            store.close()


def _write(store: Store, out_dir, experiment, baseline, options, keys=None, data_findings=None,
           references: pd.DataFrame | None = None) -> dict:
    out = Path(out_dir) if out_dir is not None else store.path.parent / "report"
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs = load_frame(store, experiment, keys)
    left_out = 0 if keys is None else len(store.runs_frame(experiment)) - len(runs)
    histories = load_histories(store, runs["key"])
    props = (store.properties_frame(experiment), store.references_frame(experiment))
    curvature = store.curvature_frame(experiment)
    groups = make_groups(runs, histories, baseline)
    problems = [str(m) for m in data_findings or []] + _unfinished(store, experiment)
    if runs["code_version"].nunique() > 1:
        problems.append(f"runs of {runs['code_version'].nunique()} code versions are pooled; report the experiment "
                        "file (optbench report FILE.toml) to see only the current code's runs")
    if left_out:
        problems.append(f"{left_out} finished run(s) of other code versions (or no longer in the experiment file) "
                        "are in the store but not in this report; `optbench run` computes the current code's, "
                        "`optbench report STORE.sqlite` shows everything pooled")
    if runs.empty:
        problems.append("the store has no finished run" + (f" of experiment {experiment!r}" if experiment else "")
                        + (" on the current code" if keys is not None else ""))
    elif experiment is None and runs["experiment"].nunique() > 1:
        names = sorted(set(runs["experiment"]))
        problems.append(f"runs of {len(names)} experiments ({', '.join(names)}) are pooled by (model, data, "
                        "variant); pass experiment= to report one")
    doc = Document()
    title = f"optbench report: {experiment or 'all experiments'}"
    doc.heading(1, title)
    doc.para(f"Store {store.path.name}; {len(runs)} finished run(s) in {len(groups)} (model, data) group(s); "
             f"generated {_dt.datetime.now().isoformat(timespec='seconds')}; code version(s): "
             f"{', '.join(sorted(set(runs['code_version']))) or 'n/a'}.")
    doc.para("Units: EPA RMSE in meV/atom, force RMSE in meV/Å (norm of the per-atom force error), times in "
             "training seconds (evaluations excluded). Statistics are over seeds; std uses ddof=1; the 95% CI "
             "is a percentile bootstrap of the mean (2000 resamples). With 3-5 seeds the exact Wilcoxon "
             "two-sided p-value cannot go below 0.25 / 0.125 / 0.0625: the column 'smallest p possible' says "
             "what the seeds allow.")
    problems_at = len(doc.blocks)  # the list of problems goes here once all are known
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("overview", "summary", "outliers", "vs_baseline",
                                                             "equal_budget", "time_to_target", "flags",
                                                             "references", "test_sets", "properties",
                                                             "property_errors", "property_correlation",
                                                             "curvature", "curvature_correlation")}
    figures: list[Path] = []
    baselines, targets = {}, {}
    for g in groups:
        _group_section(doc, g, options, tables, figures, fig_dir, problems, baselines, targets, references, props)
        curvature_section(doc, g, curvature, tables,
                          lambda todo, g=g: _emit_figures(doc, g, todo, figures, fig_dir, problems))
    _references_without_runs(references, groups, problems)
    doc.blocks.insert(problems_at, ("h", (2, "What is missing or suspect")))
    doc.blocks.insert(problems_at + 1, ("ul", problems) if problems else ("p", "Nothing: every run has results."))
    for old in set(fig_dir.glob("*.png")) - set(figures):
        old.unlink()  # a figure of an earlier report that this one did not draw again
    md_path, html_path = out / "report.md", out / "report.html"
    write_text_atomic(md_path, doc.markdown())  # a report killed mid-write leaves the last complete one
    write_text_atomic(html_path, doc.html(title))
    frames = {k: (pd.concat(v, ignore_index=True) if any(len(x) for x in v) else pd.DataFrame())
              for k, v in tables.items()}
    return {"markdown": md_path, "html": html_path, "out_dir": out, "figures": figures, "tables": frames,
            "problems": problems, "baselines": baselines, "targets_mev": targets}


def _group_section(doc: Document, g: Group, options: dict, tables: dict, figures: list, fig_dir: Path,
                   problems: list, baselines: dict, targets: dict, references: pd.DataFrame | None = None,
                   props: tuple | None = None) -> None:
    """All tables and figures of one (model, data) group, into `doc` and the collectors."""
    doc.heading(2, g.title)
    doc.para(f"{len(g.runs)} run(s), {len(g.variants)} variant(s); {g.baseline_note}.")
    baselines[(g.model, g.data)] = g.baseline
    _note_missing(g, problems)

    outl = outlier_table(g)
    overview = overview_table(g, outl)
    summary = summary_table(g)
    vs_base = baseline_table(g)
    flags = flag_table(g)
    for flag, n in flags["flag"].value_counts().items():
        problems.append(f"{g.title}: {n} run(s) flagged '{flag}' (see Flags)")
    doc.heading(3, "Overview")
    doc.table(display(overview, _OVERVIEW_COLS))
    doc.heading(3, "Flags")
    doc.para("Runs to read with care. A run that stopped on a line-search failure did not converge, whatever "
             "its optimizer's success flag; identical results across seeds mean the seed never reached the run.")
    doc.table(display(flags, _FLAG_COLS))
    doc.heading(3, "Summary over seeds")
    doc.table(display(summary, _SUMMARY_COLS))
    doc.heading(3, "Outliers (|robust z| > 3.5, median/MAD within the variant)")
    doc.table(display(outl, _OUTLIER_COLS))
    doc.heading(3, f"Against the baseline ({g.baseline})")
    doc.para("Ratios of means (< 1: better or faster than the baseline); paired Wilcoxon signed-rank tests over "
             "the seeds both have (two-sided).")
    doc.table(display(vs_base, _BASELINE_COLS))

    refs = _references_section(doc, g, references)
    tests = test_set_table(g)
    if len(tests):
        doc.heading(3, "Held-out test sets (best-validation parameters)")
        doc.para("EPA RMSE in meV/atom and force RMSE in meV/Å on the data's test sets (never used for training, "
                 "early stopping or choosing the best parameters), mean and std over seeds.")
        doc.table(display(tests, _TEST_COLS))

    _properties_section(doc, g, props, tables, figures, fig_dir, problems)

    budgets = {axis: _option_for(options.get(f"budgets_{axis}"), g) or default_budgets(g, axis)
               for axis in ("seconds", "configs")}
    eq = equal_budget_table(g, budgets)
    doc.heading(3, "Equal budget: best validation EPA (meV/atom) within a budget")
    doc.para("Cells: median over seeds [min–max] (runs with an evaluation within the budget / runs). Compare "
             "variants at the same budget, not by their final numbers after runs of different lengths.")
    for axis in budgets:
        doc.table(_budget_display(eq, axis) if len(eq) else pd.DataFrame())

    target = _option_for(options.get("target_epa_mev"), g)
    target = float(target) if target is not None else default_target(g)
    targets[(g.model, g.data)] = target
    doc.heading(3, f"Time to target: validation EPA ≤ {fmt(target)} meV/atom")
    if math.isfinite(target):
        ttt = time_to_target_table(g, target)
        how = ("given" if _option_for(options.get("target_epa_mev"), g) is not None
               else "default: the baseline's median final validation EPA")
        doc.para(f"Target {how}. A median is 'never' when half the seeds or more never reached the target.")
        doc.table(display(ttt, _TTT_COLS))
    else:
        ttt = pd.DataFrame()
        doc.para("No target: no run of this group has a validation EPA.")

    for name, df in (("overview", overview), ("summary", summary), ("outliers", outl), ("vs_baseline", vs_base),
                     ("equal_budget", eq), ("time_to_target", ttt), ("flags", flags), ("references", refs),
                     ("test_sets", tests)):
        tables[name].append(df)
    _group_figures(doc, g, options, outl, figures, fig_dir, problems)


def _properties_section(doc: Document, g: Group, props: tuple | None, tables: dict, figures: list, fig_dir: Path,
                        problems: list) -> None:
    """Physical properties of the group's potentials against the reference (when stored)."""
    frame, refs = props if props is not None else (pd.DataFrame(), pd.DataFrame())
    vals = property_values(frame, g) if len(frame) else pd.DataFrame()
    if vals.empty:
        return
    ref, label = reference_values(refs)
    vals = drop_symmetry_zeros(with_errors(vals, ref))
    which = frame["which"].iloc[0]
    bad = frame[frame["key"].isin(g.runs["key"]) & (frame["status"] != "ok")]
    for (status, name), sub in bad.groupby(["status", "name"]):
        problems.append(f"{g.title}: {len(sub)} {name} result(s) {status} (see Physical properties)")
    doc.heading(3, f"Physical properties ({which} parameters)")
    doc.para("Each potential's crystal: values at its own equilibrium, mean ± std over seeds"
             + (f"; reference: {label}" if label else "; no reference") + ". Units as given per row; elastic "
             "constants that vanish by symmetry (below 0.01 GPa in every run) are left out.")
    table = property_table(vals, g, label)
    doc.table(table)
    if len(bad):
        doc.para("Not ok: " + "; ".join(f"{v} seed {s}: {r['structure']} {r['name']} {r['status']}: {r['message']}"
                                        for v, s, r in zip(bad["variant"], bad["seed"], bad["result"])))
    errors = error_table(vals, g)
    corr = correlation_table(vals, g) if len(errors) else pd.DataFrame()
    if len(errors):
        doc.heading(3, f"Property errors against {label}")
        doc.para("Relative error in % (value - reference) / |reference| where 'error in' says %, else the "
                 "difference in that unit; mean ± std over seeds.")
        doc.table(errors)
        doc.heading(3, "Does a better fit give better physics?")
        doc.para("Spearman rank correlation across runs of |property error| with the validation force RMSE of "
                 "the same parameters (rho > 0: a better force fit went with a closer property; p two-sided; "
                 "n/a with fewer than 4 runs or no spread).")
        doc.table(display(corr, {"structure": "structure", "quantity": "quantity", "runs": "runs", "rho": "rho",
                                 "p": "p"}))
    for name, df in (("properties", table), ("property_errors", errors), ("property_correlation", corr)):
        tables[name].append(df)
    todo = [("property_errors", "relative errors of a, C11, C12, C44, B, nu per variant", fig_property_errors,
             (vals, g)),
            ("property_vs_force", "property error against validation force error", fig_error_vs_force, (vals, g))]
    mine = frame[frame["key"].isin(g.runs["key"])]
    for structure in dict.fromkeys(vals["structure"]):
        if ((mine["name"] == "phonons") & (mine["structure"] == structure)).any():
            todo.append((f"phonons_{structure}", f"{structure} phonon bands", fig_phonons, (mine, refs, g, structure)))
        if ((mine["name"] == "md") & (mine["structure"] == structure)).any():
            todo.append((f"md_{structure}", f"{structure} MD temperature and g(r)", fig_md, (mine, refs, g, structure)))
    _emit_figures(doc, g, todo, figures, fig_dir, problems)


def _references_section(doc: Document, g: Group, references: pd.DataFrame | None) -> pd.DataFrame:
    """The table "Against the reference results" of group `g`, when it has reference rows."""
    if references is None or of_group(references, g.model, g.data).empty:
        return pd.DataFrame()
    table = reference_table(g, references)
    doc.heading(3, "Against the reference results")
    doc.para("Means over seeds of optbench's runs and of the reference's (validation EPA and force RMSE; "
             "wall seconds: the reference's training time, optbench's train seconds; core-seconds: seconds x "
             "the cores used, the reference's as given, optbench's the run's engine threads, 1 for MLIP's native "
             "trainer); ratios are "
             "optbench / reference (< 1: optbench lower or faster). " + seeds_line(table))
    doc.table(display(table, _REFERENCE_COLS))
    return table


def _references_without_runs(references: pd.DataFrame | None, groups: list[Group], problems: list) -> None:
    """A line per (model, data) of the references that no finished run has."""
    if references is None or references.empty:
        return
    have = {(g.model, g.data) for g in groups}
    for (model, data), sub in references.groupby(["model", "data"], sort=False):
        if (model, data) not in have:
            problems.append(f"reference results for {model} on {data} ({', '.join(dict.fromkeys(sub['label']))}) "
                            "but no finished run there to compare with")


def _note_missing(g: Group, problems: list) -> None:
    """Lines for what this group lacks: seeds, validation metrics, histories, baseline."""
    for v in g.variants:
        runs = g.of(v)
        if len(runs) < 2:
            problems.append(f"{g.title}, {v}: one run only (no std, CI or outlier test)")
        n_epa = int(np.isfinite(runs["valid_epa_rmse"]).sum())
        if n_epa < len(runs):
            problems.append(f"{g.title}, {v}: {len(runs) - n_epa} of {len(runs)} run(s) without a validation EPA")
        empty = sum(not (g.histories.get(k) or {}).get("loss") for k in runs["key"])
        if empty:
            problems.append(f"{g.title}, {v}: {empty} run(s) without a loss history")
        repeated = runs["seed"].value_counts()
        repeated = sorted(int(s) for s in repeated[repeated > 1].index)
        if repeated:
            problems.append(f"{g.title}, {v}: seed(s) {', '.join(map(str, repeated))} run more than once (other "
                            "code versions or experiments?); statistics pool them, paired tests take the first")
    if g.baseline_problem:
        problems.append(f"{g.title}: {g.baseline_note}")


def _group_figures(doc: Document, g: Group, options: dict, outl: pd.DataFrame, figures: list, fig_dir: Path,
                   problems: list) -> None:
    doc.heading(3, "Figures")
    todo = [("loss", "loss histories", fig_loss, (g, options.get("smooth"))),
            ("quality_cost", "validation EPA vs train time", fig_quality_cost, (g,)),
            ("ensembles", "validation EPA per variant over seeds", fig_box, (g, outl)),
            ("equal_budget", "best validation EPA within a budget", fig_equal_budget, (g,))]
    for opt in dict.fromkeys(g.runs["optimizer"]):
        for s in sweep_settings(g.runs[g.runs["optimizer"] == opt]):
            todo.append((f"sweep_{opt}_{s}", f"{opt}: validation EPA vs {s}", fig_sweep, (g, opt, s)))
    _emit_figures(doc, g, todo, figures, fig_dir, problems)


def _emit_figures(doc: Document, g: Group, todo: list, figures: list, fig_dir: Path, problems: list) -> None:
    """Draw each (name, caption, function, args) of `todo` into fig_dir and the document;
    a figure that fails or has no data is said in its place (and a failure in problems)."""
    for name, caption, fn, args in todo:
        try:
            png = fn(*args)
        except Exception as err:  # noqa: BLE001 - one bad figure must not cost the report; it is reported
            problems.append(f"{g.title}: figure '{caption}' could not be drawn: {type(err).__name__}: {err}")
            doc.para(f"(Figure '{caption}' could not be drawn: {type(err).__name__}: {err}.)")
            continue
        if png is None:
            doc.para(f"(No figure '{caption}': no data for it.)")
            continue
        path = fig_dir / f"{g.slug}_{slug(name)}.png"
        with atomic_output(path) as tmp:
            tmp.write_bytes(png)
        figures.append(path)
        doc.figure(os.path.relpath(path, fig_dir.parent), png, f"{g.title}: {caption}")
