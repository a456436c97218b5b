"""critic predict: score reviews offline, one JSON line out per line in."""
from __future__ import annotations

import sys
from pathlib import Path

from contract.jsonreader import JSONInputError, loads as read_json

from critic.errors import UsageError
from critic.offline import CHUNK_LINES, OfflineScorer, chunks


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="score reviews offline (one per line: plain text or JSON Lines)",
        description="Reads reviews one per line from FILEs (or stdin): plain text, or JSON Lines "
                    'with a "review" field. Writes one JSON line per input line, in order: '
                    '{"label": "positive"|"negative", "score": P(positive)} or {"error": "..."}.')
    p.add_argument("files", nargs="*", type=Path, metavar="FILE")
    p.add_argument("--artifact", type=Path, help="model.tar.gz (default: the shipped model)")
    p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto",
                   help="auto: JSON Lines if the first line is a JSON object, else text")
    p.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    p.set_defaults(func=run)


def sniff(first_line: bytes) -> str:
    """JSON Lines if the first line is a JSON object, or looks like one
    ({"...) that the JSON reader refuses (it then answers with an error line,
    rather than scoring the whole file's JSON as review text)."""
    try:
        return "application/jsonlines" if isinstance(read_json(first_line), dict) else "text/plain"
    except JSONInputError:
        opening = first_line.removeprefix(b"\xef\xbb\xbf").lstrip()
        return "application/jsonlines" if opening.startswith(b'{"') else "text/plain"


def _sources(args):
    if not args.files:
        yield sys.stdin.buffer
        return
    for path in args.files:
        with open(path, "rb") as f:
            yield f


def run(args) -> int:
    from model.progress import progress  # tqdm: the serve group, checked before run

    for path in args.files:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    try:
        scorer = OfflineScorer(args.artifact, args.workers)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    out = sys.stdout
    with scorer:
        for source in _sources(args):
            lines = iter(source)
            first = next(lines, None)
            if first is None:
                continue
            content_type = {"text": "text/plain", "jsonl": "application/jsonlines"}.get(args.format) or sniff(first)
            reviews = progress(_prepend(first, lines), desc="scoring", unit=" reviews", file=sys.stderr, miniters=CHUNK_LINES)
            for result in scorer.score(chunks(reviews), content_type):
                out.write(result)
            out.flush()
    return 0


def _prepend(first, rest):
    yield first
    yield from rest
