#!/usr/bin/env python3
"""Check that a report.html renders every figure in a real browser, offline.

    python scripts/check_report_html.py results/report/report.html [--screenshot shot.png]

Opens the file in headless Chromium with networking off (a dead proxy and a resolver
that finds no host: a report that needed the network would show it), lets the page's
load handler run, and reads the DOM it dumps: report.html's inline script marks each
<img> data-ok="1" when it decoded (naturalWidth > 0), "0" otherwise. Exit 0 printing
"N of N figures rendered" when all did; 1 when any did not, or the page's script did
not run; 2 when Chromium is missing (Debian: apt-get install chromium) or fails.

The browser is found as $CHROMIUM, else chromium, chromium-browser, google-chrome or
google-chrome-stable on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Networking off: every connection goes to a closed local port, every host name fails.
OFFLINE_FLAGS = ("--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND")
BASE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-extensions", "--disable-background-networking", "--mute-audio", "--hide-scrollbars")


def find_chromium() -> str | None:
    """Path of a Chromium-like browser: $CHROMIUM, else the first of BROWSERS on PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class _Images(HTMLParser):
    """Collects each <img>'s data-ok mark and alt text, and <body>'s data-figures."""

    def __init__(self):
        super().__init__()
        self.images: list[tuple[str | None, str]] = []
        self.body_mark: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append((a.get("data-ok"), a.get("alt") or (a.get("src") or "")[:40]))
        elif tag == "body":
            self.body_mark = a.get("data-figures")


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    # A fresh profile each time: no state from, or left to, another run.
    with tempfile.TemporaryDirectory(prefix="check-report-") as profile:
        cmd = [browser, *BASE_FLAGS, *OFFLINE_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def dump_dom(browser: str, url: str, budget_ms: int, timeout: float) -> str:
    """The page's DOM after load (and `budget_ms` of virtual time) as HTML text."""
    res = _run(browser, [f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
    if res.returncode != 0 or "<html" not in res.stdout.lower():
        raise RuntimeError(f"chromium --dump-dom failed (exit {res.returncode}): {res.stderr.strip()[-800:]}")
    return res.stdout


def screenshot(browser: str, url: str, path: Path, budget_ms: int, timeout: float, size: str) -> None:
    """A PNG of the page's top `size` ("W,H" pixels) at `path`."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    res = _run(browser, [f"--virtual-time-budget={budget_ms}", f"--window-size={size}",
                         f"--screenshot={path}", url], timeout)
    if res.returncode != 0 or not path.is_file():
        raise RuntimeError(f"chromium --screenshot failed (exit {res.returncode}): {res.stderr.strip()[-800:]}")


def check(dom: str) -> tuple[int, int, list[str]]:
    """(rendered, total, problems) read from a dumped DOM."""
    p = _Images()
    p.feed(dom)
    total = len(p.images)
    ok = sum(mark == "1" for mark, _ in p.images)
    problems = []
    unmarked = [alt for mark, alt in p.images if mark is None]
    if unmarked:
        problems.append(f"{len(unmarked)} image(s) carry no data-ok mark: the page's load script did not run "
                        f"(is this an optbench report.html?), e.g. {unmarked[0]!r}")
    problems += [f"figure did not render: {alt!r}" for mark, alt in p.images if mark == "0"]
    if total == 0:
        problems.append("the page has no <img>: no figure to check")
    return ok, total, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path, help="the report.html to check")
    ap.add_argument("--screenshot", type=Path, help="also write a PNG screenshot of the page here")
    ap.add_argument("--window-size", default="1280,2400", help="screenshot size W,H in pixels (default 1280,2400)")
    ap.add_argument("--budget-ms", type=int, default=5000, help="virtual time for the page to load (ms)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before Chromium is given up on")
    args = ap.parse_args(argv)

    if not args.html.is_file():
        print(f"{args.html}: no such file", file=sys.stderr)
        return 2
    browser = find_chromium()
    if browser is None:
        print("chromium not found: apt-get install chromium (or set CHROMIUM to a Chromium/Chrome binary)",
              file=sys.stderr)
        return 2
    url = args.html.resolve().as_uri()
    try:
        dom = dump_dom(browser, url, args.budget_ms, args.timeout)
        if args.screenshot:
            screenshot(browser, url, args.screenshot, args.budget_ms, args.timeout, args.window_size)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as err:
        print(f"{browser}: {err}", file=sys.stderr)
        return 2
    ok, total, problems = check(dom)
    if problems:
        print(f"{ok} of {total} figures rendered", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{ok} of {total} figures rendered" + (f"; screenshot {args.screenshot}" if args.screenshot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
