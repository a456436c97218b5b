"""The set-up promise: every venv the Makefile builds installs on any machine
with Python 3.11 and the public package index, not only on machines whose pip
knows extra wheels (this project's build machines have a CPU build of torch on
disk).

pip runs with no configuration at all (PIP_CONFIG_FILE=/dev/null and every
PIP_* variable dropped), so it sees the public index alone, and resolves
without installing (--dry-run). Skipped, saying so, when no index answers.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements"
OLDEST_PYTHON = "3.11.0"  # "Python 3.11" is any 3.11: Debian 12 ships 3.11.2
# Pure-Python packages published as source only: they install on any platform.
SOURCE_ONLY = {"sagemaker-inference", "sagemaker-pytorch-inference"}


def _public_pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _pip(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], env=_public_pip_env(), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def public_index():
    try:
        probe = _pip("install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", "pip", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.skip("the public package index did not answer within 60 s: pins not checked")
    if probe.returncode != 0:
        pytest.skip(f"the public package index is not reachable, pins not checked: {probe.stderr.strip()[-300:]}")


def group_requirements(group: str) -> list[str]:
    """pyproject.toml's optional dependencies of a group, the groups it includes flattened."""
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    found: list[str] = []
    for requirement in groups[group]:
        included = re.fullmatch(r"critic\[(.+)\]", requirement)
        items = ([item for name in included.group(1).split(",") for item in group_requirements(name)]
                 if included else [requirement])
        found += [item for item in items if item not in found]
    return found


# Each venv the Makefile builds: its requirements and its constraints file.
VENVS = {
    ".venv (make test: every group)": (group_requirements("test"), "constraints.txt"),
    ".venv (make run: the serve group)": (group_requirements("serve"), "constraints.txt"),
    ".tools/sam": (["-r", "requirements/sam.txt"], "sam-constraints.txt"),
    ".tools/checkov": (["-r", "requirements/checkov.txt"], "checkov-constraints.txt"),
}


def _pins(constraints: str) -> list[str]:
    return [line.strip() for line in (REQUIREMENTS / constraints).read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_no_pin_has_a_local_version_label():
    # "torch==2.13.0+cpu" exists only where that wheel lies; "torch==2.13.0"
    # is on the public index and also matches the CPU index's 2.13.0+cpu.
    texts = {p.name: p.read_text() for p in REQUIREMENTS.glob("*.txt")}
    texts["pyproject.toml"] = (REPO / "pyproject.toml").read_text()
    labelled = [f"{name}: {pin}" for name, text in texts.items()
                for pin in re.findall(r"[A-Za-z0-9_.\[\]-]+==[^\s;#\",]*\+[^\s;#\",]*", text)]
    assert labelled == []


def test_the_serve_group_is_what_make_run_installs():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run: setup-serve$", makefile, re.M)
    assert re.search(r"^test: setup-test\b", makefile, re.M)


@pytest.mark.parametrize("venv", sorted(VENVS))
def test_every_venv_resolves_from_the_public_index_alone(public_index, venv, tmp_path):
    requirements, constraints = VENVS[venv]
    report = tmp_path / "report.json"
    result = _pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                  "-c", str(REQUIREMENTS / constraints), *requirements)
    assert result.returncode == 0, result.stderr[-3000:]
    # A yanked release still resolves when pinned, with only a warning.
    assert "yanked version" not in result.stderr, result.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    pinned = {re.split("==", pin)[0].lower().replace("_", "-") for pin in _pins(constraints)}
    names = {i["metadata"]["name"].lower().replace("_", "-") for i in installs}
    # Resolution may add what the constraints do not name only for torch's own
    # CUDA packages on Linux (torch pins those exactly itself) and the venv's
    # installers (the Makefile bounds them: 'pip<27' 'setuptools<81').
    unpinned = sorted(n for n in names - pinned - {"pip", "setuptools", "wheel"}
                      if not n.startswith(("nvidia-", "cuda-", "triton")))
    assert unpinned == [], f"{constraints} does not pin {unpinned}: run `make lock`"
    too_new = [f"{i['metadata']['name']} {i['metadata']['version']} (Requires-Python {i['metadata']['requires_python']})"
               for i in installs if i["metadata"].get("requires_python")
               and not SpecifierSet(i["metadata"]["requires_python"]).contains(OLDEST_PYTHON)]
    assert too_new == [], f"not installable on Python {OLDEST_PYTHON}"


@pytest.mark.parametrize("platform", [
    ("macosx_11_0_arm64", "macosx_14_0_arm64"),  # Apple silicon
    ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"),  # ARM Linux
], ids=["macos-arm64", "linux-aarch64"])
def test_every_pin_has_a_wheel_for_the_other_platforms_readme_names(public_index, platform, tmp_path):
    # Only the pins: resolution for another platform may pick other
    # dependencies (no CUDA on macOS), but every pinned package must install.
    pins = [p for p in _pins("constraints.txt") if p.split("==")[0].lower().replace("_", "-") not in SOURCE_ONLY]
    pin_file = tmp_path / "pins.txt"
    pin_file.write_text("\n".join(pins) + "\n")
    platforms = [arg for tag in platform for arg in ("--platform", tag)]
    result = _pip("install", "--dry-run", "--ignore-installed", "--quiet", "--no-deps", "--only-binary=:all:",
                  *platforms, "--python-version", "3.11", "--target", str(tmp_path / "target"), "-r", str(pin_file))
    assert result.returncode == 0, result.stderr[-3000:]
