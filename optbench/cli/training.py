"""`optbench train` (one run with any optimizer, like `mlp train`) and `optbench optimizers`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from optbench.cli.arguments import (
    add_engine_options,
    check_suffix,
    data_options,
    integer,
    number,
)
from optbench.engine import ENGINES, MODEL_KINDS
from optbench.foundation import DTYPES, FOUNDATION_KINDS
from optbench.io import (
    atomic_output,
    check_data,
    check_writable,
    load_data,
    write_text_atomic,
)
from optbench.metrics import format_mlip_report
from optbench.objective import LossWeights, build_objective
from optbench.objective.distributed import DistributedObjective, serve
from optbench.objective.sharding import local_objective
from optbench.optim import REGISTRY, StepEntry, describe
from optbench.optim.base import STEP_SETTINGS
from optbench.parallel import DEFAULT_TIMEOUT, world
from optbench.status import UNSUCCESSFUL, RunStatus
from optbench.train import REFINEMENTS, Budget, Schedule, TrainSettings, train


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


def _model(args) -> dict:
    """The model dict `optbench train` trains, by POT and --engine: a foundation model,
    the embedded engine or --lib's library (POT a potential file or a spec), MLIP-4's
    Python module (POT its potential JSON) or MLIP's mlp program (optimizer native only);
    ValueError naming the option that does not fit."""
    foundation = foundation_model(args.potential)
    if foundation is not None:
        if args.engine or args.lib:
            raise ValueError(f"--engine/--lib do not apply to a foundation model ({args.potential})")
        groups = args.train_groups.split(",") if "," in args.train_groups else args.train_groups
        return {**foundation, "dtype": args.dtype, "train_groups": groups, "energy_shift": not args.no_energy_shift}
    engine = args.engine or ("capi" if args.lib else "embedded")
    if engine == "capi" and not args.lib:
        raise ValueError("--engine capi needs --lib PATH (a library implementing mlipc.h)")
    if engine == "embedded" and args.lib:
        raise ValueError("--lib loads another library: use it with --engine capi")
    if engine == "mlp-cli" and args.optimizer != "native":
        raise ValueError("--engine mlp-cli trains only with --optimizer native (MLIP's mlp train)")
    if engine == "mlip4":
        return {"kind": args.kind, "template": args.potential, "engine": "mlip4", "module": args.module}
    return {"engine": engine, "lib": args.lib, "mlp": args.mlp,
            ("file" if Path(args.potential).is_file() else "spec"): args.potential}


def _check_objective(args, model: dict, obj) -> None:
    """The --save-to suffix the Objective's potential needs, checked before training."""
    if model.get("kind") in FOUNDATION_KINDS:
        if Path(args.save_to).suffix != obj.potential_suffix:
            raise ValueError(f"--save-to {args.save_to}: a fine-tuned {obj.kind} model is saved as "
                             f"{obj.potential_suffix} (the file its package's calculator loads)")
    elif (args.engine or ("capi" if args.lib else "embedded")) == "embedded":
        check_suffix(args.save_to, obj.kind)  # before training, not after


def foundation_model(text: str) -> dict | None:
    """POT as a foundation model: "sevennet" (SevenNet-0), "sevennet:PATH" (a sevenn
    checkpoint) or "mace:PATH" (a MACE model file) -> the model dict; None for anything
    else (a potential file or an engine spec)."""
    kind, _, path = text.partition(":")
    if kind not in FOUNDATION_KINDS or Path(text).is_file():
        return None
    if kind == "mace" and not path:
        raise ValueError("mace needs its model file: mace:PATH (nothing is downloaded)")
    return {"kind": kind, "model": path or "7net-0"}


def _perturbation(text: str | None) -> tuple[float, int]:
    """--perturb SIGMA,EVERY -> (sigma, every); (0, 0) when not given."""
    if not text:
        return 0.0, 0
    sigma, sep, every = text.partition(",")
    try:
        values = float(sigma), int(every)
    except ValueError:
        values = None
    if not sep or values is None or not (math.isfinite(values[0]) and values[0] >= 0 and values[1] >= 1):
        raise ValueError(f"--perturb {text!r}: give SIGMA,EVERY (noise sigma >= 0 in parameter units, "
                         "every EVERY >= 1 steps), e.g. 1e-4,50")
    return values


def _settings(args) -> TrainSettings:
    """The run's TrainSettings from the options, each bad value an error naming its option."""
    if args.optimizer not in REGISTRY:
        raise ValueError(f"--optimizer {args.optimizer!r}: unknown; known: {', '.join(REGISTRY)}")
    entry = REGISTRY[args.optimizer]
    if not entry.takes_steps:
        given = {"lr": args.lr, "schedule": args.schedule, "clip": args.clip, "batch_size": args.batch_size,
                 "perturb": args.perturb}
        for key in STEP_SETTINGS:  # refine and refine_fraction are experiment-file settings
            if given.get(key) is not None:
                raise ValueError(f"--{key.replace('_', '-')} does not apply to {args.optimizer} (full batch, no "
                                 "learning rate): remove it")
    sigma, every = _perturbation(args.perturb)
    hyper = _parse_hyper(args.hyper)
    if args.mlp:
        if args.optimizer != "native":
            raise ValueError("--mlp applies to --optimizer native (MLIP's own trainer) only")
        hyper["mlp"] = args.mlp
    try:
        entry.build(**hyper) if isinstance(entry, StepEntry) else entry.check(hyper)
    except (ValueError, TypeError) as err:
        raise ValueError(f"--hyper: {args.optimizer}: {err}") from None
    parsed = {}
    for option, parse, text in (("--budget", Budget.parse, args.budget), ("--schedule", Schedule.parse, args.schedule)):
        try:
            parsed[option] = parse(text)
        except ValueError as err:
            raise ValueError(f"{option}: {err}") from None
    return TrainSettings(
        optimizer=args.optimizer, hyper=hyper, lr=args.lr, batch_size=args.batch_size,
        clip=args.clip, schedule=parsed["--schedule"], budget=parsed["--budget"],
        seed=args.seed, init_interval=args.init_interval, perturb_sigma=sigma,
        perturb_every=every, eval_every=args.eval_every, early_stop=args.early_stop, refine=args.refine,
        refine_fraction=args.refine_fraction)


def _prepare(args, rank0: bool):
    """Everything a run needs before its Objective: (outputs, settings, weights, train,
    valid, model), each bad value a ValueError naming its option. Outputs are checked
    (and data warnings printed) by rank 0 alone."""
    outputs = (check_writable(args.save_to, "--save-to"),
               check_writable(args.json, "--json") if args.json else None) if rank0 else (None, None)
    settings = _settings(args)
    try:
        weights = LossWeights(energy=args.energy_weight, forces=args.force_weight, stress=args.stress_weight)
    except ValueError as err:
        raise ValueError(f"--energy-weight/--force-weight/--stress-weight: {err}") from None
    model = _model(args)
    train_set, valid = load_data({"kind": "files", "train": args.configs, "valid": args.valid,
                                  "valid_fraction": args.valid_fraction, "split_seed": args.seed,
                                  "format": args.format, **data_options(args)})
    if rank0:
        for finding in check_data(train_set, valid):  # in-sample validation, duplicates, outliers
            print(f"warning: {finding}", file=sys.stderr)
    return outputs, settings, weights, train_set, valid, model


def cmd_train(args) -> int:
    """One training run: print progress and MLIP's error report; save the potential.
    Outputs are checked for writability before anything runs and written atomically, and
    only what the run produced is written. Started by an MPI launcher with several ranks
    (mpiexec -n N optbench train ...), the data are spread over the ranks (_train_mpi)."""
    comm = world(args.mpi_timeout)
    if comm is not None:
        return _train_mpi(args, comm)
    (save_to, json_path), settings, weights, train_set, valid, model = _prepare(args, True)
    obj = build_objective(model, train_set, valid, weights, args.threads or None)
    _check_objective(args, model, obj)
    print(f"training {obj.n_params} parameters on {len(train_set)} configurations"
          f"{f' (validation {len(valid)})' if valid is not None else ''} with {args.optimizer}", file=sys.stderr)
    return _train_and_write(args, obj, settings, save_to, json_path, valid is not None)


def _train_and_write(args, obj, settings, save_to, json_path, has_valid: bool) -> int:
    """Train on `obj`, save the potential and the record, print the error reports (the
    validation set's when `has_valid`); the exit status."""
    result = train(obj, settings, progress=lambda line: print(line, file=sys.stderr, flush=True))
    x = result.x_best if args.keep == "best" else result.x
    print(f"{result.status}: {result.message}; {result.steps} steps, {result.configs_evaluated} configurations, "
          f"{result.train_seconds:.1f} s", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    produced = result.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT) and np.all(np.isfinite(x))
    if getattr(obj, "failure", None):
        produced = False  # an MPI rank died: the job is aborted, nothing half-made is written
    if produced:
        with atomic_output(save_to) as tmp:
            obj.save(x, tmp)
        print(f"saved the {args.keep} parameters to {save_to}", file=sys.stderr)
        for name, split_name in (("training set", "train"), ("validation set", "valid")):
            if split_name == "valid" and not has_valid:
                continue
            print(f"Errors on the {name}:")
            sys.stdout.write(format_mlip_report(obj.evaluate(x, split_name)))
    else:
        print(f"not saved: the run ended {result.status} without parameters of its own; {save_to} is unchanged",
              file=sys.stderr)
    if json_path is not None and not getattr(obj, "failure", None):
        record = result.to_dict()
        record["settings"] = settings.to_dict()
        record["potential"] = str(save_to) if produced else None
        write_text_atomic(json_path, json.dumps(record, indent=1, allow_nan=True))
    return 1 if result.status in UNSUCCESSFUL else 0


def _train_mpi(args, comm) -> int:
    """`optbench train` on one of several MPI ranks: every rank reads the options and
    data and keeps its share (optbench.objective.sharding); rank 0 trains on the
    DistributedObjective and alone prints and writes; the others serve its commands. A
    rank that dies or hangs aborts the job with a message after --mpi-timeout."""
    rank0 = comm.rank == 0
    message, prepared = None, None
    try:
        if args.optimizer == "native":
            raise ValueError("--optimizer native is MLIP's own mlp train, which runs over MPI itself: start "
                             "optbench train without mpiexec")
        prepared = _prepare(args, rank0)
    except (ValueError, OSError) as err:
        message = str(err)
    failures = comm.errors(message, "checking the options and data")
    if failures:
        if rank0:
            raise ValueError(message or failures[0])
        return 2
    (save_to, json_path), settings, weights, train_set, valid, model = prepared
    n_valid = 0 if valid is None else len(valid)
    prepared = None
    try:
        local, shard = local_objective(comm, model, train_set, valid, weights, args.threads or None)
    except ValueError:
        if rank0:
            raise  # every rank has the same error; rank 0 alone reports it
        return 2
    del train_set, valid
    if not rank0:
        return serve(comm, local, shard)
    obj = DistributedObjective(comm, local, shard)
    code = 1
    try:
        _check_objective(args, model, obj)
        share = ", ".join(f"{b - a} ({p} pairs)" for a, b, p in zip(shard.train_bounds[:-1], shard.train_bounds[1:],
                                                                   shard.pairs))
        print(f"training {obj.n_params} parameters on {shard.n_train} configurations"
              f"{f' (validation {n_valid})' if n_valid else ''} with {args.optimizer} over {comm.size} MPI ranks "
              f"holding {share}", file=sys.stderr)
        code = _train_and_write(args, obj, settings, save_to, json_path, n_valid > 0)
    finally:
        if obj.failure:
            comm.abort(f"{obj.failure}; nothing was written", 3)
        obj.close(code)
    return code


def cmd_optimizers(args) -> int:
    """List the optimizers with their hyperparameters and defaults."""
    print(describe())
    return 0


def register(sub) -> None:
    """The subcommands train and optimizers."""
    sp = sub.add_parser("train", help="one training run with any optimizer (like mlp train)")
    sp.add_argument("potential", help="initial potential: .mtp/.almtp/.json file or a spec such as 'mtp level=8' "
                    "or 'etn shape=1;6;3 ranks=1;1'; or a foundation model to fine-tune: 'sevennet' "
                    "(SevenNet-0), 'sevennet:CHECKPOINT', 'mace:MODEL_FILE'")
    sp.add_argument("configs", help="training data")
    sp.add_argument("--optimizer", required=True, help="name from `optbench optimizers`")
    sp.add_argument("--hyper", nargs="*", metavar="NAME=VALUE", help="hyperparameters of the optimizer")
    sp.add_argument("--lr", type=number(above=0), help="base learning rate (default: the optimizer's)")
    sp.add_argument("--batch-size", type=integer(1), help="configurations per step (default: all)")
    sp.add_argument("--clip", type=number(above=0), help="global-norm gradient clipping threshold")
    sp.add_argument("--schedule", help="learning-rate schedule, e.g. cosine,warmup=100,decay_steps=5000")
    sp.add_argument("--budget", default="epochs=100", help="epochs=E,evals=N,seconds=S (default epochs=100)")
    sp.add_argument("--seed", type=integer(0), default=0, help="seed of the start, batches and split (>= 0)")
    sp.add_argument("--init-interval", type=number(above=0),
                    help="uniform [-a, a] noise around the starting parameters: the file's coefficients when "
                         "POT is a potential file, the engine's defaults for a spec")
    sp.add_argument("--perturb", metavar="SIGMA,EVERY", help="Gaussian parameter noise every EVERY steps")
    sp.add_argument("--eval-every", type=integer(1), help="steps between metric evaluations")
    sp.add_argument("--early-stop", type=integer(1), metavar="N",
                    help="end the optimizer when the validation EPA has not improved for N evaluations")
    sp.add_argument("--refine", choices=list(REFINEMENTS), default="none",
                    help="lbfgs: L-BFGS-B on the whole training set after a step optimizer (default none)")
    sp.add_argument("--refine-fraction", type=number(above=0, below=1), default=0.2,
                    help="share of every budget limit the refinement gets (default 0.2)")
    foundation = sp.add_argument_group("foundation models (POT sevennet, sevennet:PATH, mace:PATH)")
    foundation.add_argument("--dtype", choices=list(DTYPES), default="float64",
                            help="the network's float type (default float64; float32 is about 2x faster)")
    foundation.add_argument("--train-groups", default="all",
                            help="all (default), or some of embedding,interactions,readout (comma-separated)")
    foundation.add_argument("--no-energy-shift", action="store_true",
                            help="do not fit the per-element energy reference before training")
    held_out = sp.add_mutually_exclusive_group()
    held_out.add_argument("--valid", help="validation data file")
    held_out.add_argument("--valid-fraction", type=number(above=0, below=1),
                          help="hold out this fraction of the data (split by --seed)")
    sp.add_argument("--energy-weight", type=number(minimum=0), default=1.0, help="MLIP's energy_weight (default 1)")
    sp.add_argument("--force-weight", type=number(minimum=0), default=0.01, help="MLIP's force_weight (default 0.01)")
    sp.add_argument("--stress-weight", type=number(minimum=0), default=0.001,
                    help="MLIP's stress_weight (default 0.001)")
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
    sp.add_argument("--mpi-timeout", type=number(above=0), default=DEFAULT_TIMEOUT,
                    help="under mpiexec: seconds a rank waits for the others beyond its own share of a step "
                         f"before the job is aborted as having a dead or hung rank (default {DEFAULT_TIMEOUT:g})")
    add_engine_options(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("optimizers", help="list the optimizers and their hyperparameters")
    sp.set_defaults(func=cmd_optimizers)
