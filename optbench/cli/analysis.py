"""optbench analyze curvature: the spectra of a potential's training loss (or a stored
run's analysis).

    optbench analyze curvature pot.almtp train.cfg [--species Ag,Pd] [--json out.json]
    optbench analyze curvature sevennet:tuned.pth mo.json --dense-max-params 0
    optbench analyze curvature STORE.sqlite RUN_KEY      # what an [analysis] run stored
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from optbench.cli.arguments import add_engine_options, integer, number, read_configs
from optbench.io import check_writable, write_text_atomic
from optbench.report.render import fmt


def _print_point(res: dict, out=None) -> None:
    out = out or sys.stdout
    head = f"step {res['step']} ({res.get('stage', '')}) " if "step" in res else ""
    print(f"{head}{res.get('n_params', '?')} parameters", file=out)
    for which in ("hessian", "gauss_newton", "effective"):
        spec = res.get(which)
        if not spec:
            continue
        s = spec.get("summary") or {}
        print(f"  {which:<13s} {spec.get('method', ''):<8s} max {fmt(s.get('lambda_max'))}  min "
              f"{fmt(s.get('lambda_min'))}  negative {fmt(s.get('n_negative'))}  condition (positive part) "
              f"{fmt(s.get('condition_number'))}  log10 spread {fmt(s.get('anisotropy'))}", file=out)
    if res.get("preconditioner"):
        print(f"  preconditioner: {res['preconditioner']['kind']}: {res['preconditioner']['description']}", file=out)


def _stored(store_path: Path, key: str) -> int:
    from optbench.experiments.store import Store

    with Store(store_path) as st:
        frame = st.curvature_frame()
    rows = frame[frame["key"] == key]
    if rows.empty:
        raise ValueError(f"{store_path}: no curvature analysis stored for run {key!r} (an experiment with "
                         "[analysis] curvature = true stores one)")
    for res in rows["result"]:
        _print_point(res)
    return 0


def cmd_curvature(args) -> int:
    """Print the Hessian and Gauss-Newton spectra of POT's mean loss on DATA (or a stored
    run's analysis: STORE.sqlite KEY); --json writes the whole result."""
    if args.target.endswith(".sqlite"):
        return _stored(Path(args.target), args.configs)
    from optbench.analysis.points import analyze_point
    from optbench.cli.training import foundation_model
    from optbench.objective import LossWeights, build_objective
    from optbench.properties.base import jsonable

    if args.json:
        check_writable(args.json, "--json")
    weights = LossWeights(energy=args.energy_weight, forces=args.force_weight, stress=args.stress_weight)
    data = read_configs(args)
    model = foundation_model(args.target) or {"engine": "capi" if args.lib else "embedded", "lib": args.lib,
                                              ("file" if Path(args.target).is_file() else "spec"): args.target}
    obj = build_objective(model, data, None, weights, args.threads or None)
    settings = {"dense_max_params": args.dense_max_params, "lanczos_k": args.lanczos_k,
                "slq_vectors": args.slq_vectors, "slq_steps": args.slq_steps}
    x = obj.initial_params(0, None)
    res = analyze_point(obj, x, settings=settings)
    _print_point(res)
    if args.json:
        write_text_atomic(args.json, json.dumps(jsonable(res)) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def register(sub) -> None:
    """The subcommand analyze (curvature)."""
    sp = sub.add_parser("analyze", help="analyses of a potential's loss: curvature (Hessian spectra)")
    kinds = sp.add_subparsers(dest="analysis", required=True)
    cp = kinds.add_parser("curvature", help="Hessian and Gauss-Newton spectra of a potential's loss on data",
                          description="Eigenvalues of the Hessian of the mean training loss at the potential's "
                                      "parameters (dense up to --dense-max-params, else Lanczos extremes and the "
                                      "SLQ density) and of the Gauss-Newton matrix; or, with STORE.sqlite KEY, "
                                      "what an experiment's [analysis] stored for a run.")
    cp.add_argument("target", help="a potential file or spec (or sevennet:PATH, mace:PATH), or a store .sqlite")
    cp.add_argument("configs", help="the data (or, after a store, the run's key)")
    add_engine_options(cp)
    cp.add_argument("--energy-weight", type=number(minimum=0), default=1.0, help="MLIP's energy_weight (default 1)")
    cp.add_argument("--force-weight", type=number(minimum=0), default=0.01, help="force_weight (default 0.01)")
    cp.add_argument("--stress-weight", type=number(minimum=0), default=0.001, help="stress_weight (default 0.001)")
    cp.add_argument("--dense-max-params", type=integer(0), default=600,
                    help="dense Hessian up to this many parameters, Lanczos beyond (default 600)")
    cp.add_argument("--lanczos-k", type=integer(1), default=10, help="extreme eigenvalues at each end (default 10)")
    cp.add_argument("--slq-vectors", type=integer(1), default=8, help="SLQ probe vectors (default 8)")
    cp.add_argument("--slq-steps", type=integer(2), default=30, help="SLQ Lanczos steps (default 30)")
    cp.add_argument("--json", help="write the whole result (every eigenvalue) as JSON")
    cp.set_defaults(func=cmd_curvature)
