import os

import pytest
from hypothesis import given, settings, strategies as st

from model import preprocess
from model.preprocess import _BR, _TOKEN, MAX_CHARS, ReviewError, normalise, strip_html, tokenize


def test_every_word_is_kept_and_negations_are_spelt_out():
    # "the worst", "not even", "a must": function words are evidence in n-grams.
    assert tokenize("I didn't like it, but the acting was not bad. Never again!") == [
        "i", "did", "not", "like", "it", ",", "but", "the", "acting", "was", "not", "bad", ".", "never", "again",
        "!"]


def test_words_are_not_stemmed():
    assert tokenize("Loved loving lovely movies") == ["loved", "loving", "lovely", "movies"]


def test_unicode_is_normalised():
    # full-width letters, ligatures and curly quotes read as their plain forms
    assert tokenize("\uff27\uff2f\uff2f\uff24 \ufb01lm, it\u2019s `fine`") == ["good", "film", ",", "it's", "fine"]


def test_html_is_stripped_and_script_is_inert_text():
    tokens = tokenize('Great<br /><br />film <b>indeed</b> <script>alert("x")</script> &amp; more')
    assert "br" not in tokens and "b" not in tokens and "script" not in tokens
    assert tokens == ["great", "film", "indeed", "more"]  # script bodies are code, not review text


def test_curly_apostrophes_count_as_negation():
    assert "not" in tokenize("It isn\u2019t good")


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", b"", b"  \n"])
def test_empty_review_is_a_clear_error(text):
    with pytest.raises(ReviewError, match="empty"):
        tokenize(text)


def test_invalid_utf8_is_a_clear_error():
    with pytest.raises(ReviewError, match="UTF-8"):
        tokenize(b"good \xff\xfe film")


def test_non_text_is_a_clear_error():
    with pytest.raises(ReviewError, match="text"):
        tokenize(12)


@pytest.mark.parametrize("text, expected", [
    ("😀😀😀", []),  # no word: an empty token list, which the scorer reads as unknown
    ("Отличный фильм", ["отличный", "фильм"]),  # other scripts are kept as words
    ("映画は素晴らしい", ["映画は素晴らしい"]),
    ("فيلم رائع", ["فيلم", "رائع"]),
    ("a\x00b good", ["a", "b", "good"]),
])
def test_any_text_gives_a_defined_result(text, expected):
    assert tokenize(text) == expected


def test_a_megabyte_of_text_is_cut_to_head_and_tail():
    text = "superb " + "plot " * 200_000 + " dreadful"
    tokens = tokenize(text)
    assert tokens[0] == "superb" and tokens[-1] == "dreadful"
    assert len(tokens) <= MAX_CHARS // 5 + 3


# ------------------------------------------------ HTML: the standard library against BeautifulSoup
# model/preprocess.py strips HTML with html.parser alone; the shipped model was
# trained on BeautifulSoup(text, "html.parser").get_text(" ") (beautifulsoup4
# 4.15). bs4 stays a test dependency so that these tests can compare the two
# (and scripts/html_parity.py, on all of IMDB).

def bs4_strip_html(text: str) -> str:
    import warnings

    from bs4 import BeautifulSoup

    text = _BR.sub(" ", text)
    if "<" in text or "&" in text:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "looks like a URL", "looks like XML"
            text = BeautifulSoup(text, "html.parser").get_text(" ")
    return text


TRICKY = [
    # entities and numeric references
    "AT&T", "AT&T;x", "a &amp; b", "&amp;amp;", "&amp", "&ampx", "&AMP;", "&lt;b&gt;not a tag&lt;/b&gt;", "&nbsp;x&nbsp",
    "&notit;", "&notin;", "&foo;bar", "&foo-bar.baz;", "&#65;&#x42;&#X43;", "&#65", "&#x;", "&#;", "&#", "&#-1;",
    "&#0;", "&#13;", "&#128;&#150;&#129;&#157;", "&#xD800;", "&#x110000;", "&#xFDD0;&#xFFFE;", "&#1234567890123;",
    "caf&eacute; na&iuml;ve", "&#8217;s", "R&B & soul;", "Q&A", "&;", "&&&", "fish & chips & peas",
    # comments, declarations, processing instructions, CDATA
    "a<!--c-->b", "a<!---->b", "a<!-- <b>x</b> -->b", "a<!--b", "a<!-- b --", "a<!b>c", "<!DOCTYPE html>x",
    "<?xml version='1.0'?>x", "a<?php echo 1; ?>b", "x<![CDATA[ y ]]>z", "x<![CDATA[]]>z", "x<![CDATA[<b>y</b>]]>z",
    "a<![if !supportLists]>b<![endif]>c", "a<![CDATA[b",
    # script, style and the rest bs4 leaves out
    'Great <script>alert("x")</script> film', "a<style>p {color: red}</style>b", "a<script>b", "<SCRIPT>x</SCRIPT>y",
    "a<script>x</b>y</script>z", "a<template><b>t</b></template>c", "漢<rp>(</rp><rt>kan</rt><rp>)</rp>字",
    "a<script/>b", "a<style>b</style",
    # tags: nested, unclosed, stray, uppercase, void, attributes
    "a<b>b<i>c</i></b>d", "<b>bold", "bold</b>", "<p>one<p>two</p>three", "<B>LOUD</B><I>x</I>", "a<b/>c",
    "a<img>b</img>c", "a<img/>b</img>c", "a<hr>b</hr>c</hr>d", "a<BR>b</br>c", "a<br/ >b", "a<br class=x>b",
    "<a href='x>y'>link</a>", '<a title="1 > 0" href=x>link</a>', "<a href=x>link", "<div class=", "<a\n href='x'>y</a>",
    "a < b", "a <b", "a<b", "a<3 b", "1 <= 2 >= 0", "x <- y", "a <<b>> c", "a</ b>c", "a</>b", "a</3>b", "<>", "<",
    "a<b c", "<tag attr=\"unterminated>text", "i <3 this", "10<20", "<:-)", "-->", "]]>",
    # whitespace around markup
    "<pre>  x  </pre>y", "<pre> </pre>y", "<textarea>\n</textarea>z", "a<b> </b>c", "a<b>\n\n</b>c", "\n<b>x</b>\n",
    "  &amp;  ", "<p>\t\r\f</p>",
]


@pytest.mark.parametrize("text", TRICKY)
def test_strip_html_gives_bs4s_text(text):
    assert strip_html(text) == bs4_strip_html(text)
    assert tokenize(text) == _TOKEN.findall(normalise(bs4_strip_html(text)))


@pytest.mark.parametrize("text, expected", [
    # bs4 raised on these (ParserRejectedMarkup, ValueError): the "<" or reference is read as text instead.
    ("a<![foo]>b", "a<![foo]>b"),
    ("a<![ x", "a<![ x"),
    ("x<![if]>y", "x y"),
    ("&#" + "1" * 5000 + ";", "\ufffd"),
    ("&#" + "0" * 5000 + "65;", "A"),
])
def test_markup_bs4_refused_is_text_not_an_error(text, expected):
    assert strip_html(text) == expected


def test_bs4s_tables_are_the_ones_reproduced():
    from bs4.builder._htmlparser import HTMLParserTreeBuilder
    from bs4.dammit import EntitySubstitution, UnicodeDammit
    from bs4.element import CData, NavigableString

    builder = HTMLParserTreeBuilder()
    assert preprocess._ENTITIES == EntitySubstitution.HTML_ENTITY_TO_CHARACTER
    assert preprocess._VOID == builder.empty_element_tags
    assert preprocess._VERBATIM == builder.preserve_whitespace_tags
    # get_text keeps NavigableString and CData; these tags' strings are other classes
    assert preprocess._HIDDEN == {tag for tag, cls in builder.string_containers.items()
                                  if cls not in (NavigableString, CData)}
    codes = [*range(0x3000), *range(0xD7F0, 0xE010), *range(0xFDC0, 0xFE00), 0xFFFE, 0xFFFF, 0x1FFFE, 0x1F600,
             0x10FFFF, 0x110000, 0x7FFFFFFF]
    assert [preprocess._character(c) for c in codes] == [UnicodeDammit.numeric_character_reference(c)[0] for c in codes]


# Text built from what HTML is made of. html.parser and bs4's use of it are
# deterministic, so the property is exact: the same text, not just the same
# tokens, on anything bs4 accepts (it raises on "<![" followed by anything but
# CDATA or an MS Office section; the stdlib path reads that "<" as text).
MARKUP = st.one_of(
    st.sampled_from(["<", ">", "&", ";", "#", "x", "X", "/", "!", "?", "-", "--", "=", "'", '"', "[", "]", " ", "\n",
                     "\t", "\r", "\f", "0", "9", "65", "F", "é", "\u2019"]),
    st.sampled_from(["a", "b", "br", "p", "i", "img", "hr", "pre", "script", "style", "textarea", "template", "rt",
                     "rp", "div", "B", "IMG", "Script", "amp", "lt", "nbsp", "notin", "eacute"]),
    st.sampled_from(["<b>", "</b>", "<br />", "<br>", "</br>", "<img>", "</img>", "<img/>", "<p>", "</p>", "<pre>",
                     "</pre>", "<script>", "</script>", "<style>", "</style>", "<template>", "</template>", "<rt>",
                     "<!--", "-->", "<![CDATA[", "]]>", "<![if x]>", "<![endif]>", "<!DOCTYPE html>", "<?", "?>",
                     "&amp;", "&lt;", "&#", "&#x", "&#65;", "&#150;", "&#0;", "AT&T", "<a href='x>y'>", "</a>", "<!"]),
    st.text(max_size=3),
)


@settings(max_examples=1000 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 300,  # tests/reliability's profiles
          derandomize=True, deadline=None)
@given(st.lists(MARKUP, max_size=30).map("".join))
def test_fuzz_strip_html_is_bs4s_text_and_never_raises(text):
    stripped = strip_html(text)
    assert isinstance(stripped, str)
    try:
        expected = bs4_strip_html(text)
    except Exception as error:  # bs4 refuses "<![..." it cannot read
        assert type(error).__name__ == "ParserRejectedMarkup" and "<![" in text
        return
    assert stripped == expected
