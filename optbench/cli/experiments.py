"""Commands on experiment files and results stores: validate, run, report, export."""

from __future__ import annotations

import sys
from pathlib import Path

from optbench.experiments import Store, describe_plan, load_experiment


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
    """Check an experiment file and print the runs it expands to."""
    print(describe_plan(load_experiment(args.experiment, variables=_variables(args.set))))
    return 0


def cmd_run(args) -> int:
    """Run the unfinished runs of an experiment into its store, then write the report."""
    from optbench.experiments.runner import (
        run_experiment,  # dask and the training stack: only to run
    )

    exp = load_experiment(args.experiment, variables=_variables(args.set))
    summary = run_experiment(exp, workers=args.workers, scheduler=args.scheduler, retry_failed=args.retry_failed,
                             take_over=args.take_over)
    print(summary.text(), file=sys.stderr)
    if summary.interrupted:
        return 130
    if not args.no_report:
        from optbench.report import (
            write_report,  # matplotlib and pandas: only to report
        )

        out = write_report(exp.store_path, experiment=exp.name, baseline=exp.baseline, options=exp.report,
                           keys=exp.keys())
        print(f"report: {out['markdown']} and {out['html']}", file=sys.stderr)
    return 0


def _store_and_experiment(target: str, variables: dict):
    """(store path, experiment name or None, baseline, report options, keys of the
    current code's runs or None) from a store file or an experiment file."""
    path = Path(target)
    if path.suffix == ".toml":
        exp = load_experiment(path, variables=variables)
        return exp.store_path, exp.name, exp.baseline, exp.report, exp.keys()
    if not path.is_file():
        raise ValueError(f"{path}: no such store (give the store's .sqlite file or the experiment's .toml)")
    return path, None, None, {}, None


def cmd_report(args) -> int:
    """Write report.md and report.html for a store."""
    from optbench.report import write_report

    store, name, baseline, options, keys = _store_and_experiment(args.target, _variables(args.set))
    out = write_report(store, args.output, experiment=args.experiment or name, baseline=args.baseline or baseline,
                       options=options, keys=keys)
    print(f"report: {out['markdown']} and {out['html']}")
    return 0


def cmd_export(args) -> int:
    """Write the store's runs as CSV or Parquet."""
    store, name, _, _, _ = _store_and_experiment(args.target, _variables(args.set))
    with Store(store) as st:
        path = st.export(args.output, experiment=args.experiment or name)
    print(f"wrote {path}")
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
    sp.add_argument("--workers", type=int, help="worker processes (default: the machine's cores)")
    sp.add_argument("--scheduler", help="run on Dask: 'local' for a LocalCluster of --workers processes, or a "
                    "scheduler address tcp://host:port (a cluster you trust: it runs pickled work)")
    sp.add_argument("--retry-failed", action="store_true", help="run the failed runs again too")
    sp.add_argument("--take-over", action="store_true",
                    help="take runs still claimed by a runner on another host (one you know has stopped)")
    sp.add_argument("--no-report", action="store_true", help="do not write the report at the end")
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
    variables(sp)
    sp.set_defaults(func=cmd_export)
