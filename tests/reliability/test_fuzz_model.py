"""Fuzzing the model's entry points: preprocessing, and the SageMaker handler's
input_fn -> predict_fn -> output_fn for every content type and accept type.

The toolkit hands input_fn a str for application/json and text/csv (it
utf-8-decodes those itself) and bytes for the others; both are fuzzed."""
from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given, settings, strategies as st
from sagemaker_inference.errors import BaseInferenceToolkitError

from hostile_json import DOCUMENTS, JSON_LINES
from contract.media import canonical_media_type
from model import inference
from model.preprocess import MAX_CHARS, ReviewError, tokenize

# Text that looks like reviews, markup, JSON and CSV as well as anything at all.
FRAGMENTS = st.sampled_from([
    "great film", "awful", "<br />", "<b>bold</b>", "<script>alert(1)</script>", "&amp;", "&#x27;", "&", "<",
    "don't", "isn’t", "\x00", "\r", "\n", "\r\n", '"', ",", '""', "{", "}", '{"review": "good"}', '{"review": 1}',
    "[]", "null", "\ufeff", "\u202e", "مرحبا", "שלום", "😀", "👍🏽", "\u0301", "ﬁ", "Ⅻ", "\ud7ff", " ", "\t",
])
TEXT = st.one_of(st.text(max_size=300), st.lists(st.one_of(FRAGMENTS, st.text(max_size=20)), max_size=30).map("".join))
BYTES = st.one_of(st.binary(max_size=300), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
                  st.tuples(TEXT, st.binary(max_size=8), TEXT).map(
                      lambda p: p[0].encode("utf-8", "surrogatepass") + p[1] + p[2].encode("utf-8", "surrogatepass")))


# ------------------------------------------------------------ preprocessing

@given(raw=st.one_of(TEXT, BYTES, st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)))
def test_fuzz_tokenize_returns_tokens_or_a_review_error(raw):
    try:
        tokens = tokenize(raw)
    except ReviewError as error:
        assert str(error)
        return
    assert isinstance(tokens, list)
    for token in tokens:
        assert isinstance(token, str) and token and not any(c.isspace() for c in token)
    assert tokenize(raw) == tokens  # deterministic


@settings(max_examples=20)  # each example tokenizes over 100,000 characters
@given(head=TEXT, filler=st.sampled_from(["a", "é", "<p>", "😀 ", "word "]), tail=TEXT)
def test_fuzz_tokenize_bounds_long_reviews(head, filler, tail):
    raw = head + filler * (MAX_CHARS // len(filler) + 7) + tail
    tokens = tokenize(raw)
    assert len(tokens) <= MAX_CHARS


# ------------------------------------------------------------ inference handler

CONTENT_TYPES = st.one_of(
    st.sampled_from([*inference.CONTENT_TYPES, "application/x-jsonlines", "application/jsonl", "application/x-ndjson",
                     "text/plain; charset=utf-8", "TEXT/CSV", " application/jsonlines ; x=y", "application/xml",
                     "image/png", "", "text", "*/*"]),
    st.text(max_size=30),
)
ACCEPTS = st.one_of(
    st.none(),
    st.sampled_from([*inference.ACCEPT_TYPES, "*/*", "application/xml, text/csv", "text/html", "",
                     "application/jsonlines;q=0.9", "application/x-ndjson", "image/png, */*"]),
    st.text(max_size=30),
)
CLIENT_STATUSES = {400, 406, 415}


def expected_records(body: str | bytes) -> int:
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    lines = data.split(b"\n")
    return len(lines) - (lines[-1] == b"")


def parse_output(body: str, content_type: str, single: bool) -> list[dict]:
    if content_type == "text/csv":
        rows = list(csv.reader(io.StringIO(body, newline=""), strict=True))
        results = []
        for row in rows:
            assert len(row) == 3, row
            label, score, error = row
            results.append({"error": error} if error else {"label": label, "score": float(score)})
        return results
    if single and content_type == "application/json":  # a json request answered in json: one object
        return [json.loads(body)]
    assert body == "" or body.endswith("\n")
    return [json.loads(line) for line in body.split("\n")[:-1]]


def assert_result(result: dict) -> None:
    if "error" in result:
        assert set(result) == {"error"} and isinstance(result["error"], str) and result["error"]
    else:
        assert set(result) == {"label", "score"}
        assert 0.0 <= result["score"] <= 1.0
        assert result["label"] == ("positive" if result["score"] >= 0.5 else "negative")


def lines_for(media: str, text: list[str]) -> str:
    """A body of the given type made from fuzzed reviews (so that most lines parse)."""
    if media == "application/jsonlines":
        return "".join(json.dumps({"review": t}) + "\n" for t in text)
    if media == "text/csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([[i, t.replace("\n", " ").replace("\r", " ")] for i, t in enumerate(text)])
        return out.getvalue()
    return "".join(t.replace("\n", " ").replace("\r", " ") + "\n" for t in text)


BODIES = st.one_of(
    TEXT, BYTES,
    st.builds(lines_for, st.sampled_from(["application/jsonlines", "text/csv", "text/plain"]), st.lists(TEXT, max_size=6)),
    st.builds(lambda t: json.dumps({"review": t}), TEXT),
    DOCUMENTS, JSON_LINES,  # parser bombs: deep nesting, long numbers, NaN, duplicate keys...
    st.builds(lambda v: json.dumps(v), st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["review", "id", "x"]), c, max_size=3),
        max_leaves=6)),
)


def run_handler(scorer, body, content_type, accept):
    """input_fn -> predict_fn -> output_fn as the toolkit chains them; only a
    client error (400/406/415) may escape."""
    try:
        records = inference.input_fn(body, content_type)
        predictions = inference.predict_fn(records, scorer)
        out, out_type = inference.output_fn(predictions, accept)
    except BaseInferenceToolkitError as error:
        assert error.status_code in CLIENT_STATUSES, error.status_code
        assert error.message
        return None
    return records, out, out_type


@given(body=BODIES, content_type=CONTENT_TYPES, accept=ACCEPTS)
def test_fuzz_inference_answers_every_record(tiny_scorer, body, content_type, accept):
    outcome = run_handler(tiny_scorer, body, content_type, accept)
    media = canonical_media_type(content_type)
    if outcome is None:
        return
    records, out, out_type = outcome
    assert media in inference.CONTENT_TYPES  # anything else was refused with 415
    assert isinstance(out, str) and out_type in inference.ACCEPT_TYPES
    results = parse_output(out, out_type, records.single)
    if media == "application/json":
        assert len(results) == 1
    else:
        assert len(results) == expected_records(body)
    for result in results:
        assert_result(result)


@given(body=st.one_of(DOCUMENTS, JSON_LINES), content_type=st.sampled_from(["application/json", "application/jsonlines"]),
       accept=st.sampled_from(inference.ACCEPT_TYPES))
def test_fuzz_inference_hostile_json_is_a_400_or_an_error_on_its_line(tiny_scorer, body, content_type, accept):
    """Parser bombs: a whole application/json request is refused with 400
    and a one-line message; in JSON Lines each gets an error on its own line."""
    try:
        records = inference.input_fn(body, content_type)
        out, out_type = inference.output_fn(inference.predict_fn(records, tiny_scorer), accept)
    except BaseInferenceToolkitError as error:
        assert content_type == "application/json" and error.status_code == 400
        assert "\n" not in error.message and "Traceback" not in error.message
        return
    results = parse_output(out, out_type, records.single)
    assert len(results) == (1 if content_type == "application/json" else expected_records(body))
    for result in results:
        assert_result(result)


@given(content_type=st.sampled_from(inference.CONTENT_TYPES), accept=st.sampled_from(inference.ACCEPT_TYPES),
       text=st.lists(TEXT, min_size=1, max_size=8))
def test_fuzz_inference_well_formed_lines_keep_their_order(tiny_scorer, content_type, accept, text):
    """Well-formed bodies of every type and accept: one result per record, in
    order (each line scored alone gives the same answer as in the batch)."""
    if content_type == "application/json":
        body = json.dumps({"review": text[0]})
    else:
        body = lines_for(content_type, text)
    outcome = run_handler(tiny_scorer, body, content_type, accept)
    if outcome is None:  # only a blank application/json review is refused
        assert content_type == "application/json" and not text[0].strip()
        return
    records, out, out_type = outcome
    results = parse_output(out, out_type, records.single)
    assert len(results) == (1 if content_type == "application/json" else len(text))
    for line, result in zip(text, results):
        assert_result(result)
        alone = inference.predict_fn(inference.Records([line.replace("\n", " ").replace("\r", " ")
                                                        if content_type != "application/json" else line]), tiny_scorer)
        expected = alone.reviews[0]
        if "error" in result:
            assert "error" in expected
        else:
            assert result["label"] == expected["label"]
            assert result["score"] == pytest.approx(expected["score"], abs=2e-6)
