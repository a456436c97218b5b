"""The review and result shapes (contract/reviews.py) are defined once: the
model writes results with them, the batch code and the realtime function read
them back with them, and no other module spells their field names."""
from __future__ import annotations

import ast
import csv
import json
import math
from pathlib import Path

import pytest

from batch import jobs
from contract import reviews
from model import inference

REPO = Path(__file__).resolve().parents[2]
RESULTS = [reviews.scored(0.93), reviews.scored(0.5), reviews.scored(0.1), reviews.unscorable("review is empty")]


def test_scored_and_unscorable_results():
    assert reviews.scored(0.5) == {"label": "positive", "score": 0.5}
    assert reviews.scored(0.1234567) == {"label": "negative", "score": 0.123457}
    assert reviews.unscorable("review is empty") == {"error": "review is empty"}
    assert [reviews.is_scored(r) for r in RESULTS] == [True, True, True, False]


def test_the_model_writes_csv_rows_in_the_order_the_batch_code_reads():
    body, media = inference.output_fn(inference.Records(RESULTS), "text/csv")
    assert media == "text/csv"
    rows = list(csv.reader(body.splitlines()))
    assert all(len(row) == len(reviews.CSV_RESULT_COLUMNS) for row in rows)
    # A batch job joins each result after its input record's fields.
    joined = [["7", "a, review"] + row for row in rows]
    read = [reviews.csv_result(row) for row in joined]
    assert read == [{k: str(v) for k, v in r.items()} for r in RESULTS]
    lines = []
    for row in joined:
        out = csv.StringIO()
        csv.writer(out, lineterminator="").writerow(row)
        lines.append(out.getvalue().encode())
    assert jobs.count_results(lines, jobs.FORMATS[".csv"]) == jobs.Counts(records=4, scored=3, errors=1)


def test_a_csv_row_too_short_for_a_result_is_none():
    assert reviews.csv_result(["positive", "0.9"]) is None
    assert not reviews.is_scored(reviews.csv_result(["only", "two"]))


def test_the_model_writes_json_results_the_batch_code_and_the_realtime_function_read():
    body, _ = inference.output_fn(inference.Records(RESULTS), "application/jsonlines")
    lines = body.encode().splitlines()
    assert jobs.count_results(lines, jobs.FORMATS[".txt"]) == jobs.Counts(records=4, scored=3, errors=1)
    assert [reviews.read_result(json.loads(line)) for line in lines] == RESULTS


@pytest.mark.parametrize("answer", [
    None, [], {}, {"label": "neutral", "score": 0.5}, {"label": "positive", "score": True},
    {"label": "positive", "score": 1.5}, {"label": "positive", "score": math.nan}, {"label": "positive"},
    {"error": 5},
])
def test_read_result_refuses_what_the_model_never_answers(answer):
    with pytest.raises(ValueError):
        reviews.read_result(answer)


@pytest.mark.parametrize("document, message", [
    ({"text": "a review"}, reviews.NOT_A_REVIEW_OBJECT),
    (["a review"], reviews.NOT_A_REVIEW_OBJECT),
    ("a review", reviews.NOT_A_REVIEW_OBJECT),
    (None, reviews.NOT_A_REVIEW_OBJECT),
    ({"review": 5}, reviews.REVIEW_NOT_A_STRING),
    ({"review": None}, reviews.REVIEW_NOT_A_STRING),
    ({"review": " \n\t"}, reviews.REVIEW_EMPTY),
])
def test_the_review_check_names_what_is_wrong(document, message):
    with pytest.raises(reviews.InvalidReview) as refused:
        reviews.review_from_request(document)
    assert str(refused.value) == message
    # The model refuses an application/json request with the same message.
    records = inference.input_fn(json.dumps(document), "application/json")
    assert records.refusal == inference.Refusal(400, message)


def test_a_request_is_what_the_check_reads():
    assert reviews.review_from_request(reviews.request("A fine film.")) == "A fine film."


# Modules that exchange reviews and results; the field names and labels are
# contract/reviews.py's constants there, never string literals. ("error" is
# also a key of log records in the realtime function, so it is checked only
# where it can only mean a result's error.)
USERS = {
    "model/inference.py": {"review", "label", "score", "error", "positive", "negative"},
    "batch/jobs.py": {"review", "label", "score", "error", "positive", "negative"},
    "critic/offline.py": {"review", "label", "score", "error", "positive", "negative"},
    "critic/commands/bench.py": {"review", "label", "score", "positive", "negative"},
    "functions/realtime/app.py": {"review", "label", "score", "positive", "negative"},
}


@pytest.mark.parametrize("path", sorted(USERS))
def test_no_other_module_spells_the_field_names(path):
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    spelled = sorted({(node.value, node.lineno) for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and node.value in USERS[path]})
    assert not spelled, f"{path} spells contract fields itself: {spelled}"
