"""``optbench`` command line: the same jobs as MLIP's ``mlp``, in MLIP's file formats, so
users can check the embedded engine against MLIP by themselves.

    optbench efs POT CONFIGS -o OUT.cfg       energies, forces, stress (mlp calculate_efs)
    optbench errors POT CONFIGS [--json]      error report (mlp check_errors)
    optbench template LEVEL --species N -o F  an untrained MTP of level N
    optbench info POT                         the potential's settings and parameter groups
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _engine(args):
    from optbench.adapters.capi import Engine
    eng = Engine(args.lib) if getattr(args, "lib", None) else Engine()
    if getattr(args, "threads", None):
        eng.set_num_threads(args.threads)
    return eng


def _read(args):
    from optbench.harness.data import read_dataset
    kw = {}
    if getattr(args, "species", None):
        kw["species"] = [s.strip() for s in args.species.split(",") if s.strip()]
    return read_dataset(args.configs, fmt=args.format, **kw)


def _predict(args):
    eng = _engine(args)
    pot = eng.load_potential(args.potential)
    data = _read(args)
    ds = eng.dataset(data, pot.cutoff)
    return pot, data, eng.predict(pot, ds)


def cmd_efs(args) -> int:
    """Write the configurations with the potential's energies, forces and PlusStress."""
    from dataclasses import replace
    from optbench.harness.data import DataSet, write_cfg
    _, data, (e, f, s) = _predict(args)
    out, start = [], 0
    for k, c in enumerate(data.configs):
        n = c.n_atoms
        out.append(replace(c, energy=float(e[k]), forces=f[start:start + n].copy(),
                           stress=s[k].copy() if c.cell is not None else None))
        start += n
    write_cfg(DataSet(out, species=data.species), args.output)
    print(f"wrote {len(out)} configurations to {args.output}", file=sys.stderr)
    return 0


def cmd_errors(args) -> int:
    """Print MLIP's error report (or JSON with --json) of a potential on labelled data."""
    from optbench.harness.metrics import compute_metrics, format_mlip_report
    t = time.perf_counter()
    _, data, pred = _predict(args)
    m = compute_metrics(data.configs, *pred)
    if args.json:
        d = m.to_dict()
        d["units"] = {"energy": "eV", "energy_per_atom": "eV/atom", "forces": "eV/A (norm of per-atom difference)",
                      "force_component_rmse": "eV/A", "stress": "eV (Frobenius norm of virial difference)",
                      "virial_pressure": "GPa"}
        json.dump(d, sys.stdout, indent=2, allow_nan=True)
        print()
    else:
        sys.stdout.write(format_mlip_report(m))
        print(f"{time.perf_counter() - t:.2f} s wall")
    return 0


def cmd_template(args) -> int:
    """Write an untrained MTP of the given level (engine-generated basis)."""
    eng = _engine(args)
    spec = (f"mtp level={args.level} species={args.species} min_dist={args.min_dist} "
            f"max_dist={args.max_dist} radial_basis_size={args.radial_basis_size}")
    pot = eng.potential_from_spec(spec)
    pot.save(args.output)
    info = pot.info()
    print(f"wrote level-{args.level} MTP ({info['species_count']} species, {info['n_params']} parameters, "
          f"{info['alpha_scalar_moments']} basis functions) to {args.output}", file=sys.stderr)
    return 0


def cmd_info(args) -> int:
    """Print the potential's description as JSON."""
    pot = _engine(args).load_potential(args.potential)
    json.dump(pot.info(), sys.stdout, indent=2)
    print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``optbench``."""
    p = argparse.ArgumentParser(prog="optbench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, data=True):
        sp.add_argument("--lib", help="path of another mlipc.h library (default: the embedded engine)")
        sp.add_argument("--threads", type=int, help="threads for the engine (default: OpenMP's)")
        if data:
            sp.add_argument("--format", choices=["cfg", "mlip4", "pymatgen", "extxyz"],
                            help="data format (default: by extension)")
            sp.add_argument("--species", help="comma-separated elements giving the type order, e.g. Ag,Pd")

    sp = sub.add_parser("efs", help="energies, forces and stress of configurations (like mlp calculate_efs)")
    sp.add_argument("potential", help=".mtp / .almtp file")
    sp.add_argument("configs", help="configurations (.cfg, MLIP-4 JSON, extxyz, pymatgen JSON)")
    sp.add_argument("-o", "--output", required=True, help="output .cfg")
    common(sp)
    sp.set_defaults(func=cmd_efs)

    sp = sub.add_parser("errors", help="error report of a potential on labelled data (like mlp check_errors)")
    sp.add_argument("potential")
    sp.add_argument("configs")
    sp.add_argument("--json", action="store_true", help="print the metrics as JSON")
    common(sp)
    sp.set_defaults(func=cmd_errors)

    sp = sub.add_parser("template", help="write an untrained MTP of a given level")
    sp.add_argument("level", type=int, help="MTP level, even, 2..28")
    sp.add_argument("--species", type=int, required=True, help="number of species")
    sp.add_argument("-o", "--output", required=True, help="output file (.mtp or .almtp)")
    sp.add_argument("--min-dist", type=float, default=2.0, help="radial basis min_dist, A (default 2.0)")
    sp.add_argument("--max-dist", type=float, default=5.0, help="cutoff, A (default 5.0)")
    sp.add_argument("--radial-basis-size", type=int, default=8, help="Chebyshev basis size (default 8)")
    common(sp, data=False)
    sp.set_defaults(func=cmd_template)

    sp = sub.add_parser("info", help="describe a potential file")
    sp.add_argument("potential")
    common(sp, data=False)
    sp.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``optbench`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, RuntimeError) as exc:
        # Data, format and engine errors all carry a message naming the file/field.
        print(f"optbench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
