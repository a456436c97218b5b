"""The inference artifact needs nothing AWS's PyTorch inference image lacks,
and `python -m model.package refresh` rewrites its code without touching the model."""
import ast
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile

from model.package import SERVING_FILES, extract, package, refresh

from tiny_imdb import REPO_ROOT

# What the SageMaker PyTorch serving image has besides the standard library
# (Python 3.12, torch 2.6); "model", "contract" and "inference" are code/'s own modules.
IMAGE_PACKAGES = {"torch", "numpy", "sagemaker_inference"}
OWN_MODULES = {"model", "inference", "contract"}
CONTRACT_FILES = sorted(p.name for p in (REPO_ROOT / "contract").glob("*.py"))
REVIEWS = ["A wonderful, moving film.", "An awful, boring mess.", "Great<br /><br />film &amp; <b>superb</b> cast",
           "<i>Awful</i> &#8211; a waste <!-- of time -->"]


def _code_imports(code_dir) -> dict[str, set[str]]:
    """Top-level modules each file under code/ imports (relative imports are its own)."""
    imports = {}
    for path in sorted(code_dir.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
        imports[str(path.relative_to(code_dir))] = names
    return imports


def test_artifact_code_has_no_requirements_and_imports_only_what_the_image_has(tiny_artifact, tmp_path):
    model_dir = extract(tiny_artifact, tmp_path / "model")
    assert not (model_dir / "code" / "requirements.txt").exists()  # the container would pip-install it at start
    imports = _code_imports(model_dir / "code")
    assert set(imports) == {"inference.py", *(f"model/{name}" for name in SERVING_FILES),
                            *(f"contract/{name}" for name in CONTRACT_FILES)}
    allowed = set(sys.stdlib_module_names) | IMAGE_PACKAGES | OWN_MODULES
    assert {file: names - allowed for file, names in imports.items() if names - allowed} == {}


# Run in a fresh, isolated interpreter: code/ first on the path, and bs4 (the
# one package the code used to need) made unimportable.
LOAD_WITHOUT_BS4 = """
import importlib, importlib.abc, json, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("bs4", "soupsieve"):
            raise ImportError(f"{name} is not in the serving image")
sys.meta_path.insert(0, Blocker())
sys.path.insert(0, "code")
import inference
for name in %(modules)r:
    importlib.import_module(name)
model = inference.model_fn(".")
body = "\\n".join(%(reviews)r).encode()
print(inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/plain"), model), "application/jsonlines")[0])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("bs4", "model"))))
"""


def test_artifact_code_loads_and_scores_without_bs4(tiny_artifact, tmp_path):
    model_dir = extract(tiny_artifact, tmp_path / "model")
    script = LOAD_WITHOUT_BS4 % {"modules": [f"model.{n[:-3]}" for n in SERVING_FILES if n != "__init__.py"],
                                 "reviews": REVIEWS}
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd=model_dir, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    *scores, modules = [line for line in result.stdout.splitlines() if line]
    assert [json.loads(line)["label"] for line in scores] == ["positive", "negative", "positive", "negative"]
    assert not [m for m in json.loads(modules) if m.startswith("bs4")]


def _sha256(tar: tarfile.TarFile, name: str) -> str:
    return hashlib.sha256(tar.extractfile(name).read()).hexdigest()


def test_refresh_rewrites_code_and_keeps_the_model_byte_for_byte(tiny_artifact, tmp_path):
    # An artifact as packaged before: a requirements.txt, and code that is not today's.
    old_dir = extract(tiny_artifact, tmp_path / "old")
    (old_dir / "code" / "requirements.txt").write_text("beautifulsoup4>=4.12,<5\n")
    (old_dir / "code" / "model" / "preprocess.py").write_text("from bs4 import BeautifulSoup\n")
    artifact = package(old_dir, tmp_path / "model.tar.gz")
    with tarfile.open(artifact) as tar:
        kept = {name: _sha256(tar, name) for name in ("model.pt", "vocab.json", "config.json")}

    result = subprocess.run([sys.executable, "-m", "model.package", "refresh", str(artifact)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "removed code/requirements.txt" in result.stdout

    with tarfile.open(artifact) as tar:
        assert {name: _sha256(tar, name) for name in kept} == kept
        code = {m.name: tar.extractfile(m).read() for m in tar if m.isfile() and m.name.startswith("code/")}
    assert code == {"code/inference.py": (REPO_ROOT / "model" / "inference.py").read_bytes(),
                    **{f"code/model/{n}": (REPO_ROOT / "model" / n).read_bytes() for n in SERVING_FILES},
                    **{f"code/contract/{n}": (REPO_ROOT / "contract" / n).read_bytes() for n in CONTRACT_FILES}}
    assert not list(tmp_path.glob("*.tmp"))  # replaced atomically, nothing left behind


def test_refreshed_artifact_scores_as_the_original(tiny_artifact, tmp_path):
    from model import inference

    copy = refresh(shutil.copyfile(tiny_artifact, tmp_path / "model.tar.gz"))
    scores = []
    for name, artifact in (("before", tiny_artifact), ("after", copy)):
        model = inference.model_fn(str(extract(artifact, tmp_path / name)))
        body = "\n".join(REVIEWS).encode()
        scores.append(inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/plain"), model),
                                          "application/jsonlines")[0])
    assert scores[0] == scores[1]


def test_refresh_refuses_what_is_not_an_artifact(tmp_path):
    missing = subprocess.run([sys.executable, "-m", "model.package", "refresh", str(tmp_path / "none.tar.gz")],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr
