"""Fuzzing the shared JSON reader (contract/jsonreader.py) and the batch join
that uses it with hostile JSON (tests/reliability/hostile_json.py): every
text is read exactly as json.loads reads it, or refused with a one-line
JSONInputError; nothing else escapes (no RecursionError, no int-limit
ValueError), and NaN or Infinity never come out."""
from __future__ import annotations

import json
import math

from hypothesis import given, strategies as st

from critic.local.transform import DataProcessing, TransformError
from contract.jsonreader import BOM, JSONInputError, loads
from hostile_json import DOCUMENTS, JSON_LINES, VALUES


def finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(map(finite, value.values()))
    if isinstance(value, list):
        return all(map(finite, value))
    return True


@given(text=st.one_of(DOCUMENTS, VALUES, JSON_LINES, st.text(max_size=50)), as_bytes=st.booleans())
def test_fuzz_json_reader_reads_exactly_or_refuses_in_one_line(text, as_bytes):
    try:
        value = loads(text.encode("utf-8", "surrogatepass") if as_bytes else text)
    except JSONInputError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message and len(message) < 200
        return
    assert value == json.loads(text.removeprefix(BOM))
    assert finite(value)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # writable back out as UTF-8


JOIN = DataProcessing.from_request({"JoinSource": "Input"}, "application/jsonlines", "application/jsonlines")


@given(line=DOCUMENTS)
def test_fuzz_jsonl_join_joins_or_fails_naming_the_line(line):
    try:
        joined = JOIN.joined(line.encode("utf-8"), b'{"error": "x"}', 7)
    except TransformError as error:
        assert str(error).startswith("input line 7 is not valid JSON (") and "\n" not in str(error)
        return
    assert json.loads(joined)["SageMakerOutput"] == {"error": "x"}
