"""The package layout's contracts (docs/architecture.md): the stages import one way
(import-linter's layers contract in pyproject.toml), no module imports itself through a
cycle, validating an experiment file loads no C library, and no module of optbench/ grows
past the size where it starts to hold several jobs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "optbench"


def _lint_imports() -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports (import-linter, in the test extra) is not installed")
    return subprocess.run([exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_layers_contract_is_kept():
    """`lint-imports` finds every contract of pyproject.toml kept: cli > report >
    experiments > train > optim > objective > engine | mlip | foundation > io | metrics > status, and
    the ctypes binding importing nothing of the application."""
    done = _lint_imports()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "broken" in done.stdout and " 0 broken" in done.stdout


def test_layers_contract_catches_an_upward_import(tmp_path):
    """The contract is not vacuous: in a copy of the package in which io imports the
    training loop, import-linter reports the contract broken at that import."""
    copy = tmp_path / "optbench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    (copy / "io" / "cfg.py").write_text((copy / "io" / "cfg.py").read_text() + "\nfrom optbench.train import train\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # The copy must be the optbench that is analysed: drop the editable install's finder,
    # which would otherwise resolve optbench to the working tree.
    code = textwrap.dedent(f"""
        import sys
        sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
        sys.path.insert(0, {str(tmp_path)!r})
        import optbench
        assert optbench.__file__.startswith({str(tmp_path)!r}), optbench.__file__
        from importlinter.cli import lint_imports
        sys.exit(lint_imports(config_filename={str(tmp_path / "pyproject.toml")!r}, no_cache=True))
        """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "BROKEN" in done.stdout and "optbench.io.cfg -> optbench.train" in done.stdout


def _module_graph() -> dict[str, set[str]]:
    import grimp

    graph = grimp.build_graph("optbench", cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules():
    """No module of optbench reaches itself through imports (function-local ones
    included), at module granularity, not just between packages."""
    edges = _module_graph()
    assert len(edges) > 40
    assert _cycles(edges) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself


def test_validating_an_experiment_loads_no_c_library(tmp_path):
    """`load_experiment` + `describe_plan` (what `optbench validate` does) on a file with an
    MTP and an ETN model, in a fresh interpreter: the engine library is not mapped into the
    process and the ctypes binding is not even imported; a bad ETN is still refused, at its
    line, by the Python check of the engine's rules."""
    good = tmp_path / "etn.toml"
    good.write_text(textwrap.dedent("""
        name = "etn_check"
        [budget]
        epochs = 1
        [models.mtp8]
        level = 8
        [models.etn]
        kind = "etn"
        shape = [[1], [6], [3]]
        ranks = [[1], [1]]
        [data.agpd]
        generate = { n_train = 4, n_valid = 2 }
        [[optimizers]]
        name = "adam"
        """))
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("shape = [[1], [6], [3]]\nranks = [[1], [1]]", "shape = [[1], [0]]\nranks = [[1]]"))
    code = textwrap.dedent(f"""
        import sys
        from optbench.experiments import ExperimentError, describe_plan, load_experiment
        print(describe_plan(load_experiment({str(good)!r})).splitlines()[-1])
        try:
            load_experiment({str(bad)!r})
        except ExperimentError as err:
            print("ERROR", err)
        maps = open("/proc/self/maps").read()
        print("LIB", "libmlipc" in maps, "BINDING", "optbench.engine.capi" in sys.modules)
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "total: 2 runs" in out
    assert "bad.toml:9: models.etn.shape: not a valid ETN: ETN: core 2 couples nothing" in out, out
    assert "LIB False BINDING False" in out


def test_modules_stay_small():
    """Every module of optbench/ holds one job: none is over 500 lines."""
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert sizes and all(n <= 500 for n in sizes.values()), {k: n for k, n in sizes.items() if n > 500}
