"""SageMaker PyTorch inference handler: one review, or a batch transform's
mini-batch of reviews, in; one result per review out, in order.

Content types (request body):
  application/json       {"review": "..."}             -> one JSON object
  text/plain             one review per line
  application/jsonlines  one {"review": "..."} per line
  text/csv               one record per line; the review is the last field
Accept: application/json (default), application/jsonlines, text/csv.

Each result is {"label": "positive"|"negative", "score": P(positive)}, or
{"error": "..."} for a record that cannot be scored (blank line, invalid
UTF-8, broken JSON, no review...): the others are scored all the same, so
output line N always answers input line N. In text/csv a result is the row
`label,score,error`. Unsupported types are refused with 415 (content type)
or 406 (accept); an application/json body that is not a review, with 400.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from sagemaker_inference.errors import BaseInferenceToolkitError

from model.preprocess import ReviewError, decode, tokenize
from model.scorer import Scorer

JSON, JSONLINES, CSV, TEXT = "application/json", "application/jsonlines", "text/csv", "text/plain"
# Other names clients use for JSON Lines.
_ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES, "application/x-ndjson": JSONLINES}
CONTENT_TYPES = (JSON, TEXT, JSONLINES, CSV)
ACCEPT_TYPES = (JSON, JSONLINES, CSV)


@dataclass
class Records:
    reviews: list  # str for a review to score, ReviewError for one that cannot be
    single: bool = False  # an application/json request: answer with one object


def _media_type(header: str | None) -> str:
    media = (header or "").split(";")[0].strip().lower()
    return _ALIASES.get(media, media)


def _client_error(status: int, message: str) -> BaseInferenceToolkitError:
    return BaseInferenceToolkitError(status, message, message)


def model_fn(model_dir: str) -> Scorer:
    return Scorer.load(model_dir)


def _lines(body: str | bytes) -> list[bytes]:
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":  # the newline that ends the last record
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _review_from_object(obj) -> str:
    if not isinstance(obj, dict) or "review" not in obj:
        raise ReviewError('expected a JSON object with a "review" field')
    if not isinstance(obj["review"], str):
        raise ReviewError('"review" must be a string')
    if not obj["review"].strip():
        raise ReviewError("review is empty")
    return obj["review"]


def _jsonline(line: bytes) -> str:
    try:
        obj = json.loads(decode(line))
    except json.JSONDecodeError as error:
        raise ReviewError(f"invalid JSON: {error.msg} at column {error.colno}") from None
    return _review_from_object(obj)


def _csvline(line: bytes) -> str:
    try:
        fields = next(csv.reader([decode(line)], strict=True), [])
    except csv.Error as error:
        raise ReviewError(f"invalid CSV: {error}") from None
    if not fields:
        raise ReviewError("review is empty")
    return fields[-1]


def _textline(line: bytes) -> str:
    return decode(line)


_LINE_PARSERS = {TEXT: _textline, JSONLINES: _jsonline, CSV: _csvline}


def input_fn(body: str | bytes, content_type: str) -> Records:
    media = _media_type(content_type)
    if media == JSON:
        try:
            return Records([_review_from_object(json.loads(decode(body)))], single=True)
        except json.JSONDecodeError as error:
            raise _client_error(400, f"invalid JSON: {error.msg}") from None
        except ReviewError as error:
            raise _client_error(400, str(error)) from None
    parse = _LINE_PARSERS.get(media)
    if parse is None:
        raise _client_error(415, f"unsupported content type {content_type!r}; use one of {', '.join(CONTENT_TYPES)}")
    reviews = []
    for line in _lines(body):
        try:
            reviews.append(parse(line))
        except ReviewError as error:
            reviews.append(error)
    return Records(reviews)


def predict_fn(records: Records, scorer: Scorer) -> Records:
    """Score every readable review of the mini-batch together (the scorer runs
    them through the network in length-sorted batches)."""
    tokens, positions, results = [], [], []
    for i, review in enumerate(records.reviews):
        if isinstance(review, str):
            try:
                tokens.append(tokenize(review))
                positions.append(i)
                results.append(None)
                continue
            except ReviewError as error:
                review = error
        results.append({"error": str(review)})
    for i, score in zip(positions, scorer.score(tokens)):
        results[i] = {"label": "positive" if score >= 0.5 else "negative", "score": round(score, 6)}
    return Records(results, single=records.single)


def _csv_row(result: dict) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(
        [result.get("label", ""), result.get("score", ""), result.get("error", "")]
    )
    return out.getvalue()


def output_fn(results: Records, accept: str):
    media = next((m for m in map(_media_type, (accept or JSON).split(",")) if m in ACCEPT_TYPES or m == "*/*"), None)
    if media is None:
        raise _client_error(406, f"unsupported accept type {accept!r}; use one of {', '.join(ACCEPT_TYPES)}")
    if media in (JSON, "*/*") and results.single:
        return json.dumps(results.reviews[0]), JSON
    if media == CSV:
        return "".join(_csv_row(r) for r in results.reviews), CSV
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results.reviews)
    return body, (JSONLINES if media != JSON else JSON)
