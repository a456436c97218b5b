"""The `sam build` and `sam deploy` command lines, and samconfig.toml.

The first deployment from an interactive terminal is `sam deploy --guided`:
SAM asks for the stack name, region and every parameter (pre-filled with
what critic computed) and saves the answers to samconfig.toml. Later
deployments read samconfig.toml and pass only what changes (the model's S3
URI and any --parameter given); a parameter not passed keeps its deployed
value. Without a terminal, or with --yes, everything is passed explicitly.
"""
from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from critic import REPO_ROOT
from critic.errors import UsageError

SAM = REPO_ROOT / ".tools" / "sam" / "bin" / "sam"
SAMCONFIG = REPO_ROOT / "samconfig.toml"
# The template creates IAM roles (with generated names) and nothing needing more.
CAPABILITIES = ("CAPABILITY_IAM",)


def executable(dry_run: bool = False) -> str:
    """The SAM CLI of `make tools` (.tools/sam), else one on PATH."""
    if SAM.exists():
        return str(SAM)
    found = shutil.which("sam")
    if found:
        return found
    if dry_run:
        return str(SAM)
    raise UsageError("the AWS SAM CLI is not installed: run `make tools` (it installs it into .tools/sam)")


def read_config(path: Path = SAMCONFIG) -> dict:
    """samconfig.toml's deploy parameters (global ones, then deploy's), or {}."""
    if not path.exists():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: cannot read it: {error}") from None
    default = document.get("default", {})
    return {**default.get("global", {}).get("parameters", {}), **default.get("deploy", {}).get("parameters", {})}


def build_command(sam: str, use_container: bool = False) -> list[str]:
    """Run in the repository: template.yaml in, .aws-sam/build/ out. In a
    container, the DomainLayer's links to batch/ and contract/ (its ContentUri
    is layers/domain/) resolve only if sam mounts them: --mount-symlinks."""
    container = ["--use-container", "--mount-symlinks"] if use_container else []
    return [sam, "build", "--template-file", "template.yaml", *container]


def deploy_command(sam: str, *, stack: str, region: str, overrides: dict[str, str], mode: str,
                   yes: bool) -> list[str]:
    """Run in the repository: SAM deploys .aws-sam/build/template.yaml and reads
    and writes ./samconfig.toml (given --template-file, it would look for
    samconfig.toml beside the built template instead).

    mode: "guided" (asks, saves samconfig.toml), "configured" (samconfig.toml
    supplies capabilities, the packaging bucket and whether to confirm), or
    "explicit" (everything on the command line)."""
    command = [sam, "deploy", "--stack-name", stack, "--region", region]
    if mode == "guided":
        command += ["--guided", "--capabilities", *CAPABILITIES]
    elif mode == "explicit":
        command += ["--capabilities", *CAPABILITIES, "--resolve-s3"]
    command += ["--parameter-overrides", *(f"{key}={value}" for key, value in overrides.items())]
    if mode != "guided":
        command += ["--no-fail-on-empty-changeset"] + (["--no-confirm-changeset"] if yes else [])
    return command
