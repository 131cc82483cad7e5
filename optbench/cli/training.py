"""`optbench train` (one run with any optimizer, like `mlp train`) and `optbench optimizers`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from optbench.cli.arguments import add_engine_options, check_suffix, species_option
from optbench.engine import ENGINES, MODEL_KINDS
from optbench.io import load_data
from optbench.metrics import format_mlip_report
from optbench.objective import LossWeights, build_objective
from optbench.optim import describe
from optbench.status import UNSUCCESSFUL
from optbench.train import Budget, Schedule, TrainSettings, train


def _parse_hyper(items: list[str]) -> dict:
    """["beta=0.9", "view=pad_sqrt"] -> {"beta": 0.9, "view": "pad_sqrt"} (numbers,
    true/false, else strings)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"hyperparameter {item!r}: expected name=value")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
            continue
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def _objective(args, train_set, valid, weights):
    """The Objective `optbench train` steps on, by --engine: the embedded engine or --lib's
    library (POT a potential file or a spec), MLIP-4's Python module (POT its potential
    JSON) or MLIP's mlp program (optimizer native only); built by build_objective as for
    an experiment's run."""
    engine = args.engine or ("capi" if args.lib else "embedded")
    if engine == "capi" and not args.lib:
        raise ValueError("--engine capi needs --lib PATH (a library implementing mlipc.h)")
    if engine == "embedded" and args.lib:
        raise ValueError("--lib loads another library: use it with --engine capi")
    if engine == "mlp-cli" and args.optimizer != "native":
        raise ValueError("--engine mlp-cli trains only with --optimizer native (MLIP's mlp train)")
    if engine == "mlip4":
        model = {"kind": args.kind, "template": args.potential, "engine": "mlip4", "module": args.module}
    else:
        model = {"engine": engine, "lib": args.lib, "mlp": args.mlp,
                 ("file" if Path(args.potential).is_file() else "spec"): args.potential}
    obj = build_objective(model, train_set, valid, weights, args.threads or None)
    if engine == "embedded":
        check_suffix(args.save_to, obj.kind)  # before training, not after
    return obj


def cmd_train(args) -> int:
    """One training run: print progress and MLIP's error report; save the potential."""
    train_set, valid = load_data({"kind": "files", "train": args.configs, "valid": args.valid,
                                  "valid_fraction": args.valid_fraction, "split_seed": args.seed,
                                  "format": args.format, "species": species_option(args)})
    weights = LossWeights(energy=args.energy_weight, forces=args.force_weight, stress=args.stress_weight)
    obj = _objective(args, train_set, valid, weights)
    perturb_sigma, perturb_every = 0.0, 0
    if args.perturb:
        sigma, _, every = args.perturb.partition(",")
        perturb_sigma, perturb_every = float(sigma), int(every or 0)
    hyper = _parse_hyper(args.hyper)
    if args.mlp:
        if args.optimizer != "native":
            raise ValueError("--mlp applies to --optimizer native (MLIP's own trainer) only")
        hyper["mlp"] = args.mlp
    settings = TrainSettings(
        optimizer=args.optimizer, hyper=hyper, lr=args.lr, batch_size=args.batch_size,
        clip=args.clip, schedule=Schedule.parse(args.schedule), budget=Budget.parse(args.budget),
        seed=args.seed, init_interval=args.init_interval, perturb_sigma=perturb_sigma,
        perturb_every=perturb_every, eval_every=args.eval_every)
    print(f"training {obj.n_params} parameters on {len(train_set)} configurations"
          f"{f' (validation {len(valid)})' if valid is not None else ''} with {args.optimizer}", file=sys.stderr)
    result = train(obj, settings, progress=lambda line: print(line, file=sys.stderr, flush=True))
    x = result.x_best if args.keep == "best" else result.x
    obj.save(x, args.save_to)
    print(f"{result.status}: {result.message}; {result.steps} steps, {result.configs_evaluated} configurations, "
          f"{result.train_seconds:.1f} s", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"saved the {args.keep} parameters to {args.save_to}", file=sys.stderr)
    for name, split_name in (("training set", "train"), ("validation set", "valid")):
        if split_name == "valid" and valid is None:
            continue
        print(f"Errors on the {name}:")
        sys.stdout.write(format_mlip_report(obj.evaluate(x, split_name)))
    if args.json:
        record = result.to_dict()
        record["settings"] = settings.to_dict()
        record["potential"] = str(args.save_to)
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=1, allow_nan=True)
    return 1 if result.status in UNSUCCESSFUL else 0


def cmd_optimizers(args) -> int:
    """List the optimizers with their hyperparameters and defaults."""
    print(describe())
    return 0


def register(sub) -> None:
    """The subcommands train and optimizers."""
    sp = sub.add_parser("train", help="one training run with any optimizer (like mlp train)")
    sp.add_argument("potential", help="initial potential: .mtp/.almtp/.json file or a spec such as 'mtp level=8' "
                    "or 'etn shape=1;6;3 ranks=1;1'")
    sp.add_argument("configs", help="training data")
    sp.add_argument("--optimizer", required=True, help="name from `optbench optimizers`")
    sp.add_argument("--hyper", nargs="*", metavar="NAME=VALUE", help="hyperparameters of the optimizer")
    sp.add_argument("--lr", type=float, help="base learning rate (default: the optimizer's)")
    sp.add_argument("--batch-size", type=int, help="configurations per step (default: all)")
    sp.add_argument("--clip", type=float, help="global-norm gradient clipping threshold")
    sp.add_argument("--schedule", help="learning-rate schedule, e.g. cosine,warmup=100,decay_steps=5000")
    sp.add_argument("--budget", default="epochs=100", help="epochs=E,evals=N,seconds=S (default epochs=100)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--init-interval", type=float, help="uniform [-a, a] noise around the default parameters")
    sp.add_argument("--perturb", metavar="SIGMA,EVERY", help="Gaussian parameter noise every EVERY steps")
    sp.add_argument("--eval-every", type=int, help="steps between metric evaluations")
    sp.add_argument("--valid", help="validation data file")
    sp.add_argument("--valid-fraction", type=float, help="hold out this fraction of the data (split by --seed)")
    sp.add_argument("--energy-weight", type=float, default=1.0)
    sp.add_argument("--force-weight", type=float, default=0.01)
    sp.add_argument("--stress-weight", type=float, default=0.001)
    sp.add_argument("--keep", choices=["best", "last"], default="best",
                    help="save the best-validation or the last parameters (default best)")
    sp.add_argument("--save-to", required=True,
                    help="output potential: .mtp or .almtp for an MTP, .json for an ETN and for MLIP-4 "
                         "(--engine mlip4, or its capi library)")
    sp.add_argument("--json", help="write the run's record (status, metrics, timings, history) here")
    sp.add_argument("--mlp", metavar="PATH", help="MLIP's mlp binary for --optimizer native / --engine mlp-cli "
                    "(default: $OPTBENCH_MLP, then mlp on PATH)")
    sp.add_argument("--engine", choices=list(ENGINES),
                    help="what computes the loss: the embedded engine (default), --lib's library (capi), "
                         "MLIP-4's Python module (mlip4; POT is its potential JSON) or MLIP's mlp program "
                         "(mlp-cli; --optimizer native only)")
    sp.add_argument("--module", default="mlip_4", help="MLIP-4's Python module for --engine mlip4")
    sp.add_argument("--kind", default="mtp", choices=list(MODEL_KINDS), help="potential kind for --engine mlip4")
    add_engine_options(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("optimizers", help="list the optimizers and their hyperparameters")
    sp.set_defaults(func=cmd_optimizers)
