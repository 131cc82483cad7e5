"""What several commands share: the engine and data options, reading the data, the
engine a command uses, and the check that a potential's file extension fits its kind."""

from __future__ import annotations

import argparse
import math

from optbench.engine import MAX_THREADS, load_engine
from optbench.engine.capi import SUFFIXES
from optbench.io import FORMATS, read_dataset
from optbench.io.formats import LABEL_KEYS


def integer(minimum: int, maximum: int | None = None):
    """An argparse type: a whole number in [minimum, maximum], else a message naming the
    limits (argparse adds the option's name)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            limits = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a whole number {limits}")
        return value
    return parse


def number(above: float | None = None, below: float | None = None, minimum: float | None = None):
    """An argparse type: a finite number, > above, < below, >= minimum as given."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"{text} must be > {above:g}")
        if below is not None and not value < below:
            raise argparse.ArgumentTypeError(f"{text} must be < {below:g}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be >= {minimum:g}")
        return value
    return parse


def add_engine_options(sp, data: bool = True) -> None:
    """--lib and --threads, and with `data` the data options --format and --species."""
    sp.add_argument("--lib", help="path of another mlipc.h library (default: the embedded engine)")
    sp.add_argument("--threads", type=integer(1, MAX_THREADS),
                    help=f"threads for the engine, 1 to {MAX_THREADS} (default: OpenMP's)")
    if data:
        sp.add_argument("--format", choices=list(FORMATS), help="data format (default: by extension)")
        sp.add_argument("--species", help="comma-separated elements giving the type order, e.g. Ag,Pd")
        for label, keys in (("energy", "energy, vasp_energy, REF_energy"), ("forces", "forces, vasp_force, ..."),
                            ("virial", "virial, vasp_virial, REF_virial"), ("stress", "stress")):
            sp.add_argument(f"--{label}-key", metavar="KEY",
                            help=f"extended XYZ: the key of the {label} label (default: the first of {keys} present)")


def species_option(args) -> list[str] | None:
    """The --species list, or None."""
    if not getattr(args, "species", None):
        return None
    return [s.strip() for s in args.species.split(",") if s.strip()]


def engine_of(args):
    """The C-ABI engine of --lib (default: the embedded one), with --threads applied."""
    eng = load_engine(getattr(args, "lib", None))
    if getattr(args, "threads", None):
        eng.set_num_threads(args.threads)
    return eng


def read_configs(args):
    """The data set of the `configs` argument, in --format, with --species."""
    return read_dataset(args.configs, fmt=args.format, **data_options(args))


def data_options(args) -> dict:
    """The reader options of the data options: species, and the extended XYZ label keys."""
    species = species_option(args)
    out = {"species": species} if species else {}
    out.update({k: getattr(args, k) for k in LABEL_KEYS if getattr(args, k, None)})
    return out


def check_suffix(path, kind: str) -> None:
    """ValueError unless `path` has an extension a potential of `kind` is saved in."""
    if not str(path).endswith(SUFFIXES[kind]):
        raise ValueError(f"{path}: {kind.upper()} potentials are saved as {' or '.join(SUFFIXES[kind])}")
