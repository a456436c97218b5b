"""critic compare on tiny models: the same model is not worse, a broken one is refused (exit 1)."""
from __future__ import annotations

import json

import pytest

from critic import cli


@pytest.fixture
def labelled_jsonl(tmp_path):
    path = tmp_path / "labelled.jsonl"
    rows = [("A wonderful, moving film, brilliant and beautiful.", "positive"),
            ("Superb acting and a charming, funny story: the best.", "positive"),
            ("An awful, boring mess, a waste of time.", "negative"),
            ("Terrible, dull and stupid; the worst script.", "negative")] * 5
    path.write_text("".join(json.dumps({"review": r, "label": label}) + "\n" for r, label in rows))
    return path


def test_the_same_model_is_not_worse(tiny_artifact, tiny_imdb_tarball, capsys):
    assert cli.main(["compare", str(tiny_artifact), str(tiny_artifact), "--data", str(tiny_imdb_tarball)]) == 0
    out = capsys.readouterr().out
    assert "the validation split of train/" in out and "verdicts flipped: 0 of" in out
    assert "accuracy" in out and "ROC AUC" in out and "ECE" in out and "not worse" in out


def test_a_broken_model_is_refused_and_its_flips_are_shown(tiny_artifact, broken_artifact, labelled_jsonl, capsys):
    assert cli.main(["compare", str(tiny_artifact), str(broken_artifact), "--data", str(labelled_jsonl)]) == 1
    out = capsys.readouterr().out
    assert "WORSE: accuracy 100.00 ->" in out
    assert "now wrong: line " in out and "verdicts flipped: 0 of" not in out
    # the other way round, the candidate is better: not refused
    assert cli.main(["compare", str(broken_artifact), str(tiny_artifact), "--data", str(labelled_jsonl)]) == 0


def test_a_model_dir_and_a_generous_max_drop(tiny_training, broken_artifact, labelled_jsonl, capsys):
    assert cli.main(["compare", str(tiny_training / "model"), str(broken_artifact), "--data", str(labelled_jsonl),
                     "--max-drop", "100"]) == 0


def test_bad_labelled_data_is_a_clear_error(tiny_artifact, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"review": "fine", "label": "positive"}\n{"review": "meh", "label": "neutral"}\n')
    assert cli.main(["compare", str(tiny_artifact), str(tiny_artifact), "--data", str(bad)]) == 2
    assert "bad.jsonl line 2: expected" in capsys.readouterr().err
    assert cli.main(["compare", str(tiny_artifact), str(tmp_path / "none.tar.gz"), "--data", str(tiny_artifact)]) == 2


def test_the_behavioural_suite_runs_side_by_side(tiny_artifact, broken_artifact, labelled_jsonl, capsys):
    """model/suite.py's cases, scored by both models, pass rates per capability side by side."""
    from model import suite

    assert cli.main(["compare", str(tiny_artifact), str(broken_artifact), "--data", str(labelled_jsonl)]) == 1
    out = capsys.readouterr().out
    assert "behavioural suite (model/suite.py)" in out and "total" in out
    assert all(capability in out for capability in {case.capability for case in suite.cases()})


def test_the_check_set_is_named_not_copied_and_read_back_checked(tiny_imdb_tarball, tmp_path):
    from model import checkset

    manifest = tmp_path / "checkset.json"
    spec = checkset.build(tiny_imdb_tarball, manifest)
    assert "wonderful" not in manifest.read_text() and spec["count"]["positive"] + spec["count"]["negative"] > 0
    reviews = checkset.load(tiny_imdb_tarball, manifest)
    assert len(reviews.texts) == sum(spec["count"].values()) and set(reviews.labels) == {0, 1}
    assert all(name.startswith("train/") for name in reviews.names)  # never test/
    changed = json.loads(manifest.read_text())
    changed["sha256"] = "0" * 64
    manifest.write_text(json.dumps(changed))
    with pytest.raises(checkset.CheckSetError, match="SHA-256 mismatch"):
        checkset.load(tiny_imdb_tarball, manifest)


def test_the_shipped_check_set_is_the_shipped_models_validation_split(repo_root):
    spec = json.loads((repo_root / "model" / "checkset.json").read_text())
    metrics = json.loads((repo_root / "model" / "artifact" / "training-metrics.json").read_text())
    assert spec["split"] == {"seed": metrics["args"]["seed"], "fraction": metrics["args"]["valid_fraction"]}
    assert spec["count"]["negative"] == sum(metrics["validation"]["confusion_matrix"][0])
    assert spec["count"]["positive"] == sum(metrics["validation"]["confusion_matrix"][1])
