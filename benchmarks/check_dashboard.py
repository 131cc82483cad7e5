#!/usr/bin/env python
"""Check that asv's published dashboard renders its graphs with no network.

Serves the html folder (default .asv/html, after `asv publish` and
benchmarks/vendor_dashboard.py) from a local http.server on 127.0.0.1 (Chromium does not
let file:// pages fetch the JSON the graphs are drawn from) and opens it in headless
Chromium with networking off: every host name resolves to nothing and any proxied
request goes to a closed port, so only the local server's loopback address answers.
Checks:

* the benchmark grid lists every benchmark of index.json and draws flot canvases;
* every benchmark's page (or the --benchmark ones) draws its graph: a flot canvas with
  axis tick labels in #main-graph, and no "no data" message;
* asv's error page never appears (it replaces the page when a script fails to load,
  e.g. a library still pointing at a CDN), and the server answered every request.

With --screenshot PNG, a picture of one benchmark's page is saved (--shot-benchmark).
Exits 1 naming each failure, 2 when Chromium or the html folder is missing.

    python benchmarks/check_dashboard.py [HTML_DIR] [--benchmark NAME ...]
        [--screenshot docs/figures/asv_dashboard.png] [--shot-benchmark NAME]
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Networking off: no host name resolves and any proxied request goes to a closed port.
# Only the local server stays reachable: its address is excluded from the resolver rules
# (which would otherwise catch address literals too) and Chromium never proxies loopback.
OFFLINE = ("--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
ERROR_PAGE = "Can not determine continental origin of swallow"  # asv's error.html
NO_DATA = re.compile(r"No data for this combination|No graphs to load")  # graphdisplay.js's words


def _report_check():
    """scripts/check_report_html.py, the report's rendering check: its browser lookup
    ($CHROMIUM first) and base flags serve here too. (Its own offline flags leave no
    address reachable, so they are not used: this page needs the local server.)"""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import check_report_html
    finally:
        sys.path.pop(0)
    return check_report_html


def find_browser() -> str | None:
    """The Chromium executable ($CHROMIUM, else chromium, ... on PATH), or None."""
    return _report_check().find_chromium()


class _Handler(SimpleHTTPRequestHandler):
    """Serves the folder quietly and records every answer's status."""

    def log_message(self, fmt, *args):  # keep the output to the check's own lines
        pass

    def log_request(self, code="-", size="-"):
        self.server.requests.append((self.path, int(code) if str(code).isdigit() else 0))


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # a page that moves on (to asv's error page, say) drops requests in flight: not news
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(html_dir: Path) -> ThreadingHTTPServer:
    """A server of html_dir on 127.0.0.1 (a free port), answering in a thread."""
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(html_dir)))
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chromium(browser: str, url: str, *, screenshot: Path | None = None, budget_ms: int = 15000) -> str:
    """The DOM of `url` after `budget_ms` of virtual time (or '' after a screenshot)."""
    with tempfile.TemporaryDirectory(prefix="asv-check-") as profile:  # no state between runs
        cmd = [browser, *_report_check().BASE_FLAGS, *OFFLINE, f"--user-data-dir={profile}",
               f"--virtual-time-budget={budget_ms}", "--window-size=1400,850"]
        if screenshot is not None:
            screenshot = screenshot.resolve()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
        cmd += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
        out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0 or (screenshot is not None and not screenshot.is_file()):
        raise RuntimeError(f"chromium failed (exit {out.returncode}) on {url}: {out.stderr.strip()[-800:]}")
    return out.stdout


def check(html_dir: Path, browser: str, benchmarks: list[str] | None = None,
          screenshot: Path | None = None, shot_benchmark: str | None = None) -> list[str]:
    """Problems found on the published dashboard in html_dir (empty: it renders)."""
    names = sorted(json.loads((html_dir / "index.json").read_text())["benchmarks"])
    if not names:
        return [f"{html_dir / 'index.json'} lists no benchmarks"]
    problems = []
    server = serve(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    try:
        dom = chromium(browser, base)
        problems += _page_problems("benchmark grid", dom)
        shown = len(re.findall(r'class="benchmark-plot"', dom))
        if shown != len(names):
            problems.append(f"benchmark grid: {shown} plots for {len(names)} benchmarks")
        if "flot-base" not in dom:
            problems.append("benchmark grid: no flot canvas drawn")
        for name in benchmarks or names:
            problems += _graph_problems(name, chromium(browser, f"{base}#{name}"))
        if screenshot is not None:
            chromium(browser, f"{base}#{shot_benchmark or names[0]}", screenshot=screenshot)
    finally:
        server.shutdown()
    problems += sorted({f"server answered {code} for {path}" for path, code in server.requests if code >= 400})
    if not any(path.startswith("/vendor/") for path, _ in server.requests):
        problems.append("no vendored library was requested: is the page still loading them from the web?")
    return problems


def _page_problems(what: str, dom: str) -> list[str]:
    if ERROR_PAGE in dom:
        return [f"{what}: asv's error page (a JavaScript library failed to load)"]
    if "main-graph" not in dom and "summarygrid" not in dom:
        return [f"{what}: asv's page did not load (no dashboard elements)"]
    return []


def _graph_problems(name: str, dom: str) -> list[str]:
    problems = _page_problems(name, dom)
    if problems:
        return problems
    start = dom.find('id="main-graph"')
    graph = dom[start:start + 20000] if start >= 0 else ""
    if "flot-base" not in graph:
        problems.append(f"{name}: no graph canvas in #main-graph")
    if len(re.findall(r"flot-tick-label", graph)) < 2:
        problems.append(f"{name}: graph has no axis tick labels")
    if NO_DATA.search(graph):
        problems.append(f"{name}: graph says {NO_DATA.search(graph).group(0)!r}")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("html_dir", nargs="?", default=str(REPO / ".asv" / "html"))
    p.add_argument("--benchmark", action="append", help="check only these pages (repeatable)")
    p.add_argument("--screenshot", type=Path, help="save a PNG of one benchmark's page here")
    p.add_argument("--shot-benchmark", default="bench_engine.LossGrad.time_loss_grad",
                   help="the page of the screenshot")
    args = p.parse_args(argv)
    html_dir = Path(args.html_dir)
    browser = find_browser()
    if browser is None:
        print("check_dashboard: error: no Chromium ($CHROMIUM, chromium, chromium-browser, google-chrome) "
              "(Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    if not (html_dir / "index.json").is_file():
        print(f"check_dashboard: error: {html_dir / 'index.json'} not found: run `asv publish` and "
              "benchmarks/vendor_dashboard.py first (make dashboard)", file=sys.stderr)
        return 2
    problems = check(html_dir, browser, args.benchmark, args.screenshot, args.shot_benchmark)
    if problems:
        print("check_dashboard: FAILED, the dashboard does not render offline:", file=sys.stderr)
        for line in problems:
            print("  " + line, file=sys.stderr)
        return 1
    print(f"check_dashboard: ok, every graph of {html_dir} renders with networking off"
          + (f"; screenshot {args.screenshot}" if args.screenshot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
