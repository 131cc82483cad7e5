#!/usr/bin/env python
"""Make asv's published dashboard work with no network: copy the JavaScript and CSS
libraries its index.html loads from CDNs into the html folder and point it at the copies.

asv 0.6's www/index.html loads jQuery, flot and four flot plugins, stupidtable,
blueimp-md5 and Bootstrap from code.jquery.com, cdnjs and jsdelivr. npm is not reachable
from this project's machines, PyPI and Debian are, so the copies come from Debian
packages (LIBRARIES below says which file of which package stands for which URL):
a file of an installed package is copied from /usr/share; otherwise the package is
fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a cache
(.asv/vendor-cache; nothing is installed, no root needed unless apt's lists are missing,
then `apt-get update` is run when root). Nothing is committed: run after `asv publish`.

flot-orderbars 1.0.0 is in no Debian or PyPI package; benchmarks/www/flot_orderbars.js, a
small stand-in written for this project, takes its place (bars of one x slot side by side).

The script tags' integrity= hashes belong to the CDN files, so they are dropped with the
crossorigin/referrerpolicy attributes. A CDN URL that LIBRARIES does not know (a newer asv
with another library) is an error naming it, not a page that silently needs the network.
vendor/SOURCES.txt in the html folder records where each copy came from.

    python benchmarks/vendor_dashboard.py [HTML_DIR] [--cache DIR]    (default .asv/html)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIM = Path(__file__).resolve().parent / "www" / "flot_orderbars.js"


@dataclass(frozen=True)
class Library:
    """A CDN URL of asv's index.html, the Debian package and file that replace it (package
    None: a file of this repository), and the name of the copy under vendor/."""

    url: str
    package: str | None
    path: str
    name: str
    note: str = ""


_FLOT = "/usr/share/haskell-js-flot/"  # flot 0.8.3 itself, as Haskell's js-flot ships it
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs/"
_JSDELIVR = "https://cdn.jsdelivr.net/npm/"
LIBRARIES = [
    Library("https://code.jquery.com/jquery-3.3.1.min.js", "libjs-jquery",
            "/usr/share/javascript/jquery/jquery.min.js", "jquery.min.js", "jQuery 3.6 for 3.3.1"),
    # Debian's libjs-jquery-flot is flot 4, whose plugins and options differ; the
    # libghc-js-flot-data package carries the very 0.8.3 files asv asks for.
    Library(_CDNJS + "flot/0.8.3/jquery.flot.min.js", "libghc-js-flot-data",
            _FLOT + "jquery.flot.min.js", "jquery.flot.min.js"),
    Library(_CDNJS + "flot/0.8.3/jquery.flot.time.min.js", "libghc-js-flot-data",
            _FLOT + "jquery.flot.time.min.js", "jquery.flot.time.min.js"),
    Library(_CDNJS + "flot/0.8.3/jquery.flot.selection.min.js", "libghc-js-flot-data",
            _FLOT + "jquery.flot.selection.min.js", "jquery.flot.selection.min.js"),
    Library(_CDNJS + "flot/0.8.3/jquery.flot.categories.min.js", "libghc-js-flot-data",
            _FLOT + "jquery.flot.categories.min.js", "jquery.flot.categories.min.js"),
    Library(_JSDELIVR + "flot-orderbars@1.0.0/js/jquery.flot.orderBars.js", None,
            str(SHIM), "jquery.flot.orderBars.js", "own stand-in: packaged nowhere but npm"),
    Library(_CDNJS + "stupidtable/1.0.1/stupidtable.min.js", "libjs-jquery-stupidtable",
            "/usr/share/javascript/jquery-stupidtable/stupidtable.min.js", "stupidtable.min.js",
            "stupidtable 1.1 for 1.0.1"),
    Library(_CDNJS + "blueimp-md5/2.19.0/js/md5.min.js", "node-blueimp-md5",
            "/usr/share/javascript/blueimp-md5/md5.min.js", "md5.min.js"),
    Library(_JSDELIVR + "bootstrap@3.1.1/dist/js/bootstrap.min.js", "libjs-bootstrap",
            "/usr/share/javascript/bootstrap/js/bootstrap.min.js", "bootstrap.min.js",
            "Bootstrap 3.4 for 3.1.1"),
    Library(_JSDELIVR + "bootstrap@3.1.1/dist/css/bootstrap.min.css", "libjs-bootstrap",
            "/usr/share/javascript/bootstrap/css/bootstrap.min.css", "bootstrap.min.css",
            "Bootstrap 3.4 for 3.1.1 (glyphicon fonts not copied: asv uses none)"),
]

# a <script ...> or <link ...> start tag, and a remote src/href in it
_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE | re.DOTALL)
_REMOTE = re.compile(r"""\b(?:src|href)\s*=\s*["'](https?://[^"']+)["']""", re.IGNORECASE)
_DROP = re.compile(r"""\s+(?:integrity|crossorigin|referrerpolicy)\s*=\s*["'][^"']*["']""", re.IGNORECASE)


class VendorError(RuntimeError):
    """A library could not be found or fetched, or the page needs one LIBRARIES lacks."""


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _installed_version(package: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    out = _run(["dpkg-query", "-W", "-f", "${Status} ${Version}", package])
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and "installed" in words[:3] else None


def _download(package: str, cache: Path) -> Path:
    """Unpack `package` (apt-get download + dpkg-deb -x) under cache/root; the .deb."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise VendorError(f"{package}: not installed, and no apt-get/dpkg-deb to fetch it "
                          "(a Debian or Ubuntu machine is needed, or install its files by hand)")
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        out = _run(["apt-get", "download", package], cwd=debs)
        if out.returncode != 0 and os.geteuid() == 0:  # usually: apt's package lists not there yet
            _run(["apt-get", "update", "-qq"])
            out = _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if out.returncode != 0 or not found:
            raise VendorError(f"{package}: apt-get download failed (rc={out.returncode}): "
                              f"{(out.stderr or out.stdout).strip()[-500:]}\n"
                              "  run `apt-get update` as root, or `apt-get install " + package + "`")
    out = _run(["dpkg-deb", "-x", str(found[-1]), str(cache / "root")])
    if out.returncode != 0:
        raise VendorError(f"{found[-1]}: dpkg-deb -x failed: {out.stderr.strip()}")
    return found[-1]


def locate(lib: Library, cache: Path) -> tuple[Path, str]:
    """The file that stands for `lib` and a line saying where it came from."""
    if lib.package is None:
        return Path(lib.path), f"this repository ({Path(lib.path).relative_to(REPO)})"
    if Path(lib.path).is_file():
        return Path(lib.path), f"Debian {lib.package} {_installed_version(lib.package) or ''} (installed)".rstrip()
    unpacked = cache / "root" / lib.path.lstrip("/")
    debs = sorted((cache / "debs").glob(f"{lib.package}_*.deb"))
    if not (unpacked.is_file() and debs):
        debs = [_download(lib.package, cache)]
    if not unpacked.is_file():
        raise VendorError(f"{lib.package} has no {lib.path}: another version of the package? "
                          "Update LIBRARIES in benchmarks/vendor_dashboard.py")
    return unpacked, f"Debian {debs[-1].name} (downloaded)"


def rewrite(html: str, local: dict[str, str]) -> tuple[str, list[str]]:
    """`html` with the remote src/href of script and link tags replaced by local paths
    (and their SRI attributes dropped); the remote URLs that `local` does not cover."""
    unknown: list[str] = []

    def fix(tag_match: re.Match) -> str:
        tag = tag_match.group(0)
        remote = _REMOTE.search(tag)
        if not remote:
            return tag
        url = remote.group(1)
        if url not in local:
            unknown.append(url)
            return tag
        return _DROP.sub("", tag.replace(url, local[url]))

    return _TAG.sub(fix, html), unknown


def vendor(html_dir: Path, cache: Path) -> list[str]:
    """Vendor every library into html_dir/vendor and rewrite the pages of html_dir;
    the lines of vendor/SOURCES.txt. VendorError when something is missing."""
    pages = sorted(html_dir.glob("*.html"))
    if not (html_dir / "index.html").is_file():
        raise VendorError(f"{html_dir / 'index.html'} not found: run `asv publish` first")
    wanted = {m.group(1) for page in pages for tag in _TAG.findall(page.read_text(encoding="utf-8"))
              for m in [_REMOTE.search(tag)] if m}
    known = {lib.url: lib for lib in LIBRARIES}
    missing = sorted(wanted - set(known))
    if missing:
        raise VendorError("asv's page loads libraries this script does not know (add them to LIBRARIES in "
                          "benchmarks/vendor_dashboard.py):\n  " + "\n  ".join(missing))
    out_dir = html_dir / "vendor"
    out_dir.mkdir(exist_ok=True)
    local, lines = {}, []
    for url in sorted(wanted):
        lib = known[url]
        src, origin = locate(lib, cache)
        shutil.copyfile(src, out_dir / lib.name)
        local[url] = f"vendor/{lib.name}"
        lines.append(f"vendor/{lib.name}  <-  {origin}: {lib.path}  (for {url}){'; ' + lib.note if lib.note else ''}")
    for page in pages:
        text, _ = rewrite(page.read_text(encoding="utf-8"), local)
        page.write_text(text, encoding="utf-8")
    (out_dir / "SOURCES.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("html_dir", nargs="?", default=str(REPO / ".asv" / "html"), help="asv's html_dir")
    p.add_argument("--cache", default=str(REPO / ".asv" / "vendor-cache"), help="downloaded .deb files")
    args = p.parse_args(argv)
    try:
        lines = vendor(Path(args.html_dir), Path(args.cache))
    except VendorError as err:
        print(f"vendor_dashboard: error: {err}", file=sys.stderr)
        return 1
    print(f"vendor_dashboard: {len(lines)} libraries copied into {Path(args.html_dir) / 'vendor'}")
    for line in lines:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
