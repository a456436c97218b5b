#!/usr/bin/env python3
"""The part of a cold start that Critic controls, measured from nothing.

On AWS a cold serverless endpoint starts the PyTorch serving image, its model
server, and then the toolkit's handler, which loads the model (model_fn).
The image and the model server are AWS's; what the project controls is the
artifact (its size: what SageMaker downloads and unpacks) and what happens
from the toolkit's start to a loaded model. This prints, as JSON:

- the artifact's size, packed and unpacked;
- `worker_ready_s`: a fresh process, spawned as critic/local/container.py spawns a
  model worker (Python, torch, the SageMaker inference toolkit's
  HandlerService, model_fn), until it writes its ready frame;
- `first_answer_s`: from then until its first answer (a warm-up, if any);
- in another fresh process: `import_torch_s`, `import_inference_s` (the
  artifact's code/inference.py) and `model_fn_s` (model_fn alone).

Each figure is the median of --runs runs (all runs are listed too). The first
run may read the files from disk; later ones find them in the page cache.

Usage: .venv/bin/python scripts/cold_start.py [--artifact model.tar.gz] [--runs 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from critic import SHIPPED_ARTIFACT  # noqa: E402
from critic.local.container import _Worker  # noqa: E402
from model.package import extract  # noqa: E402

# Run in a fresh interpreter, with only the artifact's code/ on the path (as in
# the serving image): the figures must not include this process's imports.
MODEL_FN = r"""
import json, sys, time
start = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[2]))
torch_done = time.perf_counter()
import inference
imported = time.perf_counter()
inference.model_fn(sys.argv[1])
loaded = time.perf_counter()
print(json.dumps({"import_torch_s": torch_done - start, "import_inference_s": imported - torch_done,
                  "model_fn_s": loaded - imported}))
"""


def sizes(artifact: Path) -> dict:
    with tarfile.open(artifact) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
    largest = sorted(members, key=lambda m: m.size, reverse=True)[:3]
    return {"artifact": str(artifact), "packed_bytes": artifact.stat().st_size,
            "unpacked_bytes": sum(m.size for m in members), "files": len(members),
            "largest": {m.name: m.size for m in largest}}


def worker_run(model_dir: Path, threads: int) -> dict:
    start = time.perf_counter()
    worker = _Worker(model_dir, threads, startup_timeout=300, python=sys.executable)
    ready = time.perf_counter()
    try:
        result = worker.invoke(b'{"review": "A wonderful, moving film."}', "application/json", "application/json")
        answered = time.perf_counter()
        assert result.status == 200, result.body
    finally:
        worker.close()
    return {"worker_ready_s": ready - start, "first_answer_s": answered - ready}


def model_fn_run(model_dir: Path, threads: int) -> dict:
    env = {"PYTHONPATH": str(model_dir / "code"), "OMP_NUM_THREADS": str(threads), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", MODEL_FN, str(model_dir), str(threads)], cwd=model_dir, env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=SHIPPED_ARTIFACT)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker (the local stack: cores / 2 workers; default: %(default)s)")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="critic-cold-") as tmp:
        model_dir = extract(args.artifact, Path(tmp))
        for _ in range(args.runs):
            runs.append({**worker_run(model_dir, args.threads), **model_fn_run(model_dir, args.threads)})
    medians = {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}
    print(json.dumps({**sizes(args.artifact), "runs": args.runs, "threads": args.threads, "median": medians,
                      "all": [{k: round(v, 3) for k, v in run.items()} for run in runs]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
