"""Scoring two model artifacts on one labelled set and comparing them
(model/compare.py judges): `critic compare` and `critic deploy`'s check."""
from __future__ import annotations

from pathlib import Path

from critic.errors import UsageError
from critic.offline import OfflineScorer, score_reviews
from model.checkset import LabelledReviews
from model.compare import DEFAULT_MAX_DROP, Comparison, compare, suite_cases, suite_side_by_side


def local_artifact(source: str, workdir: Path, s3=None) -> Path:
    """A model.tar.gz on disk from a file, a model dir or an s3:// URI, checked to be a Critic artifact."""
    from critic.deploy import artifact as artifacts

    workdir.mkdir(parents=True, exist_ok=True)
    if source.startswith("s3://"):
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        return artifacts.download(s3, source, workdir)
    return artifacts.local(Path(source), workdir)


def _scores(artifact: Path, name: str, texts: list[str], suite_texts: list[str], workers: int):
    try:
        with OfflineScorer(artifact, workers) as scorer:
            return (score_reviews(scorer, texts, desc=f"scoring ({name})"),
                    score_reviews(scorer, suite_texts, desc=f"suite ({name})") if suite_texts else [])
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    except UsageError as error:  # the model cannot be loaded: say which one
        raise UsageError(f"{name} ({artifact}): {error}") from None


def judge(baseline: Path, candidate: Path, reviews: LabelledReviews, max_drop: float = DEFAULT_MAX_DROP,
          workers: int = 1) -> Comparison:
    """Both models score the reviews, and the behavioural suite if this checkout has one."""
    cases = suite_cases()
    suite_texts = [case.text for case in cases] if cases else []
    base, base_suite = _scores(baseline, "baseline", reviews.texts, suite_texts, workers)
    cand, cand_suite = _scores(candidate, "candidate", reviews.texts, suite_texts, workers)
    comparison = compare(reviews, base, cand, max_drop)
    if cases:
        comparison.suite = suite_side_by_side(cases, base_suite, cand_suite)
    return comparison
