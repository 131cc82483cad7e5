"""``optbench`` command line: the same jobs as MLIP's ``mlp``, in MLIP's file formats, so
users can check the embedded engine against MLIP by themselves.

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
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _engine(args):
    from optbench.engine.engines import load_engine
    eng = load_engine(getattr(args, "lib", None))
    if getattr(args, "threads", None):
        eng.set_num_threads(args.threads)
    return eng


def _read(args):
    from optbench.io.data import read_dataset
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
    from optbench.io.data import DataSet, write_cfg
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
    from optbench.metrics import compute_metrics, format_mlip_report
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
    pot = _engine(args).potential_from_spec(_template_spec(args))
    info = pot.info()
    _check_suffix(args.output, info["kind"])
    pot.save(args.output)
    if info["kind"] == "mtp":
        what = (f"level-{info['level']} MTP ({info['species_count']} species, {info['n_params']} parameters, "
                f"{info['alpha_scalar_moments']} basis functions)")
    else:
        what = (f"ETN (shape {info['shape']}, ranks {info['ranks']}, lmax {info['lmax']}, "
                f"{info['species_count']} species, {info['n_params']} parameters)")
    print(f"wrote an untrained {what} to {args.output}", file=sys.stderr)
    return 0


def _check_suffix(path, kind: str) -> None:
    """ValueError unless `path` has an extension a potential of `kind` is saved in."""
    from optbench.engine.capi import SUFFIXES
    if not str(path).endswith(SUFFIXES[kind]):
        raise ValueError(f"{path}: {kind.upper()} potentials are saved as {' or '.join(SUFFIXES[kind])}")


def cmd_info(args) -> int:
    """Print the potential's description as JSON."""
    pot = _engine(args).load_potential(args.potential)
    json.dump(pot.info(), sys.stdout, indent=2)
    print()
    return 0


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


def _potential(eng, text: str, n_species: int):
    """A potential from a file, or from a spec ("mtp level=8", "etn shape=1;6;3";
    species filled in)."""
    from pathlib import Path
    if Path(text).is_file():
        return eng.load_potential(text)
    if text.startswith(("mtp ", "etn ")) or text in ("mtp", "etn"):
        spec = text if "species=" in text else f"{text} species={n_species}"
        return eng.potential_from_spec(spec)
    raise ValueError(f"potential {text!r}: no such file, and not a spec such as 'mtp level=8' or 'etn shape=1;6;3'")


def _train_objective(args, data, train_set, valid, weights):
    """The Objective `optbench train` steps on, by --engine: the embedded engine or
    --lib's library (POT a .mtp/.almtp file or a spec), MLIP-4's Python module (POT its
    potential JSON) or MLIP's mlp program (optimizer native only)."""
    from optbench.engine.engines import MlpCliObjective
    from optbench.objective.protocol import EngineObjective

    engine = args.engine or ("capi" if args.lib else "embedded")
    if engine == "mlip4":
        from optbench.engine.engines import build_objective
        return build_objective({"kind": args.kind, "template": args.potential, "engine": "mlip4",
                                "module": args.module}, train_set, valid, weights, args.threads or 1)
    if engine == "capi" and not args.lib:
        raise ValueError("--engine capi needs --lib PATH (a library implementing mlipc.h)")
    if engine == "embedded" and args.lib:
        raise ValueError("--lib loads another library: use it with --engine capi")
    eng = _engine(args)
    n_species = max(int(c.types.max()) for c in data.configs) + 1
    pot = _potential(eng, args.potential, n_species)
    if engine == "embedded":
        _check_suffix(args.save_to, pot.kind)  # before training, not after
    if engine == "mlp-cli":
        from optbench.mlip.mlp_cli import find_mlp
        if args.optimizer != "native":
            raise ValueError("--engine mlp-cli trains only with --optimizer native (MLIP's mlp train)")
        return MlpCliObjective(eng, pot, train_set, valid, weights, mlp=find_mlp(args.mlp))
    return EngineObjective(eng, pot, train_set, valid, weights)


def cmd_train(args) -> int:
    """One training run: print progress and MLIP's error report; save the potential."""
    from optbench.optim.budget import Budget
    from optbench.io.data import read_dataset, split
    from optbench.metrics import format_mlip_report
    from optbench.objective.protocol import LossWeights
    from optbench.train.schedules import Schedule
    from optbench.train.loop import TrainSettings, train

    data = _read(args)
    if args.valid:
        kw = {"species": data.species} if data.species else {}
        valid = read_dataset(args.valid, fmt=args.format, **kw)
        train_set = data
    elif args.valid_fraction:
        train_set, valid = split(data, args.valid_fraction, args.seed)
    else:
        train_set, valid = data, None
    weights = LossWeights(energy=args.energy_weight, forces=args.force_weight, stress=args.stress_weight)
    obj = _train_objective(args, data, train_set, valid, weights)
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
    return 0 if result.status in ("converged", "budget", "stopped") else 1


def cmd_optimizers(args) -> int:
    """List the optimizers with their hyperparameters and defaults."""
    from optbench.optim import describe
    print(describe())
    return 0


def _variables(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE (a [paths] variable of the experiment)")
        out[key] = value
    return out


def cmd_validate(args) -> int:
    """Check an experiment file and print the runs it expands to."""
    from optbench.experiments.experiment import describe_plan, load_experiment

    print(describe_plan(load_experiment(args.experiment, variables=_variables(args.set))))
    return 0


def cmd_run(args) -> int:
    """Run the unfinished runs of an experiment into its store, then write the report."""
    from optbench.experiments.experiment import load_experiment
    from optbench.experiments.runner import run_experiment

    exp = load_experiment(args.experiment, variables=_variables(args.set))
    summary = run_experiment(exp, workers=args.workers, scheduler=args.scheduler, retry_failed=args.retry_failed,
                             take_over=args.take_over)
    print(summary.text(), file=sys.stderr)
    if summary.interrupted:
        return 130
    if not args.no_report:
        from optbench.report.report import write_report
        out = write_report(exp.store_path, experiment=exp.name, baseline=exp.baseline, options=exp.report,
                           keys=_current_keys(exp))
        print(f"report: {out['markdown']} and {out['html']}", file=sys.stderr)
    return 0


def _current_keys(exp) -> list[str]:
    """The store keys of an experiment's runs on the current code version."""
    from optbench.experiments.runspec import current_code_version

    version = current_code_version()
    return [r.key(version) for r in exp.runs]


def _store_and_experiment(target: str, variables: dict):
    """(store path, experiment name or None, baseline, report options, keys of the
    current code's runs or None) from a store file or an experiment file."""
    from pathlib import Path

    path = Path(target)
    if path.suffix == ".toml":
        from optbench.experiments.experiment import load_experiment
        exp = load_experiment(path, variables=variables)
        return exp.store_path, exp.name, exp.baseline, exp.report, _current_keys(exp)
    if not path.is_file():
        raise ValueError(f"{path}: no such store (give the store's .sqlite file or the experiment's .toml)")
    return path, None, None, {}, None


def cmd_report(args) -> int:
    """Write report.md and report.html for a store."""
    from optbench.report.report import write_report

    store, name, baseline, options, keys = _store_and_experiment(args.target, _variables(args.set))
    out = write_report(store, args.output, experiment=args.experiment or name, baseline=args.baseline or baseline,
                       options=options, keys=keys)
    print(f"report: {out['markdown']} and {out['html']}")
    return 0


def cmd_export(args) -> int:
    """Write the store's runs as CSV or Parquet."""
    from optbench.experiments.store import Store

    store, name, _, _, _ = _store_and_experiment(args.target, _variables(args.set))
    with Store(store) as st:
        path = st.export(args.output, experiment=args.experiment or name)
    print(f"wrote {path}")
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

    sp = sub.add_parser("template", help="write an untrained MTP of a given level, or an untrained potential of a spec")
    sp.add_argument("model", help="MTP level (even, 2..28), or a spec: 'mtp level=16 ...', "
                    "'etn shape=1;6;3 ranks=1;1 lmax=2 ...' (engine/README.md)")
    sp.add_argument("--species", type=int, required=True, help="number of species")
    sp.add_argument("-o", "--output", required=True, help="output file (.mtp or .almtp for an MTP, .json for an ETN)")
    sp.add_argument("--min-dist", type=float, default=2.0, help="radial basis min_dist, A (default 2.0)")
    sp.add_argument("--max-dist", type=float, default=5.0, help="cutoff, A (default 5.0)")
    sp.add_argument("--radial-basis-size", type=int, default=8, help="Chebyshev basis size (default 8)")
    common(sp, data=False)
    sp.set_defaults(func=cmd_template)

    sp = sub.add_parser("info", help="describe a potential file")
    sp.add_argument("potential")
    common(sp, data=False)
    sp.set_defaults(func=cmd_info)

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
    sp.add_argument("--engine", choices=["embedded", "capi", "mlip4", "mlp-cli"],
                    help="what computes the loss: the embedded engine (default), --lib's library (capi), "
                         "MLIP-4's Python module (mlip4; POT is its potential JSON) or MLIP's mlp program "
                         "(mlp-cli; --optimizer native only)")
    sp.add_argument("--module", default="mlip_4", help="MLIP-4's Python module for --engine mlip4")
    sp.add_argument("--kind", default="mtp", choices=["mtp", "etn"], help="potential kind for --engine mlip4")
    common(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("optimizers", help="list the optimizers and their hyperparameters")
    sp.set_defaults(func=cmd_optimizers)

    def variables(sp):
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
