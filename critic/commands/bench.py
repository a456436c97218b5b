"""critic bench: throughput and latency of the model on this machine."""
from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path

from contract.reviews import request
from critic.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="reviews/s, single-review latency, cold start and memory")
    p.add_argument("--data", help="aclImdb_v1.tar.gz or its folder (default: download the official one)")
    p.add_argument("--artifact", type=Path, help="model.tar.gz (default: the shipped model)")
    p.add_argument("--limit", type=int, default=0, help="use only this many test reviews (0: all 25,000)")
    p.add_argument("--single", type=int, default=500, help="reviews for the single-review latency")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.set_defaults(func=run)


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run(args) -> int:
    from critic.offline import OfflineScorer, score_reviews, unpack
    from model.data import DataError, load_imdb

    try:
        test = load_imdb(args.data, splits=("test",)).test
    except DataError as error:
        raise UsageError(str(error)) from None
    reviews = [e.text for e in test][: args.limit or None]
    figures: dict = {"reviews": len(reviews)}

    # Cold start and single-review latency, in this process, through the handler.
    import torch

    from model import inference
    from model.preprocess import tokenize

    model_dir, tmp = unpack(args.artifact)
    with tmp:
        started = time.perf_counter()
        scorer = inference.model_fn(str(model_dir))
        figures["model_fn_seconds"] = round(time.perf_counter() - started, 3)
        figures["torch_threads"] = torch.get_num_threads()
        started = time.perf_counter()
        for text in reviews[:2000]:
            tokenize(text)
        figures["preprocess_ms_per_review"] = round((time.perf_counter() - started) / min(2000, len(reviews)) * 1000, 3)
        latencies = []
        for text in reviews[: args.single]:
            body = json.dumps(request(text))
            started = time.perf_counter()
            inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/json"), scorer),
                                "application/json")
            latencies.append((time.perf_counter() - started) * 1000)
        figures["single_review_ms"] = {"p50": round(_percentile(latencies, 50), 2),
                                       "p90": round(_percentile(latencies, 90), 2),
                                       "p99": round(_percentile(latencies, 99), 2)}

    # Throughput of `critic predict` over the test reviews, preprocessing
    # included: start-up (worker processes importing torch and loading the
    # model) apart from steady scoring, as a long batch sees it.
    from critic.offline import CHUNK_LINES

    started = time.perf_counter()
    with OfflineScorer(args.artifact, args.workers) as offline:
        figures["workers"] = offline.workers
        score_reviews(offline, reviews[: CHUNK_LINES * offline.workers * 2], desc="warm-up")
        warm = time.perf_counter()
        score_reviews(offline, reviews, desc="bench")
        seconds = time.perf_counter() - warm
    figures["start_seconds"] = round(warm - started, 2)
    figures["predict_reviews_per_second"] = round(len(reviews) / seconds, 1)
    figures["predict_seconds"] = round(seconds, 2)
    figures["predict_reviews_per_second_with_start"] = round(len(reviews) / (seconds + warm - started), 1)
    figures["peak_rss_mb_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["peak_rss_mb_largest_worker"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)

    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0
