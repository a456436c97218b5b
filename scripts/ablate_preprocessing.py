"""What each preprocessing choice is worth, measured on train/ alone.

For each tokenizer: NB-weighted logistic regression on the set of words,
bigrams and trigrams (exact n-gram vocabulary, n-grams in >= 2 reviews,
liblinear, C = 0.1), scored by K-fold cross-validation with the folds by
movie (model.data.movie_folds, as the shipped model's validation split).
Prints mean accuracy per tokenizer. The tokenizers:

  shipped      model.preprocess.tokenize: every word, punctuation kept
  no-punct     words only, "!" and "?" kept (the shipped one before punctuation)
  stems        shipped, Porter-stemmed (needs nltk: .venv/bin/pip install nltk)
  stopwords    no-punct, minus the stopword list the model used until c999a43
               (NLTK's English list without negations, contrast words and
               intensifiers), Porter-stemmed: the previous preprocessing

    .venv/bin/python scripts/ablate_preprocessing.py --data ../shared/data/aclImdb_v1.tar.gz
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.data import load_imdb, movie_folds  # noqa: E402
from model.preprocess import normalise, strip_html, tokenize  # noqa: E402

WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[!?]")


def no_punct(text: str) -> list[str]:
    return WORDS.findall(normalise(strip_html(text)))


def stemmer():
    from nltk.stem import PorterStemmer

    stem = PorterStemmer().stem
    cache: dict[str, str] = {}
    return lambda w: cache.get(w) or cache.setdefault(w, stem(w))


def tokenizers(names: list[str]) -> dict:
    chosen = {"shipped": tokenize, "no-punct": no_punct}
    if "stems" in names or "stopwords" in names:
        stem = stemmer()
        chosen["stems"] = lambda text: [stem(w) for w in tokenize(text)]
        listed = subprocess.run(["git", "show", "c999a43^:model/stopwords.txt"], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout
        stopwords = {w.strip() for w in listed.splitlines() if w.strip() and not w.startswith("#")}
        chosen["stopwords"] = lambda text: [stem(w) for w in no_punct(text) if w not in stopwords]
    return {name: chosen[name] for name in names}


def ngrams(tokens: list[str]) -> list[str]:
    return tokens + [" ".join(tokens[i : i + n]) for n in (2, 3) for i in range(len(tokens) - n + 1)]


def nb_lr_accuracy(train_docs, train_y, test_docs, test_y) -> float:
    from scipy.sparse import diags
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = CountVectorizer(analyzer=ngrams, binary=True, min_df=2, dtype=np.float32)
    x, x_test = vectorizer.fit_transform(train_docs), vectorizer.transform(test_docs)
    pos, neg = np.asarray(x[train_y == 1].sum(0)).ravel() + 1, np.asarray(x[train_y == 0].sum(0)).ravel() + 1
    scale = diags(np.log((pos / pos.sum()) / (neg / neg.sum())))
    fit = LogisticRegression(C=0.1, solver="liblinear", dual=True, max_iter=1000, random_state=0).fit(x @ scale, train_y)
    return float((fit.predict(x_test @ scale) == test_y).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--only", nargs="*", default=["shipped", "no-punct", "stems", "stopwords"])
    args = p.parse_args()
    train = load_imdb(args.data, splits=("train",)).train
    folds = np.array(movie_folds(train, args.folds, seed=1337))
    y = np.array([e.label for e in train])
    for name, tokenizer in tokenizers(args.only).items():
        docs = [tokenizer(e.text) for e in train]
        scores = [nb_lr_accuracy([docs[i] for i in np.flatnonzero(folds != k)], y[folds != k],
                                 [docs[i] for i in np.flatnonzero(folds == k)], y[folds == k])
                  for k in range(args.folds)]
        print(f"{name:10s} {np.mean(scores) * 100:.2f} %  (folds: {', '.join(f'{s * 100:.2f}' for s in scores)})",
              flush=True)


if __name__ == "__main__":
    main()
