"""Explanations through the SageMaker handler (input_fn -> predict_fn ->
output_fn) with the tiny model: asked for with "explain": true in an
application/json request or a JSON Lines record, for arbitrary reviews; every
other record's output is what it was without the flag."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st
from sagemaker_inference.errors import BaseInferenceToolkitError

from contract import reviews
from model import inference
from explanation_checks import assert_explains
from test_fuzz_model import TEXT

def handle(scorer, body: str, content_type: str, accept: str):
    return inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), scorer), accept)


@settings(max_examples=60, deadline=None)
@given(review=TEXT)
def test_a_json_request_with_explain_gets_a_complete_explanation(tiny_scorer, review):
    try:
        body, _ = handle(tiny_scorer, json.dumps({"review": review, "explain": True}), "application/json",
                         "application/json")
    except BaseInferenceToolkitError as refused:  # a blank review
        assert refused.status_code == 400
        return
    result = json.loads(body)
    if "error" in result:
        return
    plain = json.loads(handle(tiny_scorer, json.dumps({"review": review}), "application/json", "application/json")[0])
    assert {k: v for k, v in result.items() if k != "explanation"} == plain
    assert_explains(review, result)


@settings(max_examples=30, deadline=None)
@given(records=st.lists(st.tuples(TEXT, st.sampled_from([None, True, False, "yes", 1, None])), min_size=1, max_size=6))
def test_json_lines_records_that_ask_get_explanations_and_the_others_are_unchanged(tiny_scorer, records):
    def line(review, flag):
        return json.dumps({"review": review} if flag is None else {"review": review, "explain": flag})

    body, _ = handle(tiny_scorer, "".join(line(r, f) + "\n" for r, f in records), "application/jsonlines",
                     "application/jsonlines")
    plain, _ = handle(tiny_scorer, "".join(line(r, None) + "\n" for r, _ in records), "application/jsonlines",
                      "application/jsonlines")
    for (review, flag), out, before in zip(records, body.splitlines(), plain.splitlines(), strict=True):
        result = json.loads(out)
        if flag is True and "error" not in result:
            assert_explains(review, result)
        elif flag in ("yes", 1):
            assert result == {"error": reviews.EXPLAIN_NOT_A_BOOLEAN} or "error" in json.loads(before)
        else:
            assert out == before


def test_without_explain_the_answer_is_byte_for_byte_todays(tiny_scorer):
    review = "A wonderful, moving film.<br />Loved it."
    for request in ({"review": review}, {"review": review, "explain": False}):
        body, media = handle(tiny_scorer, json.dumps(request), "application/json", "application/json")
        assert (body, media) == (json.dumps(reviews.scored(json.loads(body)["score"])), "application/json")


@pytest.mark.parametrize("flag", ["true", 1, None, [], {}])
def test_an_explain_that_is_not_a_boolean_is_a_400(tiny_scorer, flag):
    records = inference.input_fn(json.dumps({"review": "fine", "explain": flag}), "application/json")
    assert records.refusal == inference.Refusal(400, reviews.EXPLAIN_NOT_A_BOOLEAN)
