#!/usr/bin/env python3
"""Why model/explain.py does not split the LSTM's logit with integrated
gradients: on the shipped model, how far IG over the embeddings (from zero
embeddings, Gauss-Legendre nodes on the straight path) misses completeness,
and what one forward and backward pass costs. Prints JSON.

For each of the first --reviews IMDB test reviews (every 10th of the split,
as scripts/bench_explain.py takes them): the gap |sum of attributions -
(logit - logit at zero)| at each of --nodes; then the worst review's gap at
--worst-nodes; and milliseconds of one forward+backward at a batch of 1.

Usage: .venv/bin/python scripts/explain_ig.py [--reviews 300] [--nodes 8 32 128] [--worst-nodes 1024]
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

from model.data import load_imdb  # noqa: E402
from model.encoding import read_positions  # noqa: E402
from model.package import extract  # noqa: E402
from model.preprocess import tokenize  # noqa: E402
from model.scorer import Scorer  # noqa: E402


def lstm_logits(network, path: torch.Tensor) -> torch.Tensor:
    states, _ = network.lstm(path)
    return network.head(states[:, -1]).squeeze(1)


def ig_gap(network, embedded: torch.Tensor, nodes: int) -> float:
    points, weights = np.polynomial.legendre.leggauss(nodes)
    alphas = torch.from_numpy((points + 1) / 2).float()
    path = (alphas[:, None, None] * embedded).requires_grad_(True)
    logits = lstm_logits(network, path)
    (gradients,) = torch.autograd.grad((logits * torch.from_numpy(weights / 2).float()).sum(), path)
    attributions = (gradients.sum(0) * embedded).sum()
    with torch.no_grad():
        ends = lstm_logits(network, torch.stack([torch.zeros_like(embedded), embedded]))
    return abs(float(attributions) - float(ends[1] - ends[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data/aclImdb_v1.tar.gz")
    parser.add_argument("--artifact", default=str(REPO / "model/artifact/model.tar.gz"))
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--nodes", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--worst-nodes", type=int, default=1024)
    parser.add_argument("--tolerance", type=float, default=0.005)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        scorer = Scorer.load(extract(Path(args.artifact), Path(folder)))
    network, vocabulary = scorer.network, scorer.vocabulary
    texts = [r.text for r in load_imdb(args.data, splits=("test",)).test[::10][: args.reviews]]
    embedded = []
    for text in texts:
        ids = vocabulary.ids(tokenize(text))
        with torch.no_grad():
            embedded.append(network.embedding(torch.from_numpy(ids[read_positions(len(ids), scorer.max_len)])))
    gaps = {nodes: [ig_gap(network, e, nodes) for e in embedded] for nodes in args.nodes}
    last = gaps[args.nodes[-1]]
    worst = int(np.argmax(last))
    one = embedded[worst][None].clone().requires_grad_(True)
    for _ in range(3):  # warm up
        torch.autograd.grad(lstm_logits(network, one).sum(), one)
    start = time.perf_counter()
    for _ in range(20):
        torch.autograd.grad(lstm_logits(network, one).sum(), one)
    print(json.dumps({
        "reviews": len(texts),
        "gap_by_nodes": {str(n): {"median": round(float(np.median(g)), 4), "max": round(float(max(g)), 4),
                                  f"over_{args.tolerance}": int(sum(x > args.tolerance for x in g))}
                         for n, g in gaps.items()},
        "worst_review_words_read": int(len(embedded[worst])),
        f"worst_review_gap_at_{args.worst_nodes}_nodes": round(ig_gap(network, embedded[worst], args.worst_nodes), 4),
        "forward_backward_ms_batch_1": round((time.perf_counter() - start) / 20 * 1000, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
