"""Review text -> tokens. One module, used by training and serving alike.

Steps: decode, strip HTML (BeautifulSoup), normalise (NFKC, lower case, one kind
of apostrophe, "n't" -> " not"), tokenise. Nothing is dropped or stemmed: in
cross-validation by movie, removing stopwords cost the n-gram model about a
point ("the worst", "a must", "not even" are evidence) and Porter stems gained
0.1, within noise, at twice the time (scripts/ablate_preprocessing.py).
"""
from __future__ import annotations

import re
import unicodedata
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

# A review longer than this is cut to its head and tail: sentiment sits at the
# start and the end, and no step below may grow with an unbounded input.
MAX_CHARS = 100_000

# Words of letters and digits in any script, and punctuation: "!" and "?" carry
# tone, the rest mark where clauses end (in n-grams: "great ." is not "great acting").
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[!?.,;:()\"-]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_NOT = re.compile(r"n't\b")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)

warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)


class ReviewError(ValueError):
    """The input cannot be read as a review (not UTF-8, not text, empty)."""


def decode(raw: str | bytes) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ReviewError("review is not valid UTF-8") from None
    raise ReviewError(f"review must be text, not {type(raw).__name__}")


def strip_html(text: str) -> str:
    # IMDB's only markup is <br />: a regex handles it; BeautifulSoup does the rest.
    text = _BR.sub(" ", text)
    if "<" in text or "&" in text:
        text = BeautifulSoup(text, "html.parser").get_text(" ")
    return text


def normalise(text: str) -> str:
    if not text.isascii():  # NFKC leaves ASCII as it is: skip the pass
        text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    return _NOT.sub(" not", text.lower().replace("`", "'"))


def tokenize(raw: str | bytes) -> list[str]:
    """Tokens of a review. Raises ReviewError for input that is not a review;
    a review with no word in it gives an empty list."""
    text = decode(raw)
    if "\x00" in text:
        text = text.replace("\x00", " ")
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS // 2] + " " + text[-MAX_CHARS // 2 :]
    if not text.strip():
        raise ReviewError("review is empty")
    return _TOKEN.findall(normalise(strip_html(text)))
