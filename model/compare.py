"""Two models judged side by side on one labelled set: is the candidate worse
than the baseline? Plain Python over scores; critic/judge.py does the scoring.

The candidate is worse when its accuracy or its ROC AUC is lower than the
baseline's by more than `max_drop` points (hundredths). Calibration (ECE) and
the reviews whose verdict flips are shown, not judged: they say why."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from contract.jsonreader import JSONInputError, loads
from contract.reviews import LABEL, NEGATIVE, POSITIVE, REVIEW, THRESHOLD
from model.checkset import FRACTION, SEED, LabelledReviews
from model.report import binary_metrics

DEFAULT_MAX_DROP = 0.5  # points of accuracy or ROC AUC
JUDGED = ("accuracy", "roc_auc")
SHOWN_FLIPS = 10
EXCERPT = 90


class LabelledDataError(ValueError):
    """The labelled data cannot be read: the message names the line or the file."""


def read_jsonl(path: Path) -> LabelledReviews:
    """One {"review": ..., "label": "positive"|"negative"} per line; blank lines skipped."""
    texts, labels, names = [], [], []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except JSONInputError as error:
            raise LabelledDataError(f"{path} line {number}: {error}") from None
        if not isinstance(record, dict) or not isinstance(record.get(REVIEW), str) \
                or record.get(LABEL) not in (POSITIVE, NEGATIVE):
            raise LabelledDataError(f'{path} line {number}: expected {{"{REVIEW}": "...", "{LABEL}": '
                                    f'"{POSITIVE}"|"{NEGATIVE}"}}')
        texts.append(record[REVIEW])
        labels.append(int(record[LABEL] == POSITIVE))
        names.append(f"line {number}")
    if len(set(labels)) < 2:
        raise LabelledDataError(f"{path}: needs positive and negative reviews (it has {len(labels)} of one kind)")
    return LabelledReviews(texts, labels, names, str(path))


def read_labelled(data: str | Path) -> LabelledReviews:
    """A JSON Lines file, or IMDB (tarball or folder): its validation split of
    train/, by movie, as model/train.py holds it out (never test/)."""
    from model.data import DataError, load_imdb, validation_split

    data = Path(data)
    if data.is_file() and data.suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(data)
    try:
        _, valid = validation_split(load_imdb(data, splits=("train",)).train, FRACTION, SEED)
    except DataError as error:
        raise LabelledDataError(str(error)) from None
    return LabelledReviews([r.text for r in valid], [r.label for r in valid],
                           [f"validation review {i + 1} (movie {r.movie})" for i, r in enumerate(valid)],
                           f"{data.name}: the validation split of train/ ({len(valid)} reviews)")


@dataclass(frozen=True)
class Flip:
    name: str
    label: int
    baseline: float
    candidate: float
    text: str

    @property
    def now_right(self) -> bool:
        return (self.candidate >= THRESHOLD) == bool(self.label)


@dataclass
class Comparison:
    reviews: LabelledReviews
    baseline: dict
    candidate: dict
    flips: list[Flip]
    max_drop: float
    suite: list[tuple[str, float, float]] | None = None  # (capability, baseline pass rate, candidate's)
    drops: dict[str, float] = field(default_factory=dict)  # points lost, per judged metric

    @property
    def worse(self) -> list[str]:
        """Why the candidate is refused (empty: it is not worse)."""
        return [f"{name.replace('_', ' ')} {self.baseline[name] * 100:.2f} -> {self.candidate[name] * 100:.2f} "
                f"(down {drop:.2f} points, more than {self.max_drop:g})"
                for name, drop in self.drops.items() if drop > self.max_drop]


def compare(reviews: LabelledReviews, baseline_scores: list[float], candidate_scores: list[float],
            max_drop: float = DEFAULT_MAX_DROP) -> Comparison:
    baseline = binary_metrics(reviews.labels, baseline_scores)
    candidate = binary_metrics(reviews.labels, candidate_scores)
    flips = [Flip(name, label, b, c, text)
             for name, label, b, c, text in zip(reviews.names, reviews.labels, baseline_scores, candidate_scores,
                                                 reviews.texts)
             if (b >= THRESHOLD) != (c >= THRESHOLD)]
    drops = {name: (baseline[name] - candidate[name]) * 100 for name in JUDGED
             if baseline[name] is not None and candidate[name] is not None}
    return Comparison(reviews, baseline, candidate, flips, max_drop, drops=drops)


def suite_cases() -> list | None:
    """The behavioural suite's cases (model/suite.py), or None when this checkout has no suite."""
    if importlib.util.find_spec("model.suite") is None:
        return None
    from model import suite

    return suite.cases()


def suite_side_by_side(cases: list, baseline_scores: list[float],
                       candidate_scores: list[float]) -> list[tuple[str, float, float]]:
    """Pass rate per capability (and the total) of both models on the suite."""
    from model import suite

    before, after = (suite.pass_rates(cases, scores) for scores in (baseline_scores, candidate_scores))
    rows = [(name, row["pass_rate"], after["capabilities"][name]["pass_rate"])
            for name, row in before["capabilities"].items()]
    return rows + [("total", before["total"]["pass_rate"], after["total"]["pass_rate"])]


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def report(comparison: Comparison, baseline_name: str, candidate_name: str, shown_flips: int = SHOWN_FLIPS) -> str:
    b, c = comparison.baseline, comparison.candidate
    width = 10
    lines = [f"On {comparison.reviews.source}:",
             f"  baseline   {baseline_name}", f"  candidate  {candidate_name}",
             f"  {'':<10}{'baseline':>{width}}  {'candidate':>{width}}  change"]

    def row(label: str, name: str, scale: float, digits: int, unit: str, note: str = "") -> None:
        before, after = b[name], c[name]
        if before is None or after is None:
            return
        lines.append(f"  {label:<10}{before * scale:>{width}.{digits}f}  {after * scale:>{width}.{digits}f}  "
                     f"{(after - before) * scale:+.{digits}f}{unit}{note}")

    row("accuracy", "accuracy", 100, 2, " points")
    row("ROC AUC", "roc_auc", 100, 2, " points")
    row("ECE", "ece", 1, 4, "", " (calibration error: lower is better)")
    right = [f for f in comparison.flips if f.now_right]
    wrong = [f for f in comparison.flips if not f.now_right]
    lines.append(f"  verdicts flipped: {len(comparison.flips)} of {b['reviews']} "
                 f"({len(right)} now right, {len(wrong)} now wrong)")
    for title, flips in (("now wrong", wrong), ("now right", right)):
        for flip in flips[:shown_flips]:
            label = POSITIVE if flip.label else NEGATIVE
            lines.append(f"    {title}: {flip.name} ({label}) {flip.baseline:.3f} -> {flip.candidate:.3f}  "
                         f"{_excerpt(flip.text)!r}")
        if len(flips) > shown_flips:
            lines.append(f"    … and {len(flips) - shown_flips} more {title}")
    if comparison.suite is not None:
        lines.append("  behavioural suite (model/suite.py), pass rate per capability (shown, not judged):")
        for name, before, after in comparison.suite:
            lines.append(f"    {name:<28}{before * 100:>7.1f} %  {after * 100:>7.1f} %  {(after - before) * 100:+.1f}")
    else:
        lines.append("  behavioural suite: none in this checkout (model/suite.py): not run")
    reasons = comparison.worse
    if reasons:
        lines.append("WORSE: " + "; ".join(reasons))
    else:
        lines.append(f"not worse: no judged metric ({', '.join(JUDGED)}) down by more than {comparison.max_drop:g} points")
    return "\n".join(lines)
