"""Rewrite the version of every pin in layers/dependencies/requirements.txt
to the one in requirements/constraints.txt (`make lock` runs it), so the
Lambda layer ships the versions the tests run with; comments and the list
of packages stay as they are."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
LAYER = REPO / "layers" / "dependencies" / "requirements.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?P<extras>\[[^\]]*\])?==(?P<version>\S+)$", re.M)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    versions = {canonical(m["name"]): m["version"] for m in PIN.finditer(CONSTRAINTS.read_text())}
    layer = PIN.sub(lambda m: f"{m['name']}{m['extras'] or ''}=={versions[canonical(m['name'])]}", LAYER.read_text())
    LAYER.write_text(layer)


if __name__ == "__main__":
    main()
