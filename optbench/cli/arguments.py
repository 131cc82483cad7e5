"""What several commands share: the engine and data options, reading the data, the
engine a command uses, and the check that a potential's file extension fits its kind."""

from __future__ import annotations

from optbench.engine import load_engine
from optbench.engine.capi import SUFFIXES
from optbench.io import FORMATS, read_dataset


def add_engine_options(sp, data: bool = True) -> None:
    """--lib and --threads, and with `data` the data options --format and --species."""
    sp.add_argument("--lib", help="path of another mlipc.h library (default: the embedded engine)")
    sp.add_argument("--threads", type=int, help="threads for the engine (default: OpenMP's)")
    if data:
        sp.add_argument("--format", choices=list(FORMATS), help="data format (default: by extension)")
        sp.add_argument("--species", help="comma-separated elements giving the type order, e.g. Ag,Pd")


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
    species = species_option(args)
    return read_dataset(args.configs, fmt=args.format, **({"species": species} if species else {}))


def check_suffix(path, kind: str) -> None:
    """ValueError unless `path` has an extension a potential of `kind` is saved in."""
    if not str(path).endswith(SUFFIXES[kind]):
        raise ValueError(f"{path}: {kind.upper()} potentials are saved as {' or '.join(SUFFIXES[kind])}")
