"""Commands on a potential file, the jobs of MLIP's `mlp`: efs (calculate_efs), errors
(check_errors), template, info."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

from optbench.cli.arguments import (
    add_engine_options,
    check_suffix,
    engine_of,
    read_configs,
)
from optbench.io import DataSet, write_cfg
from optbench.metrics import compute_metrics, format_mlip_report


def _print_notes(pot) -> None:
    """What reading the potential file passed over (engine/README.md), to stderr."""
    for note in pot.info().get("notes", []):
        print(f"note: {note}", file=sys.stderr)


def _predict(args):
    eng = engine_of(args)
    pot = eng.load_potential(args.potential)
    _print_notes(pot)
    data = read_configs(args)
    ds = eng.dataset(data, pot.cutoff)
    return pot, data, eng.predict(pot, ds)


def cmd_efs(args) -> int:
    """Write the configurations with the potential's energies, forces and PlusStress."""
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
    t = time.perf_counter()
    _, data, pred = _predict(args)
    m = compute_metrics(data.configs, *pred)
    if m.energy.count == 0 and m.forces.count == 0 and m.stress.count == 0:
        raise ValueError(f"{args.configs}: no configuration has an energy, force or stress label, so there is "
                         "nothing to compare (extended XYZ: name the keys with --energy-key, --forces-key, "
                         "--virial-key)")
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


def _template_spec(args) -> str:
    """The spec of `optbench template`: an MTP level ("16") or a spec ("mtp level=16",
    "etn shape=1;6;3 ranks=1;1"), completed by the command's species and radial options
    where the spec does not set them."""
    text = args.model.strip()
    if text.isdigit():
        text = f"mtp level={text}"
    elif text.split()[0] not in ("mtp", "etn"):
        raise ValueError(f"model {args.model!r}: give an MTP level (e.g. 16) or a spec starting with 'mtp' or 'etn'")
    for key, value in (("species", args.species), ("min_dist", args.min_dist), ("max_dist", args.max_dist),
                       ("radial_basis_size", args.radial_basis_size)):
        if f"{key}=" not in text:
            text += f" {key}={value}"
    return text


def cmd_template(args) -> int:
    """Write an untrained potential: an MTP of a level (engine-generated basis) or any spec."""
    pot = engine_of(args).potential_from_spec(_template_spec(args))
    info = pot.info()
    check_suffix(args.output, info["kind"])
    pot.save(args.output)
    if info["kind"] == "mtp":
        what = (f"level-{info['level']} MTP ({info['species_count']} species, {info['n_params']} parameters, "
                f"{info['alpha_scalar_moments']} basis functions)")
    else:
        what = (f"ETN (shape {info['shape']}, ranks {info['ranks']}, lmax {info['lmax']}, "
                f"{info['species_count']} species, {info['n_params']} parameters)")
    print(f"wrote an untrained {what} to {args.output}", file=sys.stderr)
    return 0


def cmd_info(args) -> int:
    """Print the potential's description as JSON."""
    pot = engine_of(args).load_potential(args.potential)
    json.dump(pot.info(), sys.stdout, indent=2)
    print()
    return 0


def register(sub) -> None:
    """The subcommands efs, errors, template, info."""
    sp = sub.add_parser("efs", help="energies, forces and stress of configurations (like mlp calculate_efs)")
    sp.add_argument("potential", help=".mtp / .almtp file")
    sp.add_argument("configs", help="configurations (.cfg, MLIP-4 JSON, extxyz, pymatgen JSON)")
    sp.add_argument("-o", "--output", required=True, help="output .cfg")
    add_engine_options(sp)
    sp.set_defaults(func=cmd_efs)

    sp = sub.add_parser("errors", help="error report of a potential on labelled data (like mlp check_errors)")
    sp.add_argument("potential")
    sp.add_argument("configs")
    sp.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_engine_options(sp)
    sp.set_defaults(func=cmd_errors)

    sp = sub.add_parser("template", help="write an untrained MTP of a given level, or an untrained potential of a spec")
    sp.add_argument("model", help="MTP level (even, 2..28), or a spec: 'mtp level=16 ...', "
                    "'etn shape=1;6;3 ranks=1;1 lmax=2 ...' (engine/README.md)")
    sp.add_argument("--species", type=int, required=True, help="number of species")
    sp.add_argument("-o", "--output", required=True, help="output file (.mtp or .almtp for an MTP, .json for an ETN)")
    sp.add_argument("--min-dist", type=float, default=2.0, help="radial basis min_dist, A (default 2.0)")
    sp.add_argument("--max-dist", type=float, default=5.0, help="cutoff, A (default 5.0)")
    sp.add_argument("--radial-basis-size", type=int, default=8, help="Chebyshev basis size (default 8)")
    add_engine_options(sp, data=False)
    sp.set_defaults(func=cmd_template)

    sp = sub.add_parser("info", help="describe a potential file")
    sp.add_argument("potential")
    add_engine_options(sp, data=False)
    sp.set_defaults(func=cmd_info)
