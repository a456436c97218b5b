"""The dependency groups of pyproject.toml's optional dependencies, as the
commands need them: `make run` installs only `serve`, so a command of
another group finds its packages missing and says how to add them, instead
of failing on an import deep inside."""
from __future__ import annotations

from importlib.util import find_spec

from critic.errors import UsageError

# The modules that show a group is installed (import names, not package names).
GROUP_MODULES: dict[str, tuple[str, ...]] = {
    "serve": ("torch", "numpy", "tqdm", "yaml", "boto3", "aws_lambda_powertools", "aws_xray_sdk", "moto",
              "flask", "flask_cors", "sagemaker_inference", "sagemaker_pytorch_serving_container"),
    "train": ("sklearn", "scipy", "gensim", "matplotlib"),
    "deploy": ("sagemaker",),
}
# Groups include others as pyproject.toml says (train and deploy include serve).
INCLUDES: dict[str, tuple[str, ...]] = {"serve": (), "train": ("serve",), "deploy": ("serve",)}


class MissingDependencies(UsageError):
    """A command needs a dependency group this environment lacks."""


def missing_modules(group: str) -> list[str]:
    groups = (*INCLUDES[group], group)
    return [m for g in groups for m in GROUP_MODULES[g] if find_spec(m) is None]


def require(group: str, command: str) -> None:
    missing = missing_modules(group)
    if missing:
        raise MissingDependencies(
            f"critic {command} needs the '{group}' dependencies, which this environment lacks "
            f"(no module {', '.join(missing)}). Install them from the checkout with `make setup-{group}` "
            f"(or: pip install -c requirements/constraints.txt -e '.[{group}]').")
