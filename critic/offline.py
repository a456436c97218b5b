"""Scoring files on this machine, with no server: the SageMaker handler's own
input_fn/predict_fn/output_fn over chunks of lines, in worker processes.

Used by `critic predict`, `critic evaluate` and `critic bench`."""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

from contract.reviews import SCORE, request
from critic import SHIPPED_ARTIFACT
from critic.errors import UsageError

CHUNK_LINES = 512
_scorer = None
_load_error: Exception | None = None


def unpack(artifact: str | Path | None) -> tuple[Path, tempfile.TemporaryDirectory]:
    from model.package import extract

    artifact = Path(artifact or SHIPPED_ARTIFACT)
    if not artifact.is_file():
        raise FileNotFoundError(f"{artifact}: no such model artifact (train one with `critic train`)")
    tmp = tempfile.TemporaryDirectory(prefix="critic-model-")
    return extract(artifact, Path(tmp.name)), tmp


def _load(model_dir: str, threads: int) -> None:
    global _scorer
    try:
        import torch

        from model.inference import model_fn

        torch.set_num_threads(threads)
        _scorer = model_fn(model_dir)
    except Exception as error:  # noqa: BLE001 - any failure to load is the user's to see, in one line
        raise UsageError(f"the model cannot be loaded: {type(error).__name__}: {error}") from None


def _init_worker(model_dir: str, threads: int) -> None:
    # A pool respawns a worker whose initializer raised, forever: keep the
    # error instead, and fail the first chunk with it.
    global _load_error
    try:
        _load(model_dir, threads)
    except UsageError as error:
        _load_error = error


def _score_chunk(job: tuple[bytes, str]) -> str:
    from model.inference import JSONLINES, input_fn, output_fn, predict_fn

    if _load_error is not None:
        raise _load_error
    body, content_type = job
    return output_fn(predict_fn(input_fn(body, content_type), _scorer), JSONLINES)[0]


def chunks(lines: Iterable[bytes], size: int = CHUNK_LINES) -> Iterator[bytes]:
    lines = iter(lines)
    while chunk := list(islice(lines, size)):
        yield b"".join(line if line.endswith(b"\n") else line + b"\n" for line in chunk)


class OfflineScorer:
    """`score(chunks, content_type)` -> JSON-lines results, in order."""

    def __init__(self, artifact: str | Path | None = None, workers: int = 0):
        self.model_dir, self._tmp = unpack(artifact)
        self.workers = workers or os.cpu_count() or 1
        if self.workers == 1:
            _load(str(self.model_dir), os.cpu_count() or 1)
            self._pool = None
        else:
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self.workers, _init_worker, (str(self.model_dir), 1))

    def score(self, chunked: Iterable[bytes], content_type: str) -> Iterator[str]:
        jobs = ((chunk, content_type) for chunk in chunked)
        if self._pool is None:
            yield from map(_score_chunk, jobs)
        else:
            yield from self._pool.imap(_score_chunk, jobs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def score_reviews(scorer: OfflineScorer, reviews: list[str], desc: str = "scoring") -> list[float]:
    """P(positive) of each review, in order (0.5 for one that cannot be scored)."""
    from model.progress import progress  # tqdm: the serve group, checked before a command runs

    lines = (json.dumps(request(r)).encode() for r in progress(reviews, desc=desc, unit=" reviews", file=sys.stderr))
    scores = []
    for block in scorer.score(chunks(lines), "application/jsonlines"):
        scores += [json.loads(line).get(SCORE, 0.5) for line in block.splitlines()]
    return scores
