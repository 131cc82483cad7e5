"""What fine-tuning SevenNet-0 through optbench costs beside sevenn's own training loop.

Both sides run the same mini-batch steps, in the same order, on the same configurations
(DFT bcc Mo, 54-atom cells, the first --configs of Mo_AIMD.json), batch size, dtype and
number of torch threads, starting from the same pretrained weights (SevenNet-0, "7net-0"
from the sevenn wheel; optbench's energy shift is off so that nothing moves them first):

  (a) optbench: `TorchObjective.loss_grad(x, batch)` over `SevenNetModel`, then
      optbench's Adam (`optbench.optim.REGISTRY["adam"]`) on the flat float64 vector and
      `x = x + step`, as `optbench.optim.loop.run_steps` does;
  (b) sevenn: `sevenn.train.trainer.Trainer(model, loss_functions, torch.optim.Adam)` and
      `run_one_epoch(loader, is_train=True)` over a torch_geometric DataLoader of sevenn
      AtomGraphData built by `sevenn.train.dataload.atoms_to_graph` (labels in
      atoms.info / atoms.arrays, sevenn's conventions), with sevenn's PerAtomEnergyLoss,
      ForceLoss and StressLoss.

The two losses are not the same function: sevenn averages each component (per-atom
energy, force components, stress in kbar) and weights the averages; optbench sums MLIP's
per-configuration weighted squared errors (wE = 1/N, wF = 0.01, wS = 0.001/N on the
PlusStress virial in eV). sevenn's weights here are chosen so that its loss approximates
optbench's on this data (N and V are constant), but that matters only for the
trajectories: the loss itself is a few element-wise operations on (n_atoms, 3) and (n, 6)
tensors, negligible beside the network's forward and double backward (see the breakdown).

float64: sevenn builds its models in float32; the sevenn side is then converted as
SevenNetModel does (`.to(float64)`, a forward hook casting the one-hot embedding, torch's
default dtype float64 while training) and its graphs are built in float64.

Each side runs in its own spawned process (so its peak resident set size, ru_maxrss, is
its own). The processes take turns step by step (a b, b a, ...; one idles while the other
runs, so both see the same background load) over the same --steps batches (one pass over
the configurations by default; training goes on, the cost of a step does not change),
--repeats times. Other processes on the machine make single steps noisy, so the headline
takes each step's best of the repeats and sums them; the best and the median round, and
the median ratio of the two sides' steps on the same batch side by side, are shown too.
Reported: configurations per second, the overhead ratio optbench time / sevenn time - 1
(target < 5 %), peak RSS, and a breakdown of each step (instrumented copies of the two
loops, run after the timed rounds): optbench's parameter copy-in (`_set`), forward (incl.
batching and the loss), backward, the gradient copy-out (concatenation to float64), the
NumPy Adam update and `x + step`; sevenn's batching, forward+loss, backward and torch Adam.

    .venv/bin/python benchmarks/finetune_overhead.py [--configs 16] [--batch 4] [--steps 4]
        [--repeats 5] [--warmup 3] [--breakdown-steps 4] [--dtype float32|float64]
        [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

DATA = "/work/shared/datasets/nbmotaw_snap/Mo_AIMD.json"
_SIDES = ("optbench", "sevenn")


# --------------------------------------------------------------------------- shared setup
def _load_data(path: str, n_configs: int):
    from optbench.io import DataSet, read_dataset

    data = read_dataset(path)
    if len(data.configs) < n_configs:
        raise SystemExit(f"{path} has {len(data.configs)} configurations, fewer than --configs {n_configs}")
    return DataSet(configs=list(data.configs[:n_configs]), species=data.species, name=data.name)


def _batches(n: int, batch: int, count: int, seed: int) -> list[list[int]]:
    """`count` mini-batches: epochs of a seeded permutation cut into runs of `batch`,
    as run_steps cuts them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    while len(out) < count:
        order = rng.permutation(n) if batch < n else np.arange(n)
        for start in range(0, n, batch):
            out.append([int(k) for k in order[start:start + batch]])
    return out[:count]


def _sevenn_weights(data) -> dict[str, float]:
    """sevenn loss weights under which sevenn's loss approximates optbench's mean MLIP
    loss (energy 1, forces 0.01, stress 0.001, weight_scaling 1) on cells of N atoms and
    volume V: N on the per-atom-energy MSE, 0.01 * 3N on the force-component MSE,
    0.001/N * 9 V^2 / 1602.18^2 on the stress MSE in kbar (the 3x3 Frobenius norm of the
    virial counts 9 entries, sevenn's MSE averages 6)."""
    import numpy as np

    n = float(np.mean([c.n_atoms for c in data.configs]))
    vol = float(np.mean([abs(np.linalg.det(c.cell)) for c in data.configs]))
    to_kbar = 1602.1766208
    return {"energy": n, "force": 0.01 * 3 * n, "stress": 0.001 / n * 9 * vol ** 2 / to_kbar ** 2}


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# --------------------------------------------------------------------------- side (a)
class OptbenchSide:
    """TorchObjective + optbench's Adam on the flat vector."""

    def __init__(self, cfg: dict):
        import numpy as np
        import torch

        from optbench.foundation.sevennet import SevenNetModel
        from optbench.objective.torch_objective import TorchObjective
        from optbench.optim import REGISTRY

        torch.set_num_threads(cfg["threads"])
        self.np, self.torch = np, torch
        data = _load_data(cfg["data"], cfg["configs"])
        self.model = SevenNetModel("7net-0", dtype=cfg["dtype"])
        self.obj = TorchObjective(self.model, data, energy_shift=False)
        self.opt = REGISTRY["adam"].build()
        self.lr = cfg["lr"]
        self.x = np.array(self.obj.start, dtype=np.float64)
        self.state = self.opt.init(self.x)
        self.n_params = self.obj.n_params

    def energy0(self) -> float:
        energy, _, _ = self.model.forward([self.obj._train.graphs[0]], training=False)
        return float(energy[0])

    def steps(self, batches) -> tuple[list[float], list[float]]:
        """The steps as run_steps takes them; (seconds of each step, losses)."""
        perf = time.perf_counter
        losses, times = [], []
        obj, opt, lr = self.obj, self.opt, self.lr
        x, state = self.x, self.state
        for b in batches:
            c0 = perf()
            loss, g = obj.loss_grad(x, b)
            step, state = opt.update(g, state, x, lr)
            x = x + step
            times.append(perf() - c0)
            losses.append(loss)
        self.x, self.state = x, state
        return times, losses

    def breakdown(self, batches) -> dict[str, float]:
        """An instrumented copy of TorchObjective.loss_grad + the update (seconds summed
        over the batches)."""
        np, torch, obj, opt = self.np, self.torch, self.obj, self.opt
        perf = time.perf_counter
        t = dict.fromkeys(("set (copy-in)", "forward+loss", "backward", "grad copy-out", "adam (numpy)",
                           "x + step", "total"), 0.0)
        x, state = self.x, self.state
        for b in batches:
            c_start = perf()
            idx = obj._indices(b)
            c0 = perf()
            obj._set(x)
            t["set (copy-in)"] += perf() - c0
            for p in obj._params:
                p.grad = None
            total = 0.0
            for part in obj._train.chunks(idx):
                c0 = perf()
                terms = obj._terms(obj._train, part, training=True)
                c1 = perf()
                terms.backward()
                total += float(terms.detach())
                c2 = perf()
                t["forward+loss"] += c1 - c0
                t["backward"] += c2 - c1
            c0 = perf()
            g = np.concatenate([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                .to(torch.float64).numpy() for p in obj._params])
            obj.configs_evaluated += idx.size
            g = g / idx.size
            c1 = perf()
            step, state = opt.update(g, state, x, self.lr)
            c2 = perf()
            x = x + step
            c3 = perf()
            t["grad copy-out"] += c1 - c0
            t["adam (numpy)"] += c2 - c1
            t["x + step"] += c3 - c2
            t["total"] += c3 - c_start
        self.x, self.state = x, state
        return t

    def collate(self, batches, repeats: int) -> dict[str, float]:
        """Seconds per batch of SevenNetModel.forward's batching (Batch.from_data_list of
        clones), and of the same without the clones."""
        from torch_geometric.data import Batch

        graphs = self.obj._train.graphs
        perf = time.perf_counter
        c0 = perf()
        for _ in range(repeats):
            for b in batches:
                Batch.from_data_list([graphs[k].clone() for k in b])
        c1 = perf()
        for _ in range(repeats):
            for b in batches:
                Batch.from_data_list([graphs[k] for k in b])
        c2 = perf()
        n = repeats * len(batches)
        return {"from_data_list(clones)": (c1 - c0) / n, "from_data_list(no clone)": (c2 - c1) / n}


# --------------------------------------------------------------------------- side (b)
class SevennSide:
    """sevenn's Trainer.run_one_epoch over a DataLoader of AtomGraphData."""

    def __init__(self, cfg: dict):
        import numpy as np
        import torch
        from ase import Atoms
        from ase.data import atomic_numbers
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import atoms_to_graph
        from sevenn.train.loss import ForceLoss, PerAtomEnergyLoss, StressLoss
        from sevenn.train.trainer import Trainer
        from sevenn.util import dtype_correct, load_checkpoint, pretrained_name_to_path

        torch.set_num_threads(cfg["threads"])
        self.np, self.torch = np, torch
        dtype = getattr(torch, cfg["dtype"])
        self.dtype = dtype
        data = _load_data(cfg["data"], cfg["configs"])

        checkpoint = load_checkpoint(pretrained_name_to_path("7net-0"))
        model = checkpoint.build_model()  # float32, as sevenn builds it
        if dtype != torch.float32:
            model = model.to(dtype)
            from optbench.foundation.sevennet import cast_onehot

            cast_onehot(model, dtype)  # as SevenNetModel: the one-hot embedding casts with .float()
            torch.set_default_dtype(dtype)  # sevenn creates some tensors with the default dtype
        cutoff = float(checkpoint.config["cutoff"])

        table = np.array([atomic_numbers[s] for s in data.species])
        self.graphs = []
        for c in data.configs:
            atoms = Atoms(numbers=table[c.types], positions=c.positions, cell=c.cell, pbc=True)
            atoms.info["y_energy"] = float(c.energy)
            atoms.arrays["y_force"] = np.array(c.forces, dtype=np.float64)
            # PlusStress virial (xx yy zz yz xz xy, eV) -> sevenn's stress label: virial / V
            # (the sign of -atoms.get_stress()) in sevenn's order xx yy zz xy yz zx, eV/A^3
            atoms.info["y_stress"] = np.asarray(c.stress, dtype=np.float64)[[0, 1, 2, 5, 3, 4]] / atoms.cell.volume
            raw = atoms_to_graph(atoms, cutoff)
            if dtype == torch.float32:
                self.graphs.append(AtomGraphData.from_numpy_dict(raw))
            else:
                self.graphs.append(AtomGraphData(**{k: dtype_correct(v, float_dtype=dtype) for k, v in raw.items()}))

        w = _sevenn_weights(data)
        mse = torch.nn.MSELoss
        self.loss_weights = w
        losses = [(PerAtomEnergyLoss(criterion=mse()), w["energy"]), (ForceLoss(criterion=mse()), w["force"]),
                  (StressLoss(criterion=mse()), w["stress"])]
        self.trainer = Trainer(model, losses, optimizer_cls=torch.optim.Adam,
                               optimizer_args={"lr": cfg["lr"]}, device="cpu")
        self.model = self.trainer.model
        self.n_params = int(sum(p.numel() for g in self.trainer.optimizer.param_groups for p in g["params"]))

    def _loader(self, batches):
        from torch_geometric.loader import DataLoader

        return DataLoader(self.graphs, batch_sampler=[list(b) for b in batches])

    def energy0(self) -> float:
        import sevenn._keys as KEY
        from torch_geometric.data import Batch

        self.model.eval()
        out = self.model(Batch.from_data_list([self.graphs[0].clone()]))
        return float(out[KEY.PRED_TOTAL_ENERGY].detach().reshape(-1)[0])

    def steps(self, batches) -> tuple[list[float], list[float]]:
        """run_one_epoch over the batches; (seconds of each step, no losses: sevenn's
        loop does not return them). A step's time runs from the request of its batch to
        the request of the next one (or run_one_epoch's return)."""
        stamps: list[float] = []
        loader = self._loader(batches)

        def stamped():
            it = iter(loader)
            while True:
                stamps.append(time.perf_counter())
                try:
                    batch = next(it)
                except StopIteration:
                    return
                yield batch

        self.trainer.run_one_epoch(stamped(), is_train=True)
        stamps[-1] = time.perf_counter()
        return [t1 - t0 for t0, t1 in itertools.pairwise(stamps)], []

    def breakdown(self, batches) -> dict[str, float]:
        """An instrumented copy of Trainer.run_one_epoch(is_train=True)."""
        torch, tr = self.torch, self.trainer
        perf = time.perf_counter
        t = dict.fromkeys(("batching (loader)", "forward+loss", "backward", "adam (torch)", "total"), 0.0)
        tr.model.train()
        it = iter(self._loader(batches))
        for _ in batches:
            c_start = perf()
            batch = next(it)
            c0 = perf()
            tr.optimizer.zero_grad()
            batch = batch.to(tr.device, non_blocking=True)
            output = tr.model(batch)
            total_loss = torch.tensor([0.0], device=tr.device)
            for loss_def, w in tr.loss_functions:
                indv_loss = loss_def.get_loss(output, tr.model)
                if indv_loss is not None:
                    total_loss += (indv_loss * w)
            c1 = perf()
            total_loss.backward()
            c2 = perf()
            tr.optimizer.step()
            c3 = perf()
            t["batching (loader)"] += c0 - c_start
            t["forward+loss"] += c1 - c0
            t["backward"] += c2 - c1
            t["adam (torch)"] += c3 - c2
            t["total"] += c3 - c_start
        return t

    def collate(self, batches, repeats: int) -> dict[str, float]:
        """Seconds per batch of the DataLoader's collation."""
        perf = time.perf_counter
        c0 = perf()
        for _ in range(repeats):
            for _batch in self._loader(batches):
                pass
        return {"DataLoader collate": (perf() - c0) / (repeats * len(batches))}


# --------------------------------------------------------------------------- worker process
def _worker(side: str, cfg: dict, conn) -> None:
    """One side in its own process: set up, then answer (command, batches) messages."""
    try:
        c0 = time.perf_counter()
        obj = OptbenchSide(cfg) if side == "optbench" else SevennSide(cfg)
        info = {"setup_s": time.perf_counter() - c0, "n_params": obj.n_params, "energy0": obj.energy0(),
                "rss_setup_mib": _rss_mib()}
        if side == "sevenn":
            info["loss_weights"] = obj.loss_weights
        conn.send(("ready", info))
        while True:
            cmd, arg = conn.recv()
            if cmd == "steps":
                w0, p0 = time.perf_counter(), time.process_time()
                step_s, losses = obj.steps(arg)
                conn.send(("ok", {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - p0,
                                  "step_s": step_s, "losses": losses}))
            elif cmd == "breakdown":
                conn.send(("ok", obj.breakdown(arg)))
            elif cmd == "collate":
                conn.send(("ok", obj.collate(*arg)))
            elif cmd == "rss":
                conn.send(("ok", _rss_mib()))
            else:
                conn.send(("ok", None))
                return
    except BaseException as err:  # noqa: BLE001 - reported to the parent instead of dying silently
        import traceback

        conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


class _Remote:
    def __init__(self, ctx, side: str, cfg: dict):
        self.side = side
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(side, cfg, child), name=f"finetune-{side}")
        self.proc.start()
        child.close()

    def _answer(self):
        status, value = self.conn.recv()
        if status == "error":
            raise RuntimeError(f"the {self.side} process failed: {value}")
        return value

    def ready(self) -> dict:
        return self._answer()

    def call(self, cmd: str, arg=None):
        self.conn.send((cmd, arg))
        return self._answer()

    def close(self) -> None:
        try:
            self.conn.send(("stop", None))
            self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=30)


# --------------------------------------------------------------------------- main
def run(args) -> dict:
    import multiprocessing as mp

    import numpy as np

    cfg = {"data": args.data, "configs": args.configs, "dtype": args.dtype, "threads": args.threads, "lr": args.lr}
    batches = _batches(args.configs, args.batch, args.warmup + args.steps + args.breakdown_steps, args.seed)
    warm = batches[:args.warmup]
    timed = batches[args.warmup:args.warmup + args.steps]  # every round runs these
    extra = batches[args.warmup + args.steps:]
    n_configs = int(sum(len(b) for b in timed))

    ctx = mp.get_context("spawn")
    remotes = {s: _Remote(ctx, s, cfg) for s in _SIDES}
    out: dict = {"settings": {**vars(args), "configs_per_round": n_configs}, "sides": {}}
    try:
        for s, r in remotes.items():
            out["sides"][s] = {"setup": r.ready()}
        if args.warmup:
            for s in _SIDES:
                remotes[s].call("steps", warm)
        # rec[side][round] = the round's steps; the sides take turns step by step (a b, b a,
        # ...), so that both see the same background load
        rec: dict[str, list] = {s: [] for s in _SIDES}
        for i in range(args.repeats):
            for s in _SIDES:
                rec[s].append({"wall_s": 0.0, "cpu_s": 0.0, "step_s": [], "losses": []})
            for j, batch in enumerate(timed):
                order = _SIDES if (i + j) % 2 == 0 else _SIDES[::-1]
                for s in order:
                    res = remotes[s].call("steps", [batch])
                    r = rec[s][i]
                    r["wall_s"] += res["wall_s"]
                    r["cpu_s"] += res["cpu_s"]
                    r["step_s"] += res["step_s"]
                    r["losses"] += res["losses"]
            if not args.json:
                print(f"  round {i + 1}/{args.repeats}: " + ", ".join(
                    f"{s} {n_configs / rec[s][i]['wall_s']:.3f} configs/s ({rec[s][i]['wall_s']:.1f} s)"
                    for s in _SIDES), file=sys.stderr, flush=True)
        for s in _SIDES:
            side = out["sides"][s]
            side["rounds"] = [{k: v for k, v in x.items() if k != "losses"} for x in rec[s]]
            if s == "optbench":
                side["losses"] = [float(v) for x in rec[s] for v in x["losses"]]
            walls = np.array([x["wall_s"] for x in rec[s]])
            steps = np.array([x["step_s"] for x in rec[s]])  # (repeats, steps)
            # the best of the repeats of each step (the same batch every round), summed
            side["round_s_best_steps"] = float(steps.min(axis=0).sum())
            side["round_s_best"] = float(walls.min())
            side["round_s_median"] = float(np.median(walls))
            side["configs_per_s"] = n_configs / side["round_s_best_steps"]
            side["configs_per_s_best_round"] = n_configs / side["round_s_best"]
            side["configs_per_s_median_round"] = n_configs / side["round_s_median"]
            side["cpu_s_per_config_best"] = min(x["cpu_s"] for x in rec[s]) / n_configs
        # each step's time against the other side's step on the same batch right beside it
        pa = np.array([x["step_s"] for x in rec["optbench"]])
        pb = np.array([x["step_s"] for x in rec["sevenn"]])
        out["overhead_paired_median"] = float(np.median(pa / pb)) - 1.0
        if extra:
            for s in _SIDES:
                t = remotes[s].call("breakdown", extra)
                out["sides"][s]["breakdown_s_per_step"] = {k: v / len(extra) for k, v in t.items()}
            for s in _SIDES:
                out["sides"][s]["collate_s_per_batch"] = remotes[s].call("collate", (extra, 5))
        for s in _SIDES:
            out["sides"][s]["rss_peak_mib"] = remotes[s].call("rss")
    finally:
        for r in remotes.values():
            r.close()

    a, b = out["sides"]["optbench"], out["sides"]["sevenn"]
    # optbench time / sevenn time - 1
    out["overhead"] = a["round_s_best_steps"] / b["round_s_best_steps"] - 1.0
    out["overhead_best_round"] = a["round_s_best"] / b["round_s_best"] - 1.0
    out["overhead_median_round"] = a["round_s_median"] / b["round_s_median"] - 1.0
    out["overhead_cpu"] = a["cpu_s_per_config_best"] / b["cpu_s_per_config_best"] - 1.0
    bd = a.get("breakdown_s_per_step")
    if bd:
        flat = bd["set (copy-in)"] + bd["grad copy-out"] + bd["adam (numpy)"] + bd["x + step"]
        out["flat_vector_share"] = flat / bd["total"]
    out["energy0_diff_eV"] = a["setup"]["energy0"] - b["setup"]["energy0"]
    out["same_params"] = a["setup"]["n_params"] == b["setup"]["n_params"]
    return out


def _table(out: dict) -> str:
    st = out["settings"]
    a, b = out["sides"]["optbench"], out["sides"]["sevenn"]
    lines = [(f"SevenNet-0 fine-tuning, {st['configs']} Mo configurations (54 atoms), batch {st['batch']}, "
             f"{st['dtype']}, {st['threads']} threads; {st['repeats']} alternating rounds of the same {st['steps']} "
             f"steps ({st['configs_per_round']} configurations) per side, after {st['warmup']} warm-up steps"),
             (f"trainable parameters: optbench {a['setup']['n_params']}, sevenn {b['setup']['n_params']}; "
             f"pretrained energy of config 0: {a['setup']['energy0']:.6f} vs {b['setup']['energy0']:.6f} eV"),
             "",
             f"{'':32s}{'optbench':>12s}{'sevenn':>12s}{'overhead':>11s}",
             (f"{'configs/s (best of each step)':32s}{a['configs_per_s']:12.3f}{b['configs_per_s']:12.3f}"
             f"{100 * out['overhead']:+10.1f}%"),
             (f"{'configs/s (best round)':32s}{a['configs_per_s_best_round']:12.3f}"
             f"{b['configs_per_s_best_round']:12.3f}{100 * out['overhead_best_round']:+10.1f}%"),
             (f"{'configs/s (median round)':32s}{a['configs_per_s_median_round']:12.3f}"
             f"{b['configs_per_s_median_round']:12.3f}{100 * out['overhead_median_round']:+10.1f}%"),
             f"{'paired steps (median ratio)':32s}{'':24s}{100 * out['overhead_paired_median']:+10.1f}%",
             (f"{'CPU s/config (best round)':32s}{a['cpu_s_per_config_best']:12.3f}"
             f"{b['cpu_s_per_config_best']:12.3f}{100 * out['overhead_cpu']:+10.1f}%"),
             f"{'peak RSS after setup (MiB)':32s}{a['setup']['rss_setup_mib']:12.0f}{b['setup']['rss_setup_mib']:12.0f}",
             f"{'peak RSS (MiB)':32s}{a['rss_peak_mib']:12.0f}{b['rss_peak_mib']:12.0f}",
             "",
             ("overhead = optbench time / sevenn time - 1 (target < 5 %); the first line is the headline "
             "(each step's best of the rounds)")]
    for s in _SIDES:
        bd = out["sides"][s].get("breakdown_s_per_step")
        if not bd:
            continue
        lines += ["", f"{s} step breakdown ({st['breakdown_steps']} instrumented steps), ms per step:"]
        for k, v in bd.items():
            share = f"{100 * v / bd['total']:6.2f} %" if bd["total"] else ""
            lines.append(f"  {k:24s}{1000 * v:10.2f}   {share}")
        for k, v in out["sides"][s].get("collate_s_per_batch", {}).items():
            lines.append(f"  batching alone, {k}: {1000 * v:.2f} ms per batch")
    if "flat_vector_share" in out:
        lines += ["", (f"optbench's flat-vector work (copy-in, copy-out, NumPy Adam, x + step): "
                      f"{100 * out['flat_vector_share']:.2f} % of its step")]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", type=int, default=16, help="first N configurations of the data (default 16)")
    p.add_argument("--batch", type=int, default=4, help="configurations per step (default 4)")
    p.add_argument("--steps", type=int, default=4,
                   help="timed steps per round, the same batches every round (default 4: 16 configurations)")
    p.add_argument("--repeats", type=int, default=5, help="alternating rounds per side (default 5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--breakdown-steps", type=int, default=4, help="instrumented steps after (0: none; default 4)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-5, help="Adam's learning rate on both sides (default 1e-5)")
    p.add_argument("--seed", type=int, default=0, help="of the batch order (default 0)")
    p.add_argument("--data", default=DATA)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if min(args.configs, args.batch, args.steps, args.repeats, args.threads) < 1 or args.warmup < 0 \
            or args.breakdown_steps < 0:
        p.error("--configs, --batch, --steps, --repeats and --threads must be >= 1, --warmup and "
                "--breakdown-steps >= 0")
    out = run(args)
    print(json.dumps(out, indent=2) if args.json else _table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
