#!/usr/bin/env python3
"""What an explanation adds to scoring one review, in-process: the SageMaker
handler (input_fn -> predict_fn -> output_fn) on {"review": ...} and on
{"review": ..., "explain": true}, alternately, one review per request, over
IMDB test reviews (every --every'th of the test split). Prints milliseconds
per review for each, the p50/p90 of the difference, and the largest gap
between baseline + contributions and the network's logit, as JSON.

Usage: .venv/bin/python scripts/bench_explain.py [--data aclImdb_v1.tar.gz]
       [--artifact model/artifact/model.tar.gz] [--every 10] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model import inference  # noqa: E402
from model.data import load_imdb  # noqa: E402
from model.explain import attribute  # noqa: E402
from model.package import extract  # noqa: E402
from model.scorer import collate  # noqa: E402


def handle(scorer, request: dict) -> tuple[float, str]:
    start = time.perf_counter()
    body, _ = inference.output_fn(inference.predict_fn(inference.input_fn(json.dumps(request), "application/json"),
                                                       scorer), "application/json")
    return time.perf_counter() - start, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data/aclImdb_v1.tar.gz")
    parser.add_argument("--artifact", default=str(REPO / "model/artifact/model.tar.gz"))
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a serverless endpoint has 1-2 vCPUs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reviews = [r.text for r in load_imdb(args.data, splits=("test",)).test[:: args.every]]
    with tempfile.TemporaryDirectory() as folder:
        scorer = inference.model_fn(str(extract(Path(args.artifact), Path(folder))))
    plain, explained, gaps = [], [], []
    for review in reviews[:20]:  # warm up
        handle(scorer, {"review": review, "explain": True})
    for review in reviews:
        plain.append(handle(scorer, {"review": review})[0])
        explained.append(handle(scorer, {"review": review, "explain": True})[0])
        attribution = attribute(scorer.network, scorer.vocabulary, review)
        with torch.no_grad():
            logit = float(scorer.network(*collate([scorer.vocabulary.encode(attribution.tokens, scorer.max_len)]))[0])
        gaps.append(abs(attribution.baseline + attribution.per_token.sum() - logit))
    plain_ms, explained_ms = np.array(plain) * 1000, np.array(explained) * 1000
    added = explained_ms - plain_ms
    print(json.dumps({
        "reviews": len(reviews), "threads": args.threads,
        "plain_ms": {"p50": round(float(np.percentile(plain_ms, 50)), 2), "p90": round(float(np.percentile(plain_ms, 90)), 2)},
        "explained_ms": {"p50": round(float(np.percentile(explained_ms, 50)), 2),
                         "p90": round(float(np.percentile(explained_ms, 90)), 2)},
        "added_ms": {"p50": round(float(np.percentile(added, 50)), 2), "p90": round(float(np.percentile(added, 90)), 2)},
        "max_completeness_gap_logit": float(max(gaps)),
    }, indent=2))


if __name__ == "__main__":
    main()
