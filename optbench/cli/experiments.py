"""Commands on experiment files and results stores: validate, run, report, export."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from optbench.cli.arguments import integer
from optbench.experiments import Store, describe_plan, load_experiment
from optbench.experiments.data_check import data_findings
from optbench.experiments.references import describe_references
from optbench.io import atomic_output, check_writable


def _variables(items: list[str] | None) -> dict[str, str]:
    """The --set NAME=VALUE options as {NAME: VALUE}."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE (a [paths] variable of the experiment)")
        out[key] = value
    return out


def cmd_validate(args) -> int:
    """Check an experiment file and print the runs it expands to, then what its data sets
    hold that deserves a warning (validation configurations also in training, duplicates,
    outliers, atoms too close)."""
    exp = load_experiment(args.experiment, variables=_variables(args.set))
    print(describe_plan(exp))
    for line in describe_references(exp.references):
        print(line)
    _warn(data_findings(exp))
    return 0


def _warn(findings: list[str]) -> None:
    for line in findings:
        print(f"warning: {line}", file=sys.stderr)


def cmd_run(args) -> int:
    """Run the unfinished runs of an experiment into its store, compute the [properties]
    of the finished ones, then write the report. Stopped by SIGINT or SIGTERM: one line on
    stderr, exit code 128 + the signal's number (130, 143)."""
    try:
        exp = load_experiment(args.experiment, variables=_variables(args.set))
        if args.all_versions and not args.properties_only:
            raise ValueError("--all-versions goes with --properties-only (training always uses the current code)")
        if args.properties_only and not exp.properties:
            raise ValueError(f"--properties-only: {args.experiment} has no [properties] section")
        findings = data_findings(exp)
        _warn(findings)
        if not args.properties_only:
            from optbench.experiments.runner import (
                run_experiment,  # dask and the training stack: only to run
            )

            summary = run_experiment(exp, workers=args.workers, scheduler=args.scheduler,
                                     retry_failed=args.retry_failed, take_over=args.take_over)
            print(summary.text(), file=sys.stderr)
            if summary.interrupted:
                return 128 + summary.stopped_by
        elif not exp.store_path.is_file():
            raise ValueError(f"--properties-only: no results yet ({exp.store_path} does not exist)")
        if exp.properties:
            from optbench.experiments.properties_pass import compute_experiment_properties

            print(compute_experiment_properties(exp, workers=args.workers, all_versions=args.all_versions).text(),
                  file=sys.stderr)
        if not args.no_report:
            from optbench.report import (
                write_report,  # matplotlib and pandas: only to report
            )

            out = write_report(exp.store_path, experiment=exp.name, baseline=exp.baseline, options=exp.report,
                               keys=None if args.all_versions else exp.keys(), data_findings=findings,
                               references=exp.references)
            print(f"report: {out['markdown']} and {out['html']}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:  # Ctrl-C before or after the sweep (during it, run_experiment handles it)
        print("\noptbench run: stopped by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT


def _store_and_experiment(target: str, variables: dict):
    """(store path, experiment or None) from a store file or an experiment file; a store
    that does not exist yet is an error (opening it would create an empty one)."""
    path = Path(target)
    if path.suffix == ".toml":
        exp = load_experiment(path, variables=variables)
        if not exp.store_path.is_file():
            raise ValueError(f"{path}: no results yet ({exp.store_path} does not exist): run `optbench run {path}` "
                             "first")
        return exp.store_path, exp
    if not path.is_file():
        raise ValueError(f"{path}: no such store (give the store's .sqlite file or the experiment's .toml)")
    return path, None


def _check_baseline(store_path: Path, baseline: str, experiment: str | None) -> None:
    """ValueError naming --baseline when no run of the store has that variant or optimizer."""
    with Store(store_path) as st:
        runs = st.runs_frame(experiment)
    known = set(runs["variant"]) | set(runs["optimizer"])
    if baseline not in known:
        raise ValueError(f"--baseline {baseline!r}: no variant or optimizer of that name in {store_path}; "
                         f"variants: {'; '.join(dict.fromkeys(runs['variant'])) or 'none'}")


def cmd_report(args) -> int:
    """Write report.md and report.html for a store."""
    from optbench.report import write_report

    store, exp = _store_and_experiment(args.target, _variables(args.set))
    experiment = args.experiment or (exp.name if exp else None)
    if args.baseline:
        _check_baseline(store, args.baseline, experiment)
    findings = data_findings(exp) if exp else None
    _warn(findings or [])
    out = write_report(store, args.output, experiment=experiment,
                       baseline=args.baseline or (exp.baseline if exp else None),
                       options=exp.report if exp else {}, keys=exp.keys() if exp else None, data_findings=findings,
                       references=exp.references if exp else None)
    print(f"report: {out['markdown']} and {out['html']}")
    return 0


def cmd_export(args) -> int:
    """Write the store's runs (or with --properties its physical properties) as CSV or Parquet."""
    output = Path(args.output)
    if output.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{output}: export writes .csv or .parquet files")
    check_writable(output, "-o")
    store, exp = _store_and_experiment(args.target, _variables(args.set))
    with Store(store) as st, atomic_output(output) as tmp:
        st.export(tmp, experiment=args.experiment or (exp.name if exp else None),
                  what="properties" if args.properties else "runs")
    print(f"wrote {output}")
    return 0


def register(sub) -> None:
    """The subcommands validate, run, report and export."""
    def variables(sp) -> None:
        sp.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="set a [paths] variable of the experiment file (repeatable)")

    sp = sub.add_parser("validate", help="check an experiment file and print the runs it expands to")
    sp.add_argument("experiment", help="experiment file (.toml)")
    variables(sp)
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("run", help="run or resume an experiment's sweep, then write its report")
    sp.add_argument("experiment", help="experiment file (.toml)")
    sp.add_argument("--workers", type=integer(1, 4096), help="worker processes (default: the machine's cores)")
    sp.add_argument("--scheduler", help="run on Dask: 'local' for a LocalCluster of --workers processes, or a "
                    "scheduler address tcp://host:port (a cluster you trust: it runs pickled work)")
    sp.add_argument("--retry-failed", action="store_true", help="run the failed runs again too")
    sp.add_argument("--take-over", action="store_true",
                    help="take runs still claimed by a runner on another host (one you know has stopped)")
    sp.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    sp.add_argument("--properties-only", action="store_true",
                    help="train nothing: compute the [properties] of the runs already in the store, then report")
    sp.add_argument("--all-versions", action="store_true",
                    help="with --properties-only: the runs of every code version in the store (the report then "
                         "pools them), not only the current code's")
    variables(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("report", help="tables and figures of a store: report.md and report.html")
    sp.add_argument("target", help="the store (.sqlite) or the experiment file (.toml) that names it")
    sp.add_argument("-o", "--output", help="output folder (default: report/ beside the store)")
    sp.add_argument("--experiment", help="only this experiment's runs (a store may hold several)")
    sp.add_argument("--baseline", help="variant to divide by (default: the experiment's baseline)")
    variables(sp)
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("export", help="the store's runs as CSV or Parquet (one row per run)")
    sp.add_argument("target", help="the store (.sqlite) or the experiment file (.toml) that names it")
    sp.add_argument("-o", "--output", required=True, help="output file, .csv or .parquet")
    sp.add_argument("--experiment", help="only this experiment's runs")
    sp.add_argument("--properties", action="store_true",
                    help="the physical properties instead: one row per run, property, structure and value, with "
                         "the reference's value")
    variables(sp)
    sp.set_defaults(func=cmd_export)
