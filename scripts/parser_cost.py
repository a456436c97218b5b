#!/usr/bin/env python3
"""What Powertools' parser (pydantic models) would add to a Lambda cold start:
the import time of the realtime and completion handler modules as they are,
and with the parser's models for their events declared as Powertools'
examples do (the parser, its event model, one BaseModel of the body or detail,
one parse), each in a fresh interpreter (as a cold start runs it).

The two variants alternate, so a busy machine slows both alike. Prints JSON:
per handler and variant, the median and the quartiles of --runs runs, in ms,
the median difference, and the parser's part of the second variant (timed
inside the process, after the handler's own imports: the steadiest figure). contract/reviews.py's docstring quotes the result:
the reason the shapes are TypedDicts.

Usage: .venv/bin/python scripts/parser_cost.py [--runs 15]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "ENDPOINT_NAME": "critic-endpoint", "OUTPUT_BUCKET": "critic-output", "JOB_NAME_PREFIX": "critic",
    "POWERTOOLS_METRICS_NAMESPACE": "Critic", "PYTHONPATH": str(REPO),
}

HANDLERS = {
    "functions.realtime.app": """
from aws_lambda_powertools.utilities.parser import BaseModel, parse
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

class ReviewRequest(BaseModel):
    review: str

parse(event={"review": "A fine film."}, model=ReviewRequest)
""",
    "functions.completion.app": """
from aws_lambda_powertools.utilities.parser import BaseModel, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

class TransformJobDetail(BaseModel):
    TransformJobName: str
    TransformJobStatus: str

parse(event={"TransformJobName": "critic-x", "TransformJobStatus": "Completed"}, model=TransformJobDetail)
""",
}

PROGRAM = """
import time
start = time.perf_counter()
import {module}
imported = time.perf_counter()
{parser}
end = time.perf_counter()
print((end - start) * 1000, (end - imported) * 1000)
"""


def import_ms(module: str, parser: str) -> tuple[float, float]:
    """Milliseconds to import the handler module (and the parser, if given),
    and of those the parser's part, in a fresh interpreter."""
    environment = {**os.environ, **ENVIRONMENT, "POWERTOOLS_SERVICE_NAME": module}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        environment.pop(name, None)
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(module=module, parser=parser)], env=environment,
                         capture_output=True, text=True, check=True, cwd=REPO)
    total, parser_part = map(float, out.stdout.split())
    return total, parser_part


def summary(values: list[float]) -> dict:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return {"median_ms": round(median, 1), "q1_ms": round(q1, 1), "q3_ms": round(q3, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    report = {}
    for module, parser_code in HANDLERS.items():
        plain, parsed, parser_parts = [], [], []
        import_ms(module, parser_code)  # the first run reads the files from disk
        for _ in range(args.runs):
            plain.append(import_ms(module, "")[0])
            total, parser_part = import_ms(module, parser_code)
            parsed.append(total)
            parser_parts.append(parser_part)
        report[module] = {
            "as_is": summary(plain),
            "with_parser": summary(parsed),
            "median_difference_ms": round(statistics.median(b - a for a, b in zip(plain, parsed)), 1),
            "parser_part": summary(parser_parts),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
