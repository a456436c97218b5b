import io
import json
import subprocess
import sys


from tiny_imdb import TINY_TRAINING_ARGS

POSITIVE, NEGATIVE = "A wonderful, moving film: the best cast", "An awful, boring mess. The worst plot"


def critic(*args, stdin: str | None = None, check=True):
    result = subprocess.run([sys.executable, "-m", "critic", *map(str, args)], input=stdin,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_predict_text_from_stdin_one_line_out_per_line_in(tiny_artifact):
    out = critic("predict", "--artifact", tiny_artifact, "--workers", "1",
                 stdin=f"{POSITIVE}\n\n{NEGATIVE}\n").stdout.splitlines()
    results = [json.loads(line) for line in out]
    assert [r.get("label") or r.get("error") for r in results] == ["positive", "review is empty", "negative"]
    assert results[0]["score"] > 0.5 > results[2]["score"]


def test_predict_jsonl_files_in_order_with_two_workers(tiny_artifact, tmp_path):
    reviews = [POSITIVE if i % 3 else NEGATIVE for i in range(1500)]  # several chunks
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"review": r}) + "\n" for r in reviews) + '{"broken\n')
    out = critic("predict", "--artifact", tiny_artifact, "--workers", "2", path).stdout.splitlines()
    assert len(out) == len(reviews) + 1
    labels = [json.loads(line).get("label") for line in out[:-1]]
    assert labels == ["positive" if i % 3 else "negative" for i in range(1500)]
    assert "invalid JSON" in json.loads(out[-1])["error"]


def test_predict_jsonl_parser_bombs_are_errors_of_their_own_line(tiny_artifact, tmp_path):
    """Even as the first line (which decides the format), a JSON object the
    reader refuses is answered on its line, not scored as text."""
    path = tmp_path / "bombs.jsonl"
    path.write_bytes(b'{"review": "great", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
                     + json.dumps({"review": POSITIVE}).encode() + b"\n"
                     + b'{"review": "ok", "n": ' + b"9" * 5_000 + b"}\n"
                     + b'{"review": "bad", "review": "wonderful film"}\n')
    out = [json.loads(line) for line in critic("predict", "--artifact", tiny_artifact, "--workers", "1",
                                               path).stdout.splitlines()]
    assert [r.get("label") or r["error"] for r in out] == [
        "invalid JSON: nested deeper than 64 levels", "positive",
        "invalid JSON: a number longer than 100 characters", 'invalid JSON: duplicate key "review"']


def test_predict_missing_file_or_artifact_is_a_clear_error(tiny_artifact, tmp_path):
    missing = critic("predict", "--artifact", tiny_artifact, tmp_path / "nope.txt", check=False)
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    no_model = critic("predict", "--artifact", tmp_path / "model.tar.gz", stdin="x\n", check=False)
    assert no_model.returncode == 2 and "no such model artifact" in no_model.stderr


def test_predict_with_a_model_that_cannot_load_fails_once_with_its_reason(tiny_artifact, tmp_path):
    """A worker pool respawns a worker whose start-up raised, forever: the
    error must reach the user once, with every worker count, never a hang."""
    import tarfile

    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(tiny_artifact) as source, tarfile.open(broken, "w:gz") as target:
        for member in source:
            if member.name == "model.pt":
                data = b"not a state dict"
                member.size = len(data)
                target.addfile(member, io.BytesIO(data))
            else:
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    for workers in ("1", "2"):
        result = critic("predict", "--artifact", broken, "--workers", workers, stdin=f"{POSITIVE}\n", check=False)
        assert result.returncode == 2, (workers, result.stderr[-2000:])
        assert "the model cannot be loaded" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_reports_metrics_and_confusion_picture(tiny_artifact, tiny_imdb_tarball, tmp_path):
    out = critic("evaluate", "--data", tiny_imdb_tarball, "--artifact", tiny_artifact, "--out", tmp_path,
                 "--workers", "1").stdout
    metrics = json.loads((tmp_path / "evaluation.json").read_text())
    assert metrics["reviews"] == 300 and metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.9
    assert sum(map(sum, metrics["confusion_matrix"])) == 300
    assert (tmp_path / "confusion.png").read_bytes().startswith(b"\x89PNG")
    assert "accuracy" in out


def test_train_command_packages_an_artifact(tiny_imdb_tarball, tmp_path):
    critic("train", "--out", tmp_path / "run", "--data", tiny_imdb_tarball, *TINY_TRAINING_ARGS[:2])
    assert (tmp_path / "run" / "model.tar.gz").is_file()
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_train_with_a_bad_data_path_is_a_clear_error(tmp_path):
    result = critic("train", "--out", tmp_path / "run", "--data", tmp_path / "nope.tar.gz", check=False)
    assert result.returncode == 2 and "no such file" in result.stderr and "Traceback" not in result.stderr


def test_bench_prints_figures(tiny_artifact, tiny_imdb_tarball, tmp_path):
    critic("bench", "--data", tiny_imdb_tarball, "--artifact", tiny_artifact, "--single", "20",
           "--workers", "1", "--json", tmp_path / "bench.json")
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert figures["reviews"] == 300 and figures["predict_reviews_per_second"] > 0
    assert figures["single_review_ms"]["p50"] > 0 and figures["model_fn_seconds"] > 0
