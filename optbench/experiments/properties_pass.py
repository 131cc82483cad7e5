"""After the runs: the physical properties of each finished run's potential, and the
reference's, computed into the store (the [properties] section, properties_plan.py).

What is stored is kept: a (run, property, structure) with a result computed with the
same settings is never computed again (one that failed, the tool's failure, is tried
again), so a sweep stopped during this pass, or a property
added to the file later, costs only what is missing. A property is recomputed when its
settings in the file changed. Runs are spread over `workers` spawned processes, one run's
whole list at a time; the runner's process alone writes the store.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TextIO

from optbench.experiments.store import Store
from optbench.status import RunStatus

__all__ = ["PropertiesSummary", "compute_experiment_properties", "settings_json"]


def settings_json(plan: dict, name: str) -> str:
    """The settings one property of the plan is computed with, as canonical JSON (its own
    settings and the eos ones, which decide the equilibrium structure it starts from)."""
    return json.dumps({"own": plan["settings"].get(name, {}), "eos": plan["settings"].get("eos", {})},
                      sort_keys=True)


@dataclass
class PropertiesSummary:
    """What a properties pass did: results computed, by status, for runs and reference."""

    computed: dict[str, int] = field(default_factory=dict)
    reference: int = 0
    runs: int = 0
    seconds: float = 0.0

    def text(self) -> str:
        """One line for the terminal."""
        by = ", ".join(f"{n} {s}" for s, n in sorted(self.computed.items())) or "nothing new"
        return (f"properties: {by} for {self.runs} run(s), {self.reference} reference result(s), "
                f"{self.seconds:.0f} s")


def _run_properties(task: dict) -> list[tuple[dict, float]]:
    """In a worker: one run's properties (task: potential, species, threads, plan, todo
    pairs) as [(PropertyResult dict, seconds)]. A potential that cannot be loaded gives
    one failed result per pair."""
    from optbench.properties import compute_properties
    from optbench.properties.calculators import calculator_for

    plan, todo = task["plan"], {tuple(p) for p in task["todo"]}
    out: list[tuple[dict, float]] = []
    try:
        calc = calculator_for(task["potential"], task["species"], threads=task["threads"])
    except Exception as err:
        return _failed_task(task, f"{type(err).__name__}: {err}")
    compute_properties(calc, plan["structures"], plan["compute"], plan["settings"], only=plan.get("only"),
                       skip=lambda n, s: (n, s) not in todo,
                       done=lambda r, sec: out.append((r.to_dict(), sec)))
    return out


def _failed_task(task: dict, message: str) -> list[tuple[dict, float]]:
    """Status "failed" for every (property, structure) of a task, with `message`."""
    from optbench.properties import FAILED, PropertyResult

    return [(PropertyResult(n, s, status=FAILED, message=message).to_dict(), 0.0) for n, s in sorted(task["todo"])]


def _species(data: dict, cache: dict) -> list[str] | None:
    """The element of each species index of a run's potential: its training data's (the
    run spec's data dict)."""
    label = json.dumps(data, sort_keys=True)
    if label not in cache:
        from optbench.experiments.record import load_data

        cache[label] = load_data(data)[0].species
    return cache[label]


def _todo_runs(experiment, store: Store, plan: dict, all_versions: bool = False) -> list[dict]:
    """One task per finished run with a potential file and properties not yet stored: the
    experiment's runs on the current code, or with `all_versions` its finished runs in
    the store whatever code version trained them."""
    from optbench.properties import applies

    runs = store.runs_frame(experiment.name)
    runs = runs[runs["status"] != RunStatus.FAILED]
    if not all_versions:
        runs = runs[runs["key"].isin(experiment.keys())]
    have = store.property_settings(runs["key"], plan["potential"])
    wanted = {n: settings_json(plan, n) for n in plan["compute"]}
    column = "best_potential_path" if plan["potential"] == "best" else "potential_path"
    species_cache: dict = {}
    tasks = []
    for key, path, spec_text in zip(runs["key"], runs[column], runs["spec"]):
        todo = [(n, s) for s in plan["structures"] for n in plan["compute"]
                if applies(n, s, plan.get("only")) and have.get((key, n, s)) != wanted[n]]
        if not todo or not path or not Path(path).is_file():
            continue
        spec = json.loads(spec_text)  # as stored: a spec of an older code version may lack today's fields
        tasks.append({"key": key, "potential": path, "species": _species(spec["data"], species_cache),
                      "threads": experiment.threads, "plan": plan, "todo": todo,
                      "label": f"{spec['model_name']}/{spec['data_name']} {spec['variant']} seed "
                               f"{spec.get('settings', {}).get('seed', 0)}"})
    return tasks


def _reference_pass(experiment, store: Store, plan: dict, say) -> int:
    """The reference's results not yet stored; how many were computed."""
    if plan["reference"] == "none":
        return 0
    from optbench.properties.references import reference_results

    label = plan["reference"]
    have = store.reference_settings(experiment.name, label)
    count = [0]

    def done(result, seconds):
        store.put_reference(experiment.name, label, result.to_dict(), settings_json(plan, result.name), seconds)
        count[0] += 1

    reference_results(label, plan["structures"], plan["compute"], plan["settings"], numbers=plan["numbers"],
                      dft_data=plan["dft_data"], done=done, only=plan.get("only"),
                      skip=lambda n, s: have.get((n, s)) == settings_json(plan, n),
                      progress=lambda line: say(f"  reference {label}: {line}"))
    return count[0]


def compute_experiment_properties(experiment, *, workers: int | None = None, quiet: bool = False,
                                  stream: TextIO | None = None, all_versions: bool = False) -> PropertiesSummary:
    """Compute the [properties] of `experiment` (experiment.Experiment) that its store
    lacks: the reference's, then each finished run's (on the current code; with
    `all_versions` every finished run of the experiment in the store, whatever code
    version trained it), on `workers` processes; results are stored as they arrive
    (workers: default the machine's cores). Returns a PropertiesSummary (empty when the
    file asks for none)."""
    from optbench.experiments.runner import default_workers

    workers = workers or default_workers()
    summary = PropertiesSummary()
    plan = experiment.properties
    if not plan:
        return summary
    out = stream or sys.stderr
    t0 = time.perf_counter()

    def say(line: str) -> None:
        if not quiet:
            out.write(line + "\n")
            out.flush()

    with Store(experiment.store_path) as store:
        summary.reference = _reference_pass(experiment, store, plan, say)
        tasks = _todo_runs(experiment, store, plan, all_versions)
        if tasks:
            say(f"{experiment.name}: properties of {len(tasks)} run(s) on {min(workers, len(tasks))} worker(s)")
        for task, results in _map(tasks, workers):
            for result, seconds in results:
                store.put_property(task["key"], plan["potential"], result, settings_json(plan, result["name"]),
                                   seconds)
                summary.computed[result["status"]] = summary.computed.get(result["status"], 0) + 1
            summary.runs += 1
            bad = [f"{r['structure']} {r['name']} {r['status']}" for r, _ in results if r["status"] != "ok"]
            say(f"  [{summary.runs}/{len(tasks)}] {task['label']}: {len(results)} result(s)"
                + (f"; {', '.join(bad)}" if bad else ""))
    summary.seconds = time.perf_counter() - t0
    return summary


def _map(tasks: list[dict], workers: int):
    """(task, results) as each finishes: in this process for one worker or one task, else
    on spawned processes (the engine's library and torch are not fork-safe)."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, _run_properties(task)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(_run_properties, t): t for t in tasks}
        try:
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in ready:
                    task = pending.pop(fut)
                    try:
                        results = fut.result()
                    except Exception as err:  # a worker that died (memory, a signal): its run fails alone
                        results = _failed_task(task, f"worker process failed: {type(err).__name__}: {err}")
                    yield task, results
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
