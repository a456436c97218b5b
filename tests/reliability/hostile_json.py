"""Hypothesis strategies for JSON that attacks parsers, shared by the fuzz
targets: deep nesting (arrays, objects, both; closed or not; inside strings,
where it is harmless), long numbers, NaN/Infinity, numbers that overflow a
float, duplicate keys, lone surrogates, a leading BOM. Random text almost
never builds these; issue #22 found them by hand."""
from __future__ import annotations

import json

from hypothesis import strategies as st

# Boundaries and past Python's recursion limit (about 1,000) often, not by luck.
DEPTHS = st.one_of(st.sampled_from([63, 64, 65, 1_100, 5_000]), st.integers(0, 80), st.integers(0, 5_000))
OPENERS = {"[": "]", '{"x":': "}", '{"x":[': "]}"}


def nested(depth: int, opener: str, closed: bool, inner: str = "1") -> str:
    return opener * depth + inner + (OPENERS[opener] * depth if closed else "")


NESTED = st.builds(nested, DEPTHS, st.sampled_from(list(OPENERS)), st.booleans())


def number(digits: int, negative: bool, fraction: int, exponent: str) -> str:
    return ("-" if negative else "") + "9" * digits + ("." + "5" * fraction if fraction else "") + exponent


# 4,300 digits is Python's int conversion limit.
NUMBERS = st.builds(number, st.one_of(st.sampled_from([99, 100, 101, 4_300, 4_301, 5_000]), st.integers(1, 120),
                                      st.integers(1, 6_000)), st.booleans(),
                    st.integers(0, 30), st.sampled_from(["", "e5", "E-7", "e400", "e99999"]))
CONSTANTS = st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "infinity"])
# Strings that look like structure: brackets, escaped quotes and backslashes.
TRICKY_STRINGS = st.lists(st.sampled_from(["[", "]", "{", "}", '\\"', "\\\\", "a", " ", "\\u0022", "\\ud83d\\ude00"]),
                          max_size=200).map(lambda parts: '"' + "".join(parts) + '"')
SURROGATES = st.sampled_from(['"\\ud800"', '"\\udfff x"', '"\\ud83d\\u0041"', '"ok \\\\ud800"'])
VALUES = st.one_of(NESTED, NUMBERS, CONSTANTS, TRICKY_STRINGS, SURROGATES)


@st.composite
def documents(draw) -> str:
    """One JSON text: {"review": ..., "x": <hostile value>}, perhaps with
    the review key twice, perhaps a BOM first."""
    review = draw(st.sampled_from(["A wonderful, moving film.", "An awful, boring mess.", ""]))
    fields = [f'"review": {json.dumps(review)}', f'"x": {draw(VALUES)}']
    if draw(st.booleans()):
        fields.insert(draw(st.integers(0, 2)), f'"review": {json.dumps(draw(st.text(max_size=10)))}')
    text = "{" + ", ".join(fields) + "}"
    return ("\ufeff" if draw(st.integers(0, 9)) == 0 else "") + text


DOCUMENTS = documents()
# JSON Lines bodies of hostile and ordinary records.
JSON_LINES = st.lists(st.one_of(DOCUMENTS, st.just('{"review": "A fine film."}')), min_size=1, max_size=5).map(
    lambda lines: "\n".join(lines) + "\n")
