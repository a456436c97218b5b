"""A command whose dependency group is not installed says which group and how
to install it (make run installs only `serve`)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from critic import cli, dependencies

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def without(monkeypatch):
    def hide(*modules: str) -> None:
        real = dependencies.find_spec
        monkeypatch.setattr(dependencies, "find_spec", lambda name: None if name in modules else real(name))
    return hide


def test_train_without_the_train_group_says_how_to_install_it(without, capsys):
    without("gensim", "sklearn")
    assert cli.main(["train", "--data", "nowhere.tar.gz"]) == 2
    err = capsys.readouterr().err
    assert "critic train needs the 'train' dependencies" in err
    assert "no module sklearn, gensim" in err
    assert "make setup-train" in err and "-e '.[train]'" in err
    assert "Traceback" not in err


def test_train_on_sagemaker_needs_the_sdk_not_scikit_learn(without, capsys):
    without("sklearn", "sagemaker")
    assert cli.main(["train", "--sagemaker", "--data", "s3://b/k", "--role", "arn:aws:iam::1:role/r"]) == 2
    err = capsys.readouterr().err
    assert "'deploy' dependencies" in err and "no module sagemaker" in err and "sklearn" not in err


def test_deploy_group_includes_serve(without, capsys):
    without("moto")
    assert cli.main(["destroy"]) == 2
    assert "'deploy' dependencies" in capsys.readouterr().err


def test_help_needs_no_group(without, capsys):
    without("gensim")
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "--help"])
    assert stop.value.code == 0


def test_every_command_names_a_group_and_the_groups_match_pyproject():
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(cli.NEEDS) == set(cli.COMMANDS)
    assert set(cli.NEEDS.values()) <= set(dependencies.GROUP_MODULES) <= set(groups)
    for group, included in dependencies.INCLUDES.items():
        named = [g for r in groups[group] if (m := re.fullmatch(r"critic\[(.+)\]", r)) for g in m.group(1).split(",")]
        assert tuple(named) == included, group
    assert all(not dependencies.missing_modules(g) for g in dependencies.GROUP_MODULES)  # make test has them all
