"""optbench properties: the physical properties of one potential file, against a reference.

    optbench properties tuned.almtp --species Ag,Pd --structure Ag-fcc --structure Pd-fcc \\
        --compute eos,elastic,phonons --reference emt -o props.json
"""

from __future__ import annotations

import json
import sys
import tomllib

from optbench.cli.arguments import integer, species_option
from optbench.engine import MAX_THREADS
from optbench.io import check_writable, write_text_atomic


def _settings(items: list[str] | None) -> dict[str, dict]:
    """--set PROPERTY.KEY=VALUE (VALUE a TOML value: 600, 0.01, [4, 4, 4], "x") -> {property: {key: value}}."""
    from optbench.properties import check_settings

    out: dict[str, dict] = {}
    for item in items or []:
        name_key, sep, raw = item.partition("=")
        prop, dot, key = name_key.strip().partition(".")
        if not sep or not dot or not key:
            raise ValueError(f"--set {item!r}: expected PROPERTY.KEY=VALUE, e.g. md.temperature=600")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out.setdefault(prop, {})[key] = value
    for prop, table in out.items():
        check_settings(prop, table)
    return out


def _rows(results, reference) -> list[list[str]]:
    from optbench.report.properties import is_relative, property_error
    from optbench.report.render import fmt

    ref = {(r.structure, r.name, q): v for r in reference for q, v in r.values.items()}
    rows = []
    for r in results:
        if r.status != "ok":
            rows.append([r.structure, r.name, "", r.status, "", "", r.message])
            continue
        for q, v in r.values.items():
            rv = ref.get((r.structure, r.name, q))
            err = "" if rv is None else fmt(property_error(v, rv, q)) + (" %" if is_relative(q) else "")
            rows.append([r.structure, r.name, q, fmt(v), r.units.get(q, ""), "" if rv is None else fmt(rv), err])
    return rows


def cmd_properties(args) -> int:
    """Compute the asked properties of POT on each --structure (and of the reference),
    print a table, write the results as JSON with -o."""
    from optbench.properties import PROPERTIES, compute_properties
    from optbench.properties.calculators import calculator_for
    from optbench.properties.references import reference_results

    compute = [c.strip() for c in args.compute.split(",") if c.strip()]
    for c in compute:
        if c not in PROPERTIES:
            raise ValueError(f"--compute: unknown property {c!r}; known: {', '.join(PROPERTIES)}")
    settings = _settings(args.set)
    if args.reference == "dft-from-data" and not args.dft_data:
        raise ValueError("--reference dft-from-data needs --dft-data DIR (the folder of Mo_Elastic.json, ...)")
    if args.output:
        check_writable(args.output, "-o")
    calc = calculator_for(args.potential, species_option(args), threads=args.threads or 1)
    say = (lambda line: print(line, file=sys.stderr)) if not args.quiet else None
    results = compute_properties(calc, args.structure, compute, settings, progress=say)
    reference = []
    if args.reference != "none":
        reference = reference_results(args.reference, args.structure, compute, settings, dft_data=args.dft_data,
                                      progress=(lambda line: say(f"reference: {line}")) if say else None)
    rows = _rows(results, reference)
    head = ["structure", "property", "quantity", "value", "unit", f"{args.reference}", "error"]
    if args.reference == "none":  # no reference: no columns for it; a status line keeps its message
        head, rows = head[:5], [r[:5] if r[2] else r[:4] + [r[6]] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if args.output:
        write_text_atomic(args.output, json.dumps({"potential": str(args.potential), "reference": args.reference,
                                                   "results": [r.to_dict() for r in results],
                                                   "reference_results": [r.to_dict() for r in reference]},
                                                  indent=1) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0 if all(r.status == "ok" for r in results) else 1


def register(sub) -> None:
    """The subcommand properties."""
    sp = sub.add_parser("properties", help="physical properties of a potential (EOS, elastic, phonons, MD, defects)",
                        description="Lattice constant and bulk modulus, elastic constants, phonons, MD stability, "
                                    "vacancy, surface and stacking-fault energies of a potential file, against a "
                                    "reference. Exit status 1 when a property is unstable or failed.")
    sp.add_argument("potential", help="a potential: .mtp/.almtp/ETN .json (engine; needs --species), .pth (sevenn), "
                                      ".model (MACE), or 'emt' / '7net-0'")
    sp.add_argument("--structure", action="append", required=True,
                    help="a structure FORMULA-PROTOTYPE[@A], e.g. Ag-fcc, AgPd-L10, Mo-bcc@3.16 (repeatable)")
    sp.add_argument("--compute", default="eos,elastic",
                    help="comma-separated: eos, elastic, phonons, md, vacancy, surface, gsfe (default eos,elastic)")
    sp.add_argument("--reference", choices=["none", "emt", "dft-from-data"], default="none",
                    help="compare with ASE's EMT or with DFT values fitted to the data in --dft-data (default none)")
    sp.add_argument("--dft-data", help="the folder of the DFT files for --reference dft-from-data (nbmotaw_snap)")
    sp.add_argument("--species", help="engine potentials: the element of each species index, e.g. Ag,Pd")
    sp.add_argument("--set", action="append", metavar="PROPERTY.KEY=VALUE",
                    help="a property setting, e.g. md.temperature=600, eos.n_points=7 (repeatable)")
    sp.add_argument("--threads", type=integer(1, MAX_THREADS), help="engine threads (default 1)")
    sp.add_argument("-o", "--output", help="write the results (and the reference's) as JSON")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    sp.set_defaults(func=cmd_properties)
