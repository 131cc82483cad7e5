"""Fast checks of the asv suite's set-up (benchmarks/, asv.conf.json); the suite itself
runs in `make bench-smoke` (CI), which takes a minute or two."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the suite is the package `benchmarks` at the repository root
    sys.path.append(str(REPO))


def _script(name: str):
    """A script of benchmarks/ loaded by path (not put on sys.path: its siblings' names,
    such as common, would shadow other modules)."""
    spec = importlib.util.spec_from_file_location(f"_asv_{name}", REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


vendor_dashboard = _script("vendor_dashboard")

BENCH_PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")


def test_asv_conf_points_at_the_suite():
    text = (REPO / "asv.conf.json").read_text()
    conf = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE))
    assert conf["benchmark_dir"] == "benchmarks" and conf["repo"] == "."
    assert all(conf[k].startswith(".asv/") for k in ("results_dir", "html_dir", "env_dir"))


def test_vendoring_covers_every_cdn_library_of_the_installed_asv():
    asv = pytest.importorskip("asv")
    page = (Path(asv.__file__).parent / "www" / "index.html").read_text()
    local = {lib.url: f"vendor/{lib.name}" for lib in vendor_dashboard.LIBRARIES}
    text, unknown = vendor_dashboard.rewrite(page, local)
    assert unknown == [], f"asv's dashboard loads libraries vendor_dashboard.py does not know: {unknown}"
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", text):
        assert "http" not in tag and "integrity" not in tag, tag
    assert text.count('src="vendor/') + text.count('href="vendor/') == len(local)


def test_orderbars_stand_in_exists():
    shim = [lib for lib in vendor_dashboard.LIBRARIES if lib.package is None]
    assert shim and all(Path(lib.path).is_file() for lib in shim)


def _benchmarks():
    for mod_name in ("bench_engine", "bench_optimizers", "bench_quality"):
        mod = importlib.import_module(f"benchmarks.{mod_name}")
        for cls_name, cls in vars(mod).items():
            if inspect.isclass(cls) and cls.__module__ == mod.__name__:
                for name, fn in vars(cls).items():
                    if name.startswith(BENCH_PREFIXES):
                        yield f"{mod_name}.{cls_name}.{name}", cls, fn


def test_every_benchmark_says_what_it_measures():
    found = list(_benchmarks())
    assert len(found) >= 6
    for name, cls, fn in found:
        assert (fn.__doc__ or "").strip() and (cls.__doc__ or "").strip(), f"{name}: no docstring"
        if name.split(".")[-1].startswith("track_"):
            assert getattr(fn, "unit", None) or getattr(cls, "unit", None), f"{name}: no unit"


def test_etn_rows_skip_until_the_engine_has_etn():
    from benchmarks import common

    eng = common.engine()
    for model in common.ETN_MODELS:
        try:
            pot = common.potential(eng, model)
        except NotImplementedError:
            continue  # asv: skipped, not failed
        assert pot.n_params > 0
