#!/usr/bin/env python
"""CI smoke of the asv suite: every benchmark once, then the dashboard checked offline.

1. `asv run --quick` of the whole suite in this Python's environment (asv's `existing`
   environment, so nothing is built), results filed under HEAD's hash in a scratch
   folder (.asv/smoke/, not the real .asv/results: one quick sample is no measurement).
   A benchmark that raises, or a module that does not import, fails the smoke (asv
   exits non-zero); skipped parameters (NotImplementedError, e.g. the ETN rows before
   the engine has ETN) do not.
2. `asv publish` of those results, benchmarks/vendor_dashboard.py, and
   benchmarks/check_dashboard.py: the page must draw every benchmark's graph in headless
   Chromium with networking off. Without Chromium this step is skipped, saying so.

About 1 to 2 minutes on 2 cores. Exit status 0 only when everything passed.

    python benchmarks/smoke.py [--no-dashboard]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRATCH = REPO / ".asv" / "smoke"


def _config() -> Path:
    """asv.conf.json with results, html and environments under .asv/smoke."""
    text = (REPO / "asv.conf.json").read_text(encoding="utf-8")
    conf = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE))  # asv allows // comments
    # absolute paths: asv takes relative ones from the config file's folder
    conf.update(repo=str(REPO), benchmark_dir=str(REPO / conf.get("benchmark_dir", "benchmarks")),
                results_dir=str(SCRATCH / "results"), html_dir=str(SCRATCH / "html"), env_dir=str(SCRATCH / "env"))
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    path = SCRATCH / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=1), encoding="utf-8")
    return path


def _asv(*args: str) -> int:
    cmd = [sys.executable, "-m", "asv", *args]
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=REPO, check=False).returncode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--no-dashboard", action="store_true", help="only run the benchmarks")
    args = p.parse_args(argv)

    if not (Path.home() / ".asv-machine.json").is_file():  # else asv asks about the machine
        _asv("machine", "--yes")
    config = str(_config())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()
    rc = _asv("run", "--config", config, "--quick", "--show-stderr", "--environment",
              f"existing:{sys.executable}", "--set-commit-hash", head)
    if rc != 0:
        print(f"smoke: FAILED: asv run exited {rc}: a benchmark failed or the suite did not import "
              "(see above)", file=sys.stderr)
        return 1
    if args.no_dashboard:
        print("smoke: ok (every benchmark ran once; dashboard not checked)")
        return 0

    from check_dashboard import check, find_browser
    from vendor_dashboard import VendorError, vendor

    html = SCRATCH / "html"
    if _asv("publish", "--config", config) != 0:
        print("smoke: FAILED: asv publish", file=sys.stderr)
        return 1
    try:
        vendor(html, REPO / ".asv" / "vendor-cache")
    except VendorError as err:
        print(f"smoke: FAILED: vendoring the dashboard's libraries: {err}", file=sys.stderr)
        return 1
    browser = find_browser()
    if browser is None:
        print("smoke: ok, but the dashboard rendering check was SKIPPED: no Chromium on PATH "
              "(apt-get install chromium)")
        return 0
    problems = check(html, browser)
    if problems:
        print("smoke: FAILED: the published dashboard does not render offline:", file=sys.stderr)
        for line in problems:
            print("  " + line, file=sys.stderr)
        return 1
    print("smoke: ok (every benchmark ran once; the dashboard draws every graph with networking off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
