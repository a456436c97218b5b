"""The shared JSON reader (contract/jsonreader.py): each limit at and just past
its boundary, what does and does not count as nesting, the BOM rule, and
that valid JSON reads exactly as json.loads reads it."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from contract.jsonreader import MAX_DEPTH, MAX_NUMBER_CHARS, JSONInputError, loads


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def refused(text, **kwargs) -> str:
    with pytest.raises(JSONInputError) as caught:
        loads(text, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message and "Traceback" not in message and len(message) < 120
    return message


def test_the_error_is_a_value_error():
    assert issubclass(JSONInputError, ValueError)


def mixed(depth: int) -> str:
    """Arrays and objects alternating, `depth` levels in all."""
    opens = ['{"k":' if level % 2 else "[" for level in range(depth)]
    return "".join(opens) + "1" + "".join("}" if o.startswith("{") else "]" for o in reversed(opens))


@pytest.mark.parametrize("make", [nested, nested_objects, mixed])
def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused(make):
    assert loads(make(MAX_DEPTH)) == json.loads(make(MAX_DEPTH))
    assert refused(make(MAX_DEPTH + 1)) == f"nested deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize("depth", [1_100, 100_000])
def test_parser_bombs_are_refused_without_recursion(depth):
    body = '{"review": "great", "x": ' + nested(depth) + "}"
    assert refused(body) == f"nested deeper than {MAX_DEPTH} levels"
    assert refused("[" * depth) == f"nested deeper than {MAX_DEPTH} levels"  # not even closed


@pytest.mark.parametrize("text", [
    '{"review": "' + "[" * 5000 + '"}',
    '{"review": "' + "{[" * 3000 + "]}" * 3000 + '"}',
    '{"review": "a \\" quote ' + "[" * 200 + '"}',  # an escaped quote does not end the string
    '{"review": "ends in a backslash \\\\", "x": ' + nested(MAX_DEPTH - 1) + "}",  # \\ then the closing quote
    '["\\\\\\"[[[[", ' + nested(MAX_DEPTH - 1) + "]",
])
def test_brackets_inside_strings_are_not_nesting(text):
    assert loads(text) == json.loads(text)


def test_an_escaped_backslash_before_a_quote_ends_the_string():
    # "\\" is a whole string: the brackets after it are structure.
    assert refused('["\\\\", ' + nested(MAX_DEPTH) + "]") == f"nested deeper than {MAX_DEPTH} levels"


def test_an_unclosed_string_is_scanned_once_to_the_end():
    # Were the closing quote required, each escaped quote of an unclosed string
    # would start another scan to the end of the text: quadratic in its length
    # (minutes for a 256 KiB body). One match to the end keeps the scan linear.
    from contract.jsonreader import _STRING_OR_BRACKET
    body = '"' + '\\"' * 50_000 + "[" * (MAX_DEPTH + 5)
    assert [m.span() for m in _STRING_OR_BRACKET.finditer(body)] == [(0, len(body))]
    assert refused("[" + body) == "Unterminated string starting at column 2"


def test_huge_flat_arrays_are_fine():
    text = "[" + ",".join(["[]"] * 50_000) + "]"
    assert loads(text) == json.loads(text)
    assert loads("[" + ",".join(["1"] * 50_000) + "]") == [1] * 50_000


def test_numbers_up_to_the_limit_are_read_and_one_more_character_is_refused():
    at_limit = "9" * MAX_NUMBER_CHARS
    assert loads(f'{{"n": {at_limit}}}') == {"n": int(at_limit)}
    assert loads(f"[-{at_limit[1:]}]") == [-int(at_limit[1:])]
    assert refused(f"[{at_limit}9]") == f"a number longer than {MAX_NUMBER_CHARS} characters"
    assert refused(f"[-{at_limit}]") == f"a number longer than {MAX_NUMBER_CHARS} characters"
    decimal = "1." + "5" * (MAX_NUMBER_CHARS - 2)
    assert loads(f"[{decimal}]") == [float(decimal)]
    assert refused(f"[{decimal}5]") == f"a number longer than {MAX_NUMBER_CHARS} characters"


def test_python_int_limit_is_never_reached():
    assert refused('{"review": "ok", "n": ' + "9" * 5000 + "}") == \
        f"a number longer than {MAX_NUMBER_CHARS} characters"


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E309"])
def test_floats_that_overflow_are_refused(number):
    assert refused(f"[{number}]") == f"the number {number} is out of range"


@pytest.mark.parametrize("name", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_constants_are_refused(name):
    assert refused(f'{{"review": "great", "x": {name}}}') == f"{name} is not valid JSON"


def test_duplicate_keys_are_refused_at_any_depth():
    assert refused('{"review": "bad", "review": "wonderful film"}') == 'duplicate key "review"'
    assert refused('[{"a": {"b": 1, "b": 2}}]') == 'duplicate key "b"'
    assert refused('{"a": 1, "\\u0061": 2}') == 'duplicate key "a"'  # the same key, spelled twice
    assert loads('{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}') == {"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}


def test_a_long_duplicate_key_is_shown_shortened():
    key = "k" * 10_000
    message = refused(json.dumps(key).join(['{', ': 1, ']) + json.dumps(key) + ": 2}")
    assert message.startswith('duplicate key "kkk') and message.endswith('..."') and len(message) < 80


def test_very_long_keys_and_strings_are_fine():
    document = {"k" * 100_000: "v" * 200_000}
    assert loads(json.dumps(document)) == document


@pytest.mark.parametrize("text", ['"\\ud800"', '"\\udc00"', '{"\\ud83d": 1}', '["ok", "\\ude00\\ud83d"]',
                                  '"\\ud83d\\u0041"'])
def test_lone_surrogates_are_refused(text):
    assert "lone UTF-16 surrogate" in refused(text)


def test_a_raw_lone_surrogate_in_the_text_is_refused():
    assert "lone UTF-16 surrogate" in refused('"\ud800"')


@pytest.mark.parametrize("text", ['"\\ud83d\\ude00"', '"\\\\ud800"', '"\\u00e9"'])
def test_surrogate_pairs_and_escaped_backslashes_are_fine(text):
    assert loads(text) == json.loads(text)


def test_a_leading_bom_is_ignored_in_text_and_bytes():
    assert loads('\ufeff{"review": "good"}') == {"review": "good"}
    assert loads(b'\xef\xbb\xbf{"review": "good"}') == {"review": "good"}
    refused('\ufeff\ufeff{"review": "good"}')  # one, at the start only
    refused('{"review": "good"}\ufeff')


def test_bytes_must_be_utf8():
    assert refused(b'{"review": "\xff"}') == "the JSON text is not valid UTF-8"
    assert loads('{"review": "é"}'.encode()) == {"review": "é"}


def test_the_size_limit_is_in_utf8_bytes():
    text = '["' + "é" * 4 + '"]'  # 12 bytes, 8 characters
    assert loads(text, max_bytes=12) == ["é" * 4]
    assert refused(text, max_bytes=11) == "the JSON text is over 11 bytes"
    assert refused(text.encode(), max_bytes=11) == "the JSON text is over 11 bytes"


@pytest.mark.parametrize("text, message", [
    ("{oops", "Expecting property name enclosed in double quotes at column 2"),
    ('{"a": 1}\n{"b": 2}', "Extra data at line 2 column 1"),
    ("", "Expecting value at column 1"),
    ('["abc', "Unterminated string starting at column 2"),
])
def test_syntax_errors_say_where(text, message):
    assert refused(text) == message


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=("Cs",))),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(value=JSON_VALUES, ensure_ascii=st.booleans(), indent=st.sampled_from([None, 2]))
def test_valid_json_reads_exactly_as_json_loads(value, ensure_ascii, indent):
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)
