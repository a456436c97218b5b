"""Does the standard-library HTML stripping give the tokens BeautifulSoup gave?

Tokenises every IMDB review (train/ pos and neg, test/ pos and neg, train/
unsup: 100,000) twice with model/preprocess.py's tokenize: once as it is
(html.parser, standard library) and once with strip_html swapped for the old
path, BeautifulSoup(text, "html.parser").get_text(" ") after the same <br />
regex. Reports how many reviews' tokens differ, and how many stripped texts
differ at all (a stricter test: a text can differ in whitespace only), with
the first few differences. Exit status 1 if any tokens differ.

    .venv/bin/python scripts/html_parity.py --data /path/to/aclImdb_v1.tar.gz

A measuring tool: it imports bs4 (beautifulsoup4), which the model no longer
needs; bs4 stays a test and tooling dependency for this script and for
tests/model/test_preprocess.py. The tarball is read in place (model/data.py).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model import preprocess  # noqa: E402
from model.data import load_imdb  # noqa: E402
from model.progress import progress  # noqa: E402


def bs4_strip_html(text: str) -> str:
    """model/preprocess.py's strip_html before the standard library replaced BeautifulSoup."""
    from bs4 import BeautifulSoup

    text = preprocess._BR.sub(" ", text)
    if "<" in text or "&" in text:
        text = BeautifulSoup(text, "html.parser").get_text(" ")
    return text


def bs4_tokenize(raw):
    new = preprocess.strip_html
    preprocess.strip_html = bs4_strip_html  # tokenize looks strip_html up at each call
    try:
        return preprocess.tokenize(raw)
    finally:
        preprocess.strip_html = new


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="aclImdb_v1.tar.gz or its unpacked folder")
    parser.add_argument("--show", type=int, default=5, help="differences to print (default 5)")
    args = parser.parse_args(argv)
    from bs4 import MarkupResemblesLocatorWarning

    warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)  # a review that looks like a URL
    started = time.perf_counter()
    imdb = load_imdb(args.data)
    reviews = [("train", r.text) for r in imdb.train] + [("test", r.text) for r in imdb.test]
    reviews += [("unsup", text) for text in imdb.unsup]
    parsed = token_diffs = text_diffs = 0
    shown = []
    for split, text in progress(reviews, desc="tokenising twice", unit=" reviews"):
        after_br = preprocess._BR.sub(" ", text)
        parsed += "<" in after_br or "&" in after_br  # the reviews the HTML parser reads at all
        old, new = bs4_tokenize(text), preprocess.tokenize(text)
        if old != new:
            token_diffs += 1
        if bs4_strip_html(text) != preprocess.strip_html(text):
            text_diffs += 1
            if len(shown) < args.show:
                shown.append((split, text, old, new))
    for split, text, old, new in shown:
        at = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        print(f"--- {split}: {text[:200]!r}\n    bs4:    {old[max(0, at - 5):at + 10]}\n"
              f"    stdlib: {new[max(0, at - 5):at + 10]}")
    print(f"{len(reviews):,} reviews compared ({parsed:,} with markup besides <br />); "
          f"tokens differ in {token_diffs:,}; stripped text differs in {text_diffs:,}; "
          f"{time.perf_counter() - started:.0f} s")
    return 1 if token_diffs else 0


if __name__ == "__main__":
    sys.exit(main())
