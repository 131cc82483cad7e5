"""Build the Docker image for real and check it against the host: `make docker-check`.

No Docker engine runs here and no container registry is reachable, so the image is built
rootless with buildah (vfs storage, chroot isolation) on a base made from Debian's own
packages:

1. localhost/bookworm-min: `debootstrap --variant=minbase bookworm`, imported with podman;
2. localhost/bookworm-python3.11: docker/python-base.Containerfile (Debian's python3 and a
   venv first on PATH), passed to the Dockerfile as PYTHON_IMAGE;
3. localhost/optbench: the Dockerfile itself, unchanged.

Both bases are built only when missing. The host's CA bundle is bind-mounted into the build
(pip inside reaches PyPI through the same proxies the host does). Then, inside the image
(`buildah run`), as its non-root user: `optbench efs` on a potential and data written by the
host, and a short `optbench train` (BFGS, epochs budget, one thread); both are compared
with the same commands on the host: energies, forces and stresses to 1e-9 relative (the
image's engine is built without -march=native, so the last bits may differ), the training
history's losses to 1e-6 relative over its first iterations.

Exit 0 with "skipped: reason" when buildah, podman or debootstrap is missing or cannot run
here (a machine without user namespaces, say); exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORAGE = ["--storage-driver", "vfs"]
MIRROR = "http://deb.debian.org/debian"
BASE, PYTHON, IMAGE = "localhost/bookworm-min", "localhost/bookworm-python3.11", "localhost/optbench"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def skip(reason: str) -> int:
    print(f"docker-check: skipped: {reason}")
    return 0


def have_image(name: str) -> bool:
    out = subprocess.run(["buildah", *STORAGE, "images", "-q", name], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def ca_mounts(tmp: Path) -> list[str]:
    """Bind mounts that give pip inside the build the host's CA bundle (and so the host's
    proxies); at another path than Debian's own bundle, which the ca-certificates package
    rewrites."""
    bundle = os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    if not Path(bundle).is_file():
        return []
    conf = tmp / "pip.conf"
    conf.write_text("[global]\ncert = /opt/host-ca.crt\n")
    return ["-v", f"{bundle}:/opt/host-ca.crt:ro", "-v", f"{conf}:/etc/pip.conf:ro"]


def build(tmp: Path, rebuild: bool) -> None:
    if not have_image(BASE):
        rootfs = tmp / "rootfs"
        run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR], stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["podman", *STORAGE, "import", "-", BASE], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        tar.wait()
        shutil.rmtree(rootfs, ignore_errors=True)
    mounts = ca_mounts(tmp)
    if not have_image(PYTHON):
        run(["buildah", *STORAGE, "bud", "--isolation", "chroot", *mounts, "-f",
             str(ROOT / "docker" / "python-base.Containerfile"), "-t", PYTHON, str(ROOT / "docker")])
    if rebuild or not have_image(IMAGE):
        run(["buildah", *STORAGE, "bud", "--isolation", "chroot", *mounts, "--build-arg", f"PYTHON_IMAGE={PYTHON}",
             "-t", IMAGE, str(ROOT)])


def inside(container: str, work: Path, args: list[str]) -> None:
    """`optbench ARGS` inside the image, with `work` mounted at /work/check."""
    run(["buildah", *STORAGE, "run", "--isolation", "chroot", "-v", f"{work}:/work/check", container, "--",
         "optbench", *args])


def host(args: list[str]) -> None:
    """`optbench ARGS` on this machine (the optbench beside this Python)."""
    run([str(Path(sys.executable).parent / "optbench"), *args])


def compare_efs(a: Path, b: Path) -> float:
    """The largest relative difference of energies, forces and stresses of two .cfg files."""
    import numpy as np

    from optbench.io import read_cfg

    worst = 0.0
    for x, y in zip(read_cfg(a).configs, read_cfg(b).configs, strict=True):
        for u, v in ((x.energy, y.energy), (x.forces, y.forces), (x.stress, y.stress)):
            u, v = np.asarray(u, float), np.asarray(v, float)
            scale = max(float(np.max(np.abs(u))), 1e-12)
            worst = max(worst, float(np.max(np.abs(u - v))) / scale)
    return worst


def check(tmp: Path) -> list[str]:
    """Run the same commands in the image and on the host; the problems found."""
    from optbench.io import generate_agpd_split, write_cfg

    work = tmp / "work"
    work.mkdir()
    os.chmod(work, 0o777)  # the image's user (uid 10001) writes here
    train, valid = generate_agpd_split(40, 10, seed=3)
    write_cfg(train, work / "train.cfg")
    write_cfg(valid, work / "valid.cfg")
    host(["train", "mtp level=8", str(work / "train.cfg"), "--optimizer", "bfgs", "--budget", "epochs=15",
          "--threads", "1", "--save-to", str(work / "pot.almtp")])
    problems = []
    container = subprocess.run(["buildah", *STORAGE, "from", IMAGE], capture_output=True, text=True,
                               check=True).stdout.strip()
    try:
        inside(container, work, ["efs", "/work/check/pot.almtp", "/work/check/valid.cfg", "-o", "/work/check/efs_image.cfg"])
        inside(container, work, ["train", "mtp level=8", "/work/check/train.cfg", "--valid", "/work/check/valid.cfg",
                                 "--optimizer", "bfgs", "--budget", "epochs=10", "--threads", "1",
                                 "--save-to", "/work/check/fit_image.almtp", "--json", "/work/check/run_image.json"])
    finally:
        subprocess.run(["buildah", *STORAGE, "rm", container], capture_output=True)
    host(["efs", str(work / "pot.almtp"), str(work / "valid.cfg"), "-o", str(work / "efs_host.cfg")])
    host(["train", "mtp level=8", str(work / "train.cfg"), "--valid", str(work / "valid.cfg"), "--optimizer", "bfgs",
          "--budget", "epochs=10", "--threads", "1", "--save-to", str(work / "fit_host.almtp"),
          "--json", str(work / "run_host.json")])
    efs = compare_efs(work / "efs_image.cfg", work / "efs_host.cfg")
    print(f"efs: largest relative difference image vs host {efs:.2e}")
    if not efs < 1e-9:
        problems.append(f"efs differs between the image and the host by {efs:.2e} relative")
    image, here = (json.loads((work / f"run_{w}.json").read_text()) for w in ("image", "host"))
    la, lb = image["history"]["loss"][:5], here["history"]["loss"][:5]
    rel = max(abs(a - b) / abs(b) for a, b in zip(la, lb, strict=True))
    print(f"train: status {image['status']} / {here['status']}, first 5 losses differ by {rel:.2e} relative; "
          f"final validation EPA RMSE {1e3 * image['valid']['energy_per_atom']['rmse']:.4f} / "
          f"{1e3 * here['valid']['energy_per_atom']['rmse']:.4f} meV/atom")
    if image["status"] != here["status"] or not rel < 1e-6:
        problems.append(f"train: statuses {image['status']}/{here['status']}, losses differ by {rel:.2e}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rebuild", action="store_true", help="build the optbench image even if one exists")
    args = p.parse_args()
    for tool in ("buildah", "podman", "debootstrap"):
        if shutil.which(tool) is None:
            return skip(f"{tool} is not installed (apt-get install buildah podman debootstrap)")
    probe = subprocess.run(["buildah", *STORAGE, "images"], capture_output=True, text=True)
    if probe.returncode != 0:
        return skip(f"buildah cannot run here: {probe.stderr.strip().splitlines()[-1:]}")
    with tempfile.TemporaryDirectory(prefix="optbench-docker-") as tmp:
        build(Path(tmp), args.rebuild)
        problems = check(Path(tmp))
    for line in problems:
        print(f"docker-check: FAILED: {line}")
    print("docker-check: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
