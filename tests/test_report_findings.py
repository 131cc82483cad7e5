"""write_report's data_findings: messages about the data (optbench.io.check_data's) come
first under "What is missing or suspect" in report.md and report.html and first in
"problems"; without them (None or []) the report is exactly what it was."""

from __future__ import annotations

import re

import numpy as np
import pytest

from optbench.experiments.store import Store
from optbench.metrics import ErrorStats, Metrics
from optbench.report import write_report

FINDINGS = [("validation set v.json: 2 of 2 configurations also occur in the training set t.json (positions "
             "within 0.001 A): validation errors are in-sample (e.g. v.json[0] = t.json[5])"),
            ("training set t.json: 1 of 9 configurations have atoms closer than 0.5 A (closest: atoms 1 and 2 of "
             "t.json[3], 0.3 A; e.g. t.json[3])")]


def _metrics(epa_mev: float) -> dict:
    return Metrics(n_configs=10, n_atoms=100, energy=ErrorStats(10, rmse=epa_mev * 1e-2),
                   energy_per_atom=ErrorStats(10, rmse=epa_mev * 1e-3), forces=ErrorStats(300, rmse=0.05),
                   force_component_rmse=0.05 / np.sqrt(3)).to_dict()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """A store of two BFGS seeds, one with a one-point history, and one pending run (so
    that the report has a problem of its own to list after the data findings)."""
    path = tmp_path_factory.mktemp("findings") / "results.sqlite"
    with Store(path) as st:
        for seed, epa in ((0, 1.0), (1, 1.5)):
            key = f"bfgs-{seed}"
            assert st.claim(key, {"experiment": "x", "model_name": "mtp8", "data_name": "agpd", "optimizer": "bfgs",
                                  "variant": "bfgs", "settings": {"seed": seed}}, "test")
            st.finish(key, {"status": "converged", "message": "ok", "train_seconds": 2.0 + seed,
                            "wall_seconds": 3.0, "steps": 10, "configs_evaluated": 100, "nit": 10, "nfev": 12,
                            "success": True, "best_step": 10, "notes": [], "train": _metrics(epa),
                            "valid": _metrics(epa), "best_train": _metrics(epa), "best_valid": _metrics(epa),
                            "history": {"step": [1, 2], "loss": [2.0, 1.0], "configs": [10, 20],
                                        "seconds": [1.0, 2.0], "evals": []}})
        assert st.claim("pending", {"experiment": "x", "model_name": "mtp8", "data_name": "agpd",
                                    "optimizer": "bfgs", "variant": "bfgs", "settings": {"seed": 2}}, "test")
    return path


def _stable(text: str) -> str:
    """The report text without the time it was generated."""
    return re.sub(r"generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", "generated <time>", text)


def test_no_findings_leaves_the_report_unchanged(store_path, tmp_path):
    """data_findings None (the default) or [] gives the same report.md, report.html,
    problems and figures as a call without the argument."""
    plain = write_report(store_path, tmp_path / "plain")
    for name, arg in (("none", None), ("empty", [])):
        rep = write_report(store_path, tmp_path / name, data_findings=arg)
        assert rep["problems"] == plain["problems"]
        assert _stable(rep["markdown"].read_text()) == _stable(plain["markdown"].read_text())
        assert _stable(rep["html"].read_text()) == _stable(plain["html"].read_text())
        assert [p.name for p in rep["figures"]] == [p.name for p in plain["figures"]]


def test_findings_come_first_under_what_is_missing(store_path, tmp_path):
    """The messages are the first items of the list under "What is missing or suspect",
    in order and before the report's own problems (here the pending run), in Markdown and
    HTML, and first in the returned problems."""
    plain = write_report(store_path, tmp_path / "plain")
    rep = write_report(store_path, tmp_path / "with", data_findings=FINDINGS)
    assert rep["problems"] == FINDINGS + plain["problems"] and plain["problems"]
    md = rep["markdown"].read_text()
    section = md.split("## What is missing or suspect", 1)[1].split("\n## ", 1)[0]
    items = [line[2:] for line in section.strip().splitlines() if line.startswith("- ")]
    assert items[:2] == [FINDINGS[0], FINDINGS[1]] and items[2:] == plain["problems"]
    html = rep["html"].read_text()
    assert html.index("2 of 2 configurations also occur") < html.index("1 of 9 configurations") \
        < html.index(plain["problems"][0])
