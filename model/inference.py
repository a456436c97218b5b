"""SageMaker PyTorch inference handler: one review, or a batch transform's
mini-batch of reviews, in; one result per review out, in order.

Content types (request body):
  application/json       {"review": "..."}             -> one JSON object
  text/plain             one review per line
  application/jsonlines  one {"review": "..."} per line
  text/csv               one record per line; the review is the last field
Accept: application/json (default), application/jsonlines, text/csv.

Each result is {"label": "positive"|"negative", "score": P(positive)}
(with "explanation" too for a JSON or JSON Lines record that has "explain":
true: model/explain.py, computed for those records only), or
{"error": "..."} for a record that cannot be scored (blank line, invalid
UTF-8, broken JSON, no review...): the others are scored all the same, so
output line N always answers input line N. In text/csv a result is the row
`label,score,error`. These shapes, and the check of a request, are
contract/reviews.py's. Unsupported types are refused with 415 (content type)
or 406 (accept); an application/json body that is not a review, with 400.
JSON (the body, or each JSON Lines record) is read by contract/jsonreader.py,
whose limits (nesting, number length, NaN, duplicate keys...) make a 400 or a
per-line error, never a 500.

A refused request is answered {"message": "..."} with its status. The
toolkit would answer an exception raised to it with the message followed by
a Python traceback (Transformer.handle_error appends traceback.format_exc()),
which SageMaker hands on to the caller; so the handler, given the request
context (the toolkit passes it to handler functions that take one), sets the
status itself. Called without a context (tests, `critic predict`),
output_fn raises the toolkit's BaseInferenceToolkitError instead.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from http import HTTPStatus

from sagemaker_inference.errors import BaseInferenceToolkitError

from contract.jsonreader import JSONInputError, loads as read_json
from contract.media import CSV, JSON, JSONLINES, TEXT, canonical_media_type
from contract.reviews import (EXPLANATION, REVIEW_EMPTY, InvalidReview, csv_result_fields, explain_from_request,
                              review_from_request, scored, unscorable)
from model.explain import explain
from model.preprocess import ReviewError, decode, tokenize
from model.scorer import Scorer

CONTENT_TYPES = (JSON, TEXT, JSONLINES, CSV)
ACCEPT_TYPES = (JSON, JSONLINES, CSV)


@dataclass(frozen=True)
class Refusal:
    """A request refused whole: 400, 406 or 415, and why."""

    status: int
    message: str


@dataclass
class Records:
    reviews: list  # str for a review to score, the error (ReviewError, InvalidReview) of one that cannot be
    single: bool = False  # an application/json request: answer with one object
    refusal: Refusal | None = None  # the request is refused: no record is scored
    explain: set[int] = field(default_factory=set)  # the records that ask for an explanation


def _refused(status: int, message: str) -> Records:
    return Records([], refusal=Refusal(status, message))


def _answer_refusal(refusal: Refusal, context):
    if context is None:
        raise BaseInferenceToolkitError(refusal.status, refusal.message, refusal.message)
    context.set_response_status(refusal.status, HTTPStatus(refusal.status).phrase)
    return json.dumps({"message": refusal.message}), JSON


def model_fn(model_dir: str) -> Scorer:
    return Scorer.load(model_dir)


def _lines(body: str | bytes) -> list[bytes]:
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":  # the newline that ends the last record
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _request(document) -> tuple[str, bool]:
    return review_from_request(document), explain_from_request(document)


def _jsonline(line: bytes) -> tuple[str, bool]:
    try:
        obj = read_json(decode(line))
    except JSONInputError as error:
        raise ReviewError(f"invalid JSON: {error}") from None
    return _request(obj)


def _csvline(line: bytes) -> tuple[str, bool]:
    try:
        fields = next(csv.reader([decode(line)], strict=True), [])
    except csv.Error as error:
        raise ReviewError(f"invalid CSV: {error}") from None
    if not fields:
        raise InvalidReview(REVIEW_EMPTY)
    return fields[-1], False


def _textline(line: bytes) -> tuple[str, bool]:
    return decode(line), False


_LINE_PARSERS = {TEXT: _textline, JSONLINES: _jsonline, CSV: _csvline}


def input_fn(body: str | bytes, content_type: str) -> Records:
    media = canonical_media_type(content_type)
    if media == JSON:
        try:
            review, explained = _request(read_json(decode(body)))
            return Records([review], single=True, explain={0} if explained else set())
        except JSONInputError as error:
            return _refused(400, f"invalid JSON: {error}")
        except (ReviewError, InvalidReview) as error:
            return _refused(400, str(error))
    parse = _LINE_PARSERS.get(media)
    if parse is None:
        return _refused(415, f"unsupported content type {content_type!r}; use one of {', '.join(CONTENT_TYPES)}")
    records = Records([])
    for line in _lines(body):
        try:
            review, explained = parse(line)
        except (ReviewError, InvalidReview) as error:
            review, explained = error, False
        if explained:
            records.explain.add(len(records.reviews))
        records.reviews.append(review)
    return records


def predict_fn(records: Records, scorer: Scorer) -> Records:
    """Score every readable review of the mini-batch together (the scorer runs
    them through the network in length-sorted batches)."""
    if records.refusal is not None:
        return records
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
        results.append(unscorable(str(review)))
    for i, score in zip(positions, scorer.score(tokens)):
        results[i] = scored(score)
        if i in records.explain:
            results[i][EXPLANATION] = explain(scorer.network, scorer.vocabulary, records.reviews[i])
    return Records(results, single=records.single)


def _csv_row(result: dict) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(csv_result_fields(result))
    return out.getvalue()


def output_fn(results: Records, accept: str, context=None):
    if results.refusal is not None:
        return _answer_refusal(results.refusal, context)
    media = next((m for m in map(canonical_media_type, (accept or JSON).split(",")) if m in ACCEPT_TYPES or m == "*/*"), None)
    if media is None:
        return _answer_refusal(
            Refusal(406, f"unsupported accept type {accept!r}; use one of {', '.join(ACCEPT_TYPES)}"), context
        )
    if media in (JSON, "*/*") and results.single:
        return json.dumps(results.reviews[0]), JSON
    if media == CSV:
        return "".join(_csv_row(r) for r in results.reviews), CSV
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results.reviews)
    return body, (JSONLINES if media != JSON else JSON)
