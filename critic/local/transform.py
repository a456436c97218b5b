"""SageMaker batch transform semantics, in plain Python (no AWS imports).

What a transform job does with one input object, as SageMaker documents it:

- SplitType=Line: one record per line; SplitType=None: the whole object is one
  record.
- BatchStrategy=MultiRecord: as many records as fit in MaxPayloadInMB go in one
  request (a mini-batch); SingleRecord: one record per request. A record larger
  than MaxPayloadInMB fails the job (0 means no limit).
- DataProcessing (CSV and JSON only): InputFilter selects what is sent to the
  model; JoinSource=Input joins each input record with its result (JSON: the
  input object gains a "SageMakerOutput" key, or becomes
  {"SageMakerInput": ..., "SageMakerOutput": ...} when it is not an object;
  CSV: the input row followed by the result's columns); OutputFilter selects
  what of the joined record is written.
- AssembleWith=Line: a newline ends every transformed record; None: the
  responses are concatenated as they are.
- Results keep the order of the input records.
- A JSON record SageMaker cannot parse to join (or filter) fails the job, and
  SageMaker writes no output for an object it could not process whole.

Anything that makes a record or a response unusable raises TransformError,
whose message becomes the job's FailureReason: SageMaker writes no output for
an object it could not process whole.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from contract.jsonreader import JSONInputError, loads as read_json
from contract.media import CSV, JSON, JSONLINES, JSONLINES_ALIASES, media_type

MB = 1024 * 1024
JSON_TYPES = (JSON, JSONLINES, *JSONLINES_ALIASES)  # SageMaker's DataProcessing reads these as JSON


class TransformError(Exception):
    """A problem that fails the transform of one input object."""


# --------------------------------------------------------------------------- #
# Splitting and mini-batching
# --------------------------------------------------------------------------- #

def split_records(stream: io.BufferedIOBase, split_type: str) -> Iterator[bytes]:
    """The records of an input object, without their line terminators.

    SplitType=Line reads one line at a time (so a large object is never held
    whole); a final newline does not start an empty record. Blank lines in
    the middle are records: the model answers each with an error line, which
    keeps output line N aligned with input line N.
    """
    if split_type == "None":
        yield stream.read()
        return
    if split_type != "Line":
        raise TransformError(f"SplitType {split_type} is not supported")
    for line in stream:
        yield line[:-1] if line.endswith(b"\n") else line


def mini_batches(
    records: Iterable[bytes], max_payload_mb: int, strategy: str = "MultiRecord"
) -> Iterator[list[bytes]]:
    """Group records into requests of at most max_payload_mb (each record is
    sent followed by a newline). SingleRecord sends one record per request."""
    limit = max_payload_mb * MB if max_payload_mb else None
    batch: list[bytes] = []
    size = 0
    for number, record in enumerate(records, start=1):
        record_size = len(record) + 1
        if limit is not None and record_size > limit:
            raise TransformError(
                f"record {number} is {record_size} bytes, more than MaxPayloadInMB "
                f"({max_payload_mb} MB): make the record smaller or raise MaxPayloadInMB"
            )
        if batch and (strategy == "SingleRecord" or (limit is not None and size + record_size > limit)):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        yield batch


def payload(batch: list[bytes]) -> bytes:
    """The request body of a mini-batch: one record per line."""
    return b"".join(record + b"\n" for record in batch)


# --------------------------------------------------------------------------- #
# JSONPath subset used by DataProcessing filters
# --------------------------------------------------------------------------- #
# SageMaker supports: $, .name, *, ['name'(,'name')], [n(,n)] (negative too),
# [start:end]. Its documentation states that a slice includes its end
# ("$[1:4] specifies the second through fifth columns"), so slices here do too.

_NAME = r"[A-Za-z_$][\w$-]*"
_INDEX = r"-?\d+"
_SLICE = rf"(?:{_INDEX})?:(?:{_INDEX})?"
_QUOTED = r"'(?:[^'\\]|\\.)*'"
_TOKEN = re.compile(
    rf"\.(?P<dot>{_NAME}|\*)"
    rf"|\[(?P<names>{_QUOTED}(?:\s*,\s*{_QUOTED})*)\]"
    rf"|\[(?P<items>(?:{_SLICE}|{_INDEX})(?:\s*,\s*(?:{_SLICE}|{_INDEX}))*)\]"
    rf"|\[(?P<star>\*)\]"
    rf"|\.\[(?P<dotnames>{_QUOTED}(?:\s*,\s*{_QUOTED})*)\]"
)


@dataclass(frozen=True)
class JsonPath:
    expression: str
    steps: tuple

    @classmethod
    def parse(cls, expression: str | None) -> "JsonPath":
        text = (expression or "$").strip() or "$"
        if not text.startswith("$"):
            raise ValueError(f"JSONPath {text!r} must start with $")
        steps, position = [], 1
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match:
                raise ValueError(f"JSONPath {text!r}: unsupported syntax at {text[position:]!r}")
            if match["dot"] is not None:
                steps.append(("all",) if match["dot"] == "*" else ("names", (match["dot"],)))
            elif match["names"] is not None or match["dotnames"] is not None:
                quoted = re.findall(_QUOTED, match["names"] or match["dotnames"])
                steps.append(("names", tuple(q[1:-1].replace("\\'", "'") for q in quoted)))
            elif match["star"] is not None:
                steps.append(("all",))
            else:
                steps.append(("items", tuple(part.strip() for part in match["items"].split(","))))
            position = match.end()
        return cls(text, tuple(steps))

    @property
    def is_root(self) -> bool:
        return not self.steps

    def apply(self, value: Any) -> Any:
        for step in self.steps:
            value = self._step(step, value)
        return value

    def _step(self, step: tuple, value: Any) -> Any:
        kind = step[0]
        if kind == "all":
            if isinstance(value, dict):
                return list(value.values())
            if isinstance(value, list):
                return value
            raise TransformError(f"{self.expression}: * applies to an object or array")
        if kind == "names":
            if not isinstance(value, dict):
                raise TransformError(f"{self.expression}: the record is not a JSON object")
            names = step[1]
            if len(names) == 1:
                if names[0] not in value:
                    raise TransformError(f"{self.expression}: the record has no {names[0]!r}")
                return value[names[0]]
            return {name: value[name] for name in names if name in value}
        if not isinstance(value, list):
            raise TransformError(f"{self.expression}: the record is not an array (CSV row)")
        picked: list = []
        single = len(step[1]) == 1 and ":" not in step[1][0]
        for item in step[1]:
            if ":" in item:
                start_text, end_text = item.split(":")
                start = int(start_text) if start_text else 0
                end = int(end_text) if end_text else len(value) - 1
                start += len(value) if start < 0 else 0
                end += len(value) if end < 0 else 0
                picked.extend(value[max(start, 0): end + 1])
            else:
                index = int(item)
                if not -len(value) <= index < len(value):
                    raise TransformError(
                        f"{self.expression}: index {index} is outside the record's {len(value)} fields"
                    )
                picked.append(value[index])
        return picked[0] if single else picked


# --------------------------------------------------------------------------- #
# DataProcessing: filters and joins
# --------------------------------------------------------------------------- #

def _csv_fields(line: bytes, what: str, number: int) -> list[str]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise TransformError(f"{what} {number} is not valid UTF-8") from None
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as error:
        raise TransformError(f"{what} {number} is not a valid CSV row: {error}") from None
    return rows[0] if rows else []


def _csv_line(fields: Any) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields if isinstance(fields, list) else [fields])
    return out.getvalue().encode("utf-8")


def _json_value(line: bytes, what: str, number: int) -> Any:
    # The product's reader stands in for SageMaker's own JSON parser, whose
    # limits AWS does not document: a record the model would refuse as JSON
    # fails the job here, naming its line (see README, batch formats).
    try:
        return read_json(line)
    except JSONInputError as error:
        raise TransformError(f"{what} {number} is not valid JSON ({error})") from None


def _json_line(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class DataProcessing:
    """The DataProcessing block of a CreateTransformJob request, applied to
    the records of one input object."""

    input_filter: JsonPath
    output_filter: JsonPath
    join: bool
    content_type: str
    accept: str

    @classmethod
    def from_request(cls, spec: dict | None, content_type: str | None, accept: str | None) -> "DataProcessing":
        spec = spec or {}
        processing = cls(
            input_filter=JsonPath.parse(spec.get("InputFilter")),
            output_filter=JsonPath.parse(spec.get("OutputFilter")),
            join=spec.get("JoinSource", "None") == "Input",
            content_type=media_type(content_type),
            accept=media_type(accept),
        )
        if processing.active and processing.input_format is None:
            raise ValueError(
                "DataProcessing (InputFilter, JoinSource, OutputFilter) works on CSV and JSON "
                f"input only; ContentType is {content_type or 'not set'}"
            )
        return processing

    @property
    def active(self) -> bool:
        return self.join or not self.input_filter.is_root or not self.output_filter.is_root

    @property
    def input_format(self) -> str | None:
        if self.content_type == CSV:
            return "csv"
        if self.content_type in JSON_TYPES:
            return "json"
        return None

    def _parse_input(self, record: bytes, number: int) -> Any:
        if self.input_format == "csv":
            return _csv_fields(record, "input line", number)
        return _json_value(record, "input line", number)

    def _serialize(self, value: Any) -> bytes:
        return _csv_line(value) if self.input_format == "csv" else _json_line(value)

    def filter_input(self, record: bytes, number: int) -> bytes:
        """The record as sent to the model (InputFilter applied)."""
        if self.input_filter.is_root:
            return record
        return self._serialize(self.input_filter.apply(self._parse_input(record, number)))

    def joined(self, record: bytes, result: bytes, number: int) -> bytes:
        """The line written for one input record and its result (JoinSource and
        OutputFilter applied)."""
        if not self.join and self.output_filter.is_root:
            return result
        if self.join:
            source = self._parse_input(record, number)
            fmt = self.input_format
            if fmt == "csv":
                output: Any = (
                    _csv_fields(result, "result of input line", number)
                    if self.accept == CSV
                    else [result.decode("utf-8", "replace")]
                )
                value: Any = source + output
            else:
                output = (
                    result.decode("utf-8", "replace")
                    if self.accept == CSV
                    else _json_value(result, "result of input line", number)
                )
                if isinstance(source, dict):
                    value = {**source, "SageMakerOutput": output}
                else:
                    value = {"SageMakerInput": source, "SageMakerOutput": output}
        else:
            fmt = "csv" if self.accept == CSV else "json"
            value = (
                _csv_fields(result, "result of input line", number)
                if fmt == "csv"
                else _json_value(result, "result of input line", number)
            )
        filtered = self.output_filter.apply(value)
        return _csv_line(filtered) if fmt == "csv" else _json_line(filtered)


# --------------------------------------------------------------------------- #
# Assembling the results of a mini-batch
# --------------------------------------------------------------------------- #

def response_records(body: bytes, expected: int) -> list[bytes]:
    """Split a mini-batch response into one result per input record."""
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if len(lines) != expected:
        raise TransformError(
            f"the model answered {len(lines)} lines for a mini-batch of {expected} records, "
            "so results cannot be matched with their input records"
        )
    return lines


def assemble(
    batch: list[bytes],
    first_number: int,
    body: bytes,
    processing: DataProcessing,
    assemble_with: str,
) -> bytes:
    """The output bytes for one mini-batch: its response, or its records joined
    with their inputs, each ended by a newline when AssembleWith=Line."""
    ending = b"\n" if assemble_with == "Line" else b""
    if not (processing.join or not processing.output_filter.is_root):
        if ending and body and not body.endswith(b"\n"):
            return body + ending
        return body
    results = response_records(body, len(batch))
    return b"".join(
        processing.joined(record, result, first_number + offset) + ending
        for offset, (record, result) in enumerate(zip(batch, results))
    )
