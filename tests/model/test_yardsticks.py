"""The behavioural suite and the sentence set (issue 15), with the tiny
model: what they count, not how well a model does."""
import json

from model.sentences import development_views, sentences
from model.suite import CAPABILITIES, POSITIVE, cases, pass_rates

from test_cli_model import critic


def test_suite_has_hundreds_of_cases_in_every_capability_fixed_from_run_to_run():
    suite = cases()
    assert len(suite) >= 500 and suite == cases()
    by_capability = {c.name: [case for case in suite if case.capability == c.name] for c in CAPABILITIES}
    assert all(by_capability.values()), [name for name, found in by_capability.items() if not found]
    assert len({case.text for case in suite}) == len(suite)  # no case twice
    for name in ("contrast", "one-word verdict", "rating", "intensifier", "negated neutral"):
        labels = {case.label for case in by_capability[name]}
        assert labels == {0, 1}, name  # both verdicts: a constant answer cannot pass


def test_pass_rates_count_each_capability_and_leave_known_hard_ones_out_of_the_total():
    suite = cases()
    always_positive = pass_rates(suite, [0.9] * len(suite))
    rows = always_positive["capabilities"]
    assert rows["negated negative"]["pass_rate"] == 1.0 and rows["negated positive"]["pass_rate"] == 0.0
    assert rows["sarcasm"]["counted"] is False and rows["sarcasm"]["pass_rate"] == 0.0
    counted = [c for c in suite if c.capability != "sarcasm"]
    assert always_positive["total"]["cases"] == len(counted)
    assert always_positive["total"]["passed"] == sum(c.label == POSITIVE for c in counted)
    perfect = pass_rates(suite, [0.9 if c.label == POSITIVE else 0.1 for c in suite])
    assert perfect["total"]["pass_rate"] == 1.0 and not perfect["failures"]


def test_evaluate_suite_needs_no_dataset(tiny_artifact, tmp_path):
    out = critic("evaluate", "--suite", "--artifact", tiny_artifact, "--out", tmp_path, "--workers", "1",
                 "--failures").stdout
    report = json.loads((tmp_path / "suite.json").read_text())
    assert set(report["capabilities"]) == {c.name for c in CAPABILITIES}
    assert all(f"| {c.name}" in out for c in CAPABILITIES) and "**total**" in out
    assert report["total"]["cases"] == sum(r["cases"] for r in report["capabilities"].values() if r["counted"])


def test_evaluate_sentences_reads_the_validation_movies_only(tiny_artifact, tiny_imdb_tarball, tmp_path):
    out = critic("evaluate", "--sentences", "--data", tiny_imdb_tarball, "--artifact", tiny_artifact,
                 "--out", tmp_path, "--workers", "1").stdout
    report = json.loads((tmp_path / "sentences.json").read_text())
    # the tiny train/ has 300 reviews; the default split keeps a tenth (by movie) for validation
    assert 0 < report["full review"]["texts"] < 100
    assert report["first sentence"]["texts"] == report["full review"]["texts"]
    assert "| last sentence |" in out and not (tmp_path / "evaluation.json").exists()


def test_sentences_and_development_views():
    from model.data import Review

    assert sentences("Not bad at all. Ok.<br /><br />I expected to hate it, but no!") == [
        "Not bad at all.", "I expected to hate it, but no!"]
    views = development_views([Review("A fine film. It was not good, sadly.", 0, "tt1"),
                               Review("Great. Dull start, but a superb end.", 1, "tt2"), Review("Ok.", 1, "tt3")])
    assert views["first sentence"] == (["A fine film.", "Dull start, but a superb end."], [0, 1])
    assert views["with negation"] == (["It was not good, sadly."], [0])
    assert views["with contrast"] == (["Dull start, but a superb end."], [1])


def test_sentences_read_alone_take_the_label_a_reader_gives_them(tmp_path, monkeypatch):
    import json

    from model import sentences as module
    from model.data import Review

    read_alone = tmp_path / "read_alone.json"
    read_alone.write_text(json.dumps({"about": "test", "labels": {
        module.sentence_key("I was not bored for a second."): "positive",  # from a negative review
        module.sentence_key("It is not a sequel."): "neither"}}))
    monkeypatch.setattr(module, "READ_ALONE", read_alone)
    views = development_views([Review("I was not bored for a second. Awful ending though.", 0, "tt1"),
                               Review("It is not a sequel. Great.", 1, "tt2")])
    assert views["with negation"] == (["I was not bored for a second.", "It is not a sequel."], [0, 1])
    assert views["with negation, read alone"] == (["I was not bored for a second."], [1])
    assert views["with contrast, read alone"] == ([], [])
    assert views["first sentence, read alone"] == (["I was not bored for a second."], [1])
    assert views["last sentence, read alone"] == ([], [])


def test_the_committed_read_alone_labels_say_where_they_come_from():
    import json

    from model.sentences import READ_ALONE

    committed = json.loads(READ_ALONE.read_text())
    assert "validation" in committed["about"] and len(committed["labels"]) > 1000
    assert set(committed["labels"].values()) == {"positive", "negative", "neither"}
