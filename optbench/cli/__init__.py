"""``optbench`` command line: the same jobs as MLIP's ``mlp``, in MLIP's file formats, so
users can check the embedded engine against MLIP by themselves, and the experiment commands.

    optbench efs POT CONFIGS -o OUT.cfg       energies, forces, stress (mlp calculate_efs)
    optbench errors POT CONFIGS [--json]      error report (mlp check_errors)
    optbench template MODEL --species N -o F  an untrained MTP of a level, or any spec ("etn shape=1;6;3")
    optbench info POT                         the potential's settings and parameter groups
    optbench train POT DATA --optimizer NAME  one training run with any optimizer (mlp train)
    optbench optimizers                       the optimizers, their hyperparameters and defaults
    optbench validate EXPERIMENT.toml         check an experiment file, print the runs it expands to
    optbench run EXPERIMENT.toml              run (or resume) its sweep into its store, then report
    optbench report STORE|EXPERIMENT          tables and figures: report.md and report.html
    optbench export STORE -o runs.csv         one row per run, as CSV or Parquet
    optbench properties POT --structure S     EOS, elastic constants, phonons, MD, defects (vs a reference)
    optbench analyze curvature POT DATA       Hessian / Gauss-Newton spectra of the loss (or STORE KEY)

One module per group of subcommands: potentials.py (efs, errors, template, info),
training.py (train, optimizers), experiments.py (validate, run, report, export),
properties.py (properties), analysis.py (analyze); their
shared options in arguments.py.
"""

from __future__ import annotations

import argparse
import sys

from optbench.cli import analysis, experiments, potentials, properties, training


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``optbench``."""
    p = argparse.ArgumentParser(prog="optbench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for group in (potentials, training, experiments, properties, analysis):
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``optbench`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        # Data, format and engine errors all carry a message naming the file/field.
        print(f"optbench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
