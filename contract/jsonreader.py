"""The one JSON reader for text a user controls: the API's request body, the
model's application/json body and JSON Lines records, batch input records,
the local stack's own endpoints and `critic predict`.

Python's json module alone is not enough for hostile input: its C scanner
recurses once per nesting level (a body of 1,100 brackets raises
RecursionError), a 5,000-digit integer raises ValueError from the int
conversion limit, it accepts NaN and Infinity (not JSON, and they come back
out as invalid JSON), and it lets the last of two equal keys win silently.
`loads` gives valid JSON exactly what `json.loads` gives, and refuses the
rest with `JSONInputError`: a ValueError whose message is one short sentence
that is safe to show a user (no traceback, no Python internals).

The limits, generous for any real review or request:

- nesting: at most MAX_DEPTH (64) arrays/objects inside each other, checked
  by a scan of the brackets outside strings before parsing, so the parser
  never recurses deeper than that;
- numbers: at most MAX_NUMBER_CHARS (100) characters per number (sign,
  digits, point and exponent), and a float must be finite (1e400 is refused,
  not read as infinity);
- NaN, Infinity and -Infinity are refused (not JSON, RFC 8259 section 6);
- a key twice in one object is refused as ambiguous;
- a lone UTF-16 surrogate (a "\\ud800" escape without its pair) is refused:
  it is not a character, and no UTF-8 output could carry it;
- one leading byte order mark (U+FEFF) is ignored, everywhere: editors on
  Windows write one, and RFC 8259 section 8.1 lets parsers ignore it;
- bytes must be UTF-8;
- the whole text at most `max_bytes` (UTF-8) when the caller gives a limit.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100
BOM = "\ufeff"

# A JSON string (escapes included), or one bracket outside strings. A string
# that is not closed runs to the end of the text: the parser refuses it
# there, and the scan stays linear (were the closing quote required, every
# escaped quote of an unclosed string would start a new scan to the end:
# quadratic, minutes for a 256 KiB body).
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_KEY_CHARS = 40


class JSONInputError(ValueError):
    """JSON text this product does not read; str(error) is one sentence for
    the user."""


def _refuse_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not valid JSON")


def _number_token(token: str) -> None:
    if len(token) > MAX_NUMBER_CHARS:
        raise JSONInputError(f"a number longer than {MAX_NUMBER_CHARS} characters")


def _int(token: str) -> int:
    _number_token(token)
    return int(token)


def _float(token: str) -> float:
    _number_token(token)
    value = float(token)
    if not math.isfinite(value):
        raise JSONInputError(f"the number {token} is out of range")
    return value


def _shown(key: str) -> str:
    shown = json.dumps(key[:_SHOWN_KEY_CHARS])
    return shown if len(key) <= _SHOWN_KEY_CHARS else shown[:-1] + '..."'


def _object(pairs: list) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONInputError(f"duplicate key {_shown(key)}")
            seen.add(key)
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_int=_int, parse_float=_float, parse_constant=_refuse_constant
)


def _check_depth(text: str, max_depth: int) -> None:
    # Cheap first: a text with few brackets cannot nest deeply.
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise JSONInputError(f"nested deeper than {max_depth} levels")
        elif char in "]}":
            depth = max(depth - 1, 0)


def _check_strings(value: Any) -> None:
    """Refuse strings holding a lone surrogate (only a \\u escape makes one)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise JSONInputError("a string holds a lone UTF-16 surrogate, which is not a character")
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def loads(text: str | bytes, *, max_bytes: int | None = None) -> Any:
    """The value of one JSON text, as json.loads gives it, or JSONInputError."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        if max_bytes is not None and len(data) > max_bytes:
            raise JSONInputError(f"the JSON text is over {max_bytes:,} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONInputError("the JSON text is not valid UTF-8") from None
    elif not isinstance(text, str):
        raise TypeError(f"JSON text must be str or bytes, not {type(text).__name__}")
    else:
        if _SURROGATE.search(text):
            raise JSONInputError("the text holds a lone UTF-16 surrogate, which is not a character")
        if max_bytes is not None and (len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes):
            raise JSONInputError(f"the JSON text is over {max_bytes:,} bytes")
    if text.startswith(BOM):
        text = text[1:]
    _check_depth(text, MAX_DEPTH)
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}" if "\n" in text else f"column {error.colno}"
        # Some of json's messages end in "at" ("Unterminated string starting at").
        raise JSONInputError(f"{error.msg.removesuffix(' at')} at {where}") from None
    if "\\u" in text:
        _check_strings(value)
    return value
