"""A review to score and its result, as the model, the realtime function, the
batch code and `critic` exchange them.

- The request: {"review": "..."} (application/json, and each JSON Lines
  record). `review_from_request` is the one check of it, with one message per
  way it can be wrong; `review_text` the check of a review given as text.
- The result of one review: {"label": "positive"|"negative", "score":
  P(positive)} (`scored`), or {"error": "..."} for a review that cannot be
  scored (`unscorable`); `read_result` reads the model's answer back.
- Explanations: a request may carry "explain": true (`explain_from_request`;
  the realtime API also takes ?explain=true, `explain_flag`), and its result
  then carries "explanation" (model/explain.py makes it). Without the flag,
  request and result are exactly what they were before explanations.
- In CSV a result is the row CSV_RESULT_COLUMNS (label, score, error), an
  absent field left empty (`csv_result_fields`); a batch job joins it after
  the input record's own fields, so a reader takes the last columns
  (`csv_result`).

The shapes are TypedDicts, here and in contract/transformjob.py: plain
Python, which the model artifact's code/ needs (it ships no
requirements.txt, so it imports nothing the serving image may lack), and
free to import in the Lambda functions. Powertools' parser (pydantic models of the API event, the
EventBridge event and the body or detail) was measured for the realtime and
completion handlers and not adopted: it added a median 60-66 ms to their
import (of 460-550 ms; the parser's own part 73-75 ms median) in fresh
interpreters (`scripts/parser_cost.py --runs 21`), on every cold start, and
pydantic would join the DependenciesLayer. The checks it would replace are
the few lines of `review_from_request` and `read_result`.
"""
from __future__ import annotations

from typing import Any, TypedDict

REVIEW = "review"
EXPLAIN = "explain"  # true: the result carries its explanation (model/explain.py)
LABEL, SCORE, ERROR, EXPLANATION = "label", "score", "error", "explanation"
POSITIVE, NEGATIVE = "positive", "negative"
LABELS = (POSITIVE, NEGATIVE)
THRESHOLD = 0.5  # a score at or above it is positive
SCORE_DIGITS = 6  # a score is rounded to this many decimals

CSV_RESULT_COLUMNS = (LABEL, SCORE, ERROR)

NOT_A_REVIEW_OBJECT = f'expected a JSON object with a "{REVIEW}" field'
REVIEW_NOT_A_STRING = f'"{REVIEW}" must be a string'
REVIEW_EMPTY = "review is empty"
EXPLAIN_NOT_A_BOOLEAN = f'"{EXPLAIN}" must be true or false'


class _ReviewRequired(TypedDict):
    review: str


class ReviewRequest(_ReviewRequired, total=False):
    explain: bool


class Result(TypedDict, total=False):
    """Either label and score (and, when asked for, explanation), or error."""

    label: str
    score: float
    error: str
    explanation: dict  # {"baseline": b, "spans": [{"start", "end", "text", "contribution"}, ...]}


class InvalidReview(ValueError):
    """A request that holds no review to score; str(error) says why, for the user."""


def request(review: str, explain: bool = False) -> ReviewRequest:
    """The model's request; "explain" only when asked, so a request without
    it is byte for byte what it always was."""
    return {REVIEW: review, EXPLAIN: True} if explain else {REVIEW: review}


def review_text(text: str) -> str:
    """The review itself, refused when blank."""
    if not text.strip():
        raise InvalidReview(REVIEW_EMPTY)
    return text


def review_from_request(document: Any) -> str:
    """The review of a request ({"review": "..."}, already read from JSON), or
    InvalidReview naming what is wrong with it."""
    if not isinstance(document, dict) or REVIEW not in document:
        raise InvalidReview(NOT_A_REVIEW_OBJECT)
    if not isinstance(document[REVIEW], str):
        raise InvalidReview(REVIEW_NOT_A_STRING)
    return review_text(document[REVIEW])


def explain_from_request(document: Any) -> bool:
    """Whether a request (already read from JSON; its review checked) asks
    for an explanation: "explain" absent or false, no; true, yes; anything
    else (a string, a number, null) is InvalidReview."""
    value = document.get(EXPLAIN, False) if isinstance(document, dict) else False
    if not isinstance(value, bool):
        raise InvalidReview(EXPLAIN_NOT_A_BOOLEAN)
    return value


def explain_flag(value: str | None) -> bool:
    """The query parameter ?explain=: absent, "false" or "true" (any case);
    anything else is InvalidReview."""
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise InvalidReview(EXPLAIN_NOT_A_BOOLEAN)
    return value.lower() == "true"


def scored(score: float) -> Result:
    """The result of a review the model scored: P(positive) and its label."""
    return {LABEL: POSITIVE if score >= THRESHOLD else NEGATIVE, SCORE: round(score, SCORE_DIGITS)}


def unscorable(reason: str) -> Result:
    return {ERROR: reason}


def is_scored(result: Any) -> bool:
    """Whether a result (from JSON, or `csv_result`) carries a label and no error."""
    return isinstance(result, dict) and LABEL in result and not result.get(ERROR)


def read_result(value: Any) -> Result:
    """The model's answer to one review as a Result: {"error": ...}, or a
    label and a score in [0, 1]; ValueError when it is neither."""
    if isinstance(value, dict) and isinstance(value.get(ERROR), str):
        return unscorable(value[ERROR])
    if (
        not isinstance(value, dict)
        or value.get(LABEL) not in LABELS
        or not isinstance(value.get(SCORE), (int, float))
        or isinstance(value.get(SCORE), bool)
        or not 0.0 <= value[SCORE] <= 1.0  # also refuses NaN, which JSON.parse cannot read
    ):
        raise ValueError("not a result of the model")
    result: Result = {LABEL: value[LABEL], SCORE: float(value[SCORE])}
    if EXPLANATION in value:
        if not _is_explanation(value[EXPLANATION]):
            raise ValueError("not an explanation of the model")
        result[EXPLANATION] = value[EXPLANATION]
    return result


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_explanation(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    spans = value.get("spans")
    return (
        _is_number(value.get("baseline"))
        and isinstance(spans, list)
        and all(
            isinstance(span, dict)
            and isinstance(span.get("start"), int) and isinstance(span.get("end"), int)
            and isinstance(span.get("text"), str) and _is_number(span.get("contribution"))
            for span in spans
        )
    )


def csv_result_fields(result: Result) -> list:
    """A result as the fields of its CSV row (CSV_RESULT_COLUMNS; absent is empty)."""
    return [result.get(column, "") for column in CSV_RESULT_COLUMNS]


def csv_result(fields: list[str]) -> dict[str, str] | None:
    """The result in the last columns of a CSV row (a joined row has the
    input's fields first), without its empty fields; None if the row is too
    short to hold one."""
    if len(fields) < len(CSV_RESULT_COLUMNS):
        return None
    tail = fields[-len(CSV_RESULT_COLUMNS):]
    return {column: value for column, value in zip(CSV_RESULT_COLUMNS, tail) if value}
