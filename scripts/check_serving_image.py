"""Does the shipped artifact run in the SageMaker serving image as it runs here?

`make check-serving-image` (DATA=aclImdb_v1.tar.gz, or the official tarball
is downloaded). It builds a throwaway venv with the Python and PyTorch of the
inference image `critic deploy` names (critic/deploy/stack.py: today
pytorch-inference:2.6.0-cpu-py312, so Python 3.12 and torch 2.6.0) plus the
SageMaker inference toolkits the image runs, then:

1. loads the artifact's weights with torch.load(weights_only=True) there;
2. serves the artifact from that venv and from the project venv through the
   local stack's model container (critic/local/container.py: the toolkit's own
   HandlerService, the artifact's code/ first on the path), sends both the
   same IMDB test reviews as JSON Lines, and compares every answer.

It passes when every label agrees and no score differs by more than
--tolerance (two PyTorch builds may round the last float bit apart).
Not part of `make test`: the venv alone is 1 to 5 GB.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from critic import SHIPPED_ARTIFACT  # noqa: E402
from critic.local.container import ModelContainer  # noqa: E402
from critic.deploy.stack import INFERENCE_IMAGE  # noqa: E402

JSONLINES = "application/jsonlines"


def image_versions(image: str = INFERENCE_IMAGE) -> tuple[str, str]:
    """('2.6.0', '3.12') from 'pytorch-inference:2.6.0-cpu-py312'."""
    match = re.fullmatch(r"pytorch-inference:(\d+\.\d+\.\d+)-\w+-py3(\d+)", image)
    if not match:
        raise SystemExit(f"cannot read PyTorch and Python versions from {image!r}")
    return match.group(1), f"3.{match.group(2)}"


def toolkit_pins() -> list[str]:
    pins = (REPO / "requirements" / "constraints.txt").read_text().split()
    wanted = ("sagemaker_inference==", "sagemaker-inference==", "sagemaker_pytorch_inference==",
              "sagemaker-pytorch-inference==")
    return [p for p in pins if p.lower().startswith(wanted)]


def build_venv(venv: Path, python: str, torch_version: str, python_version: str, torch_index: str | None) -> Path:
    bin_python = venv / "bin" / "python"
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    found = subprocess.run([str(bin_python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    if found != python_version:
        raise SystemExit(f"{python} is Python {found}; the serving image runs {python_version} "
                         f"(make check-serving-image SERVING_PYTHON=python{python_version})")
    pip = [str(bin_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    print(f"installing torch=={torch_version} and the inference toolkits into {venv}", file=sys.stderr)
    if torch_index:
        subprocess.run([*pip, "--index-url", torch_index, f"torch=={torch_version}"], check=True)
    # The toolkits import pkg_resources, which setuptools 81 removed.
    subprocess.run([*pip, f"torch=={torch_version}", "setuptools<81", *toolkit_pins()], check=True)
    return bin_python


def check_weights_only(python: Path, artifact: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(artifact) as tar:
            tar.extract("model.pt", tmp, filter="data")
        code = ("import sys, torch; s = torch.load(sys.argv[1], weights_only=True); "
                "print(f'torch {torch.__version__}, Python {sys.version.split()[0]}: {len(s)} tensors')")
        return subprocess.run([str(python), "-c", code, str(Path(tmp) / "model.pt")],
                              capture_output=True, text=True, check=True).stdout.strip()


def compare(reference: list[dict], image: list[dict]) -> dict:
    assert len(reference) == len(image)
    labels = sum(a.get("label") != b.get("label") for a, b in zip(reference, image))
    errors = sum(("error" in a) != ("error" in b) for a, b in zip(reference, image))
    deltas = [abs(a["score"] - b["score"]) for a, b in zip(reference, image) if "score" in a and "score" in b]
    return {"reviews": len(reference), "identical_answers": sum(a == b for a, b in zip(reference, image)),
            "label_disagreements": labels, "error_disagreements": errors,
            "max_score_difference": max(deltas, default=0.0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="python3.12", help="an interpreter of the image's Python version")
    parser.add_argument("--venv", type=Path, default=REPO / ".tools" / "serving-image")
    parser.add_argument("--torch-index", help="pip index for torch (e.g. PyTorch's CPU-only wheels)")
    parser.add_argument("--data", help="aclImdb_v1.tar.gz or its folder (default: download the official one)")
    parser.add_argument("--artifact", type=Path, default=SHIPPED_ARTIFACT)
    parser.add_argument("--limit", type=int, default=3000, help="IMDB test reviews to compare")
    parser.add_argument("--batch", type=int, default=250, help="reviews per request")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args(argv)

    from model.data import load_imdb
    from model.progress import progress

    torch_version, python_version = image_versions()
    python = build_venv(args.venv, args.python, torch_version, python_version, args.torch_index)
    print(f"weights_only load: {check_weights_only(python, args.artifact)}", file=sys.stderr)

    test = load_imdb(args.data, splits=("test",)).test
    # Every other review positive and negative alike: test/ is sorted by label.
    step = max(1, len(test) // args.limit)
    reviews = [e.text for e in test[::step]][: args.limit]
    reference, image = [], []
    with ModelContainer(args.artifact, workers=1) as here, \
            ModelContainer(args.artifact, workers=1, python=str(python)) as there:
        for start in progress(range(0, len(reviews), args.batch), desc="comparing", unit=" requests",
                              file=sys.stderr):
            body = "".join(json.dumps({"review": r}) + "\n" for r in reviews[start:start + args.batch]).encode()
            for answers, container in ((reference, here), (image, there)):
                result = container.invoke(body, JSONLINES, JSONLINES)
                if result.status != 200:
                    raise SystemExit(f"the {'image' if container is there else 'local'} container answered "
                                     f"{result.status}: {result.body[:300]!r}")
                answers += [json.loads(line) for line in result.body.decode().splitlines()]
    figures = compare(reference, image)
    figures.update(image=INFERENCE_IMAGE, torch=torch_version, python=python_version)
    print(json.dumps(figures, indent=2))
    ok = (figures["label_disagreements"] == 0 and figures["error_disagreements"] == 0
          and figures["max_score_difference"] <= args.tolerance)
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
