"""critic compare: is a candidate model worse than a baseline on labelled reviews?"""
from __future__ import annotations

import tempfile
from pathlib import Path

from critic.errors import UsageError
from model.compare import DEFAULT_MAX_DROP, SHOWN_FLIPS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="two models side by side on labelled reviews; exit 1 if the candidate is worse",
        description="Scores BASELINE and CANDIDATE (model.tar.gz files, model dirs or s3:// URIs) on labelled "
                    "reviews and prints accuracy, ROC AUC, calibration (ECE) and the reviews whose verdict "
                    "flips, with the behavioural suite side by side when the checkout has one (model/suite.py). "
                    "Exits 1 when the candidate's accuracy or ROC AUC is lower by more than --max-drop points.")
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("candidate", metavar="CANDIDATE")
    p.add_argument("--data", required=True, metavar="PATH",
                   help="aclImdb_v1.tar.gz or its folder (its validation split of train/, never test/), or JSON "
                        'Lines: {"review": "...", "label": "positive"|"negative"} per line')
    p.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP, metavar="POINTS",
                   help=f"how many points of accuracy or ROC AUC the candidate may lose (default {DEFAULT_MAX_DROP})")
    p.add_argument("--flips", type=int, default=SHOWN_FLIPS, metavar="N",
                   help=f"flipped reviews shown each way (default {SHOWN_FLIPS})")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=run)


def run(args) -> int:
    from critic.judge import judge, local_artifact
    from model.compare import LabelledDataError, read_labelled, report

    if args.max_drop < 0:
        raise UsageError("--max-drop must be 0 or more points")
    try:
        reviews = read_labelled(args.data)
    except (LabelledDataError, OSError) as error:
        raise UsageError(str(error)) from None
    with tempfile.TemporaryDirectory(prefix="critic-compare-") as work:
        baseline = local_artifact(args.baseline, Path(work) / "baseline")
        candidate = local_artifact(args.candidate, Path(work) / "candidate")
        comparison = judge(baseline, candidate, reviews, args.max_drop, args.workers)
    print(report(comparison, args.baseline, args.candidate, args.flips))
    return 1 if comparison.worse else 0
