"""The packaged inference.py, served by the SageMaker inference toolkit's own
handler service (sagemaker-pytorch-inference), for every content type."""
import csv
import io
import json
import subprocess
import sys

import pytest

from critic.local.container import ModelContainer
from model.package import extract

POSITIVE, NEGATIVE = "A wonderful, moving film: the best cast", "An awful, boring mess. The worst plot"


@pytest.fixture(scope="module")
def container(tiny_artifact):
    with ModelContainer(tiny_artifact, workers=1) as c:
        yield c


def _jsonlines(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode().splitlines()]


def test_realtime_json(container):
    r = container.invoke(json.dumps({"review": POSITIVE}).encode(), "application/json", "application/json")
    assert r.status == 200 and r.content_type == "application/json"
    body = json.loads(r.body)
    assert body["label"] == "positive" and 0.5 < body["score"] <= 1


def test_realtime_plain_text(container):
    r = container.invoke(NEGATIVE.encode(), "text/plain", "application/json")
    assert r.status == 200
    [body] = _jsonlines(r.body)
    assert body["label"] == "negative" and body["score"] < 0.5


def test_text_lines_one_result_per_record_in_order_with_errors_in_place(container):
    body = f"{POSITIVE}\n\n{NEGATIVE}\r\nbad \xff bytes\n{POSITIVE}\n".encode("latin-1")
    r = container.invoke(body, "text/plain", "application/jsonlines")
    assert r.status == 200 and r.content_type == "application/jsonlines"
    results = _jsonlines(r.body)
    assert [x.get("label") or x["error"] for x in results] == [
        "positive", "review is empty", "negative", "review is not valid UTF-8", "positive"]


def test_jsonlines_with_a_broken_line(container):
    body = "\n".join([json.dumps({"review": NEGATIVE}), "{not json", json.dumps({"text": "x"}),
                      json.dumps({"review": 5}), json.dumps({"review": POSITIVE, "id": 7})]).encode()
    results = _jsonlines(container.invoke(body, "application/jsonlines", "application/jsonlines").body)
    assert results[0]["label"] == "negative" and results[4]["label"] == "positive"
    assert results[1]["error"].startswith("invalid JSON")
    assert "review" in results[2]["error"] and "string" in results[3]["error"]


def test_csv_review_is_the_last_field_and_output_is_csv(container):
    body = f'1,"{POSITIVE}"\n2,"{NEGATIVE}"\n3,""\n"{POSITIVE}"\n'.encode()
    r = container.invoke(body, "text/csv", "text/csv")
    assert r.status == 200 and r.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(r.body.decode())))
    assert [row[0] for row in rows] == ["positive", "negative", "", "positive"]
    assert rows[2] == ["", "", "review is empty"]
    assert all(len(row) == 3 for row in rows)


def test_mini_batch_scores_match_single_requests(container):
    reviews = [POSITIVE, NEGATIVE, "the film", POSITIVE + " " + NEGATIVE]
    batch = _jsonlines(container.invoke("\n".join(reviews).encode(), "text/plain", "application/jsonlines").body)
    single = [json.loads(container.invoke(json.dumps({"review": r}).encode(), "application/json",
                                          "application/json").body) for r in reviews]
    assert [b["score"] for b in batch] == pytest.approx([s["score"] for s in single], abs=1e-5)


@pytest.mark.parametrize("body, content_type, accept, status", [
    (b"x", "image/png", "application/json", 415),
    (b'{"review": "good"}', "application/json", "text/html", 406),
    (b'{"review": ""}', "application/json", "application/json", 400),
    (b'{"review": 3}', "application/json", "application/json", 400),
    (b"[1, 2]", "application/json", "application/json", 400),
    (b"{oops", "application/json", "application/json", 400),
    (b'{"review": "great", "x": ' + b"[" * 1_100 + b"]" * 1_100 + b"}", "application/json", "application/json", 400),
    (b'{"review": "great", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", "application/json", 400),
    (b'{"review": "ok", "n": ' + b"9" * 5_000 + b"}", "application/json", "application/json", 400),
    (b'{"review": "great", "x": Infinity}', "application/json", "application/json", 400),
    (b'{"review": "bad", "review": "wonderful film"}', "application/json", "application/json", 400),
])
def test_bad_requests_are_client_errors(container, body, content_type, accept, status):
    """The status and a one-sentence JSON message: never the toolkit's
    message-plus-traceback, which SageMaker would hand on to the caller."""
    r = container.invoke(body, content_type, accept)
    assert r.status == status
    assert r.content_type == "application/json"
    message = json.loads(r.body)["message"]
    assert message and "\n" not in message and "Traceback" not in message and "File " not in message


@pytest.mark.parametrize("body, message", [
    (b'{"review": "great", "x": ' + b"[" * 1_100 + b"]" * 1_100 + b"}", "invalid JSON: nested deeper than 64 levels"),
    (b'{"review": "ok", "n": ' + b"9" * 5_000 + b"}", "invalid JSON: a number longer than 100 characters"),
    (b'{"review": "great", "x": Infinity}', "invalid JSON: Infinity is not valid JSON"),
    (b'{"review": "bad", "review": "wonderful film"}', 'invalid JSON: duplicate key "review"'),
])
def test_parser_bombs_in_json_lines_are_errors_of_their_own_line(container, body, message):
    lines = [json.dumps({"review": POSITIVE}).encode(), body, json.dumps({"review": NEGATIVE}).encode()]
    r = container.invoke(b"\n".join(lines) + b"\n", "application/jsonlines", "application/jsonlines")
    assert r.status == 200
    results = _jsonlines(r.body)
    assert [x.get("label") or x["error"] for x in results] == ["positive", message, "negative"]


def test_artifact_code_is_self_contained(tiny_artifact, tmp_path):
    # Served from the artifact alone: every module of the model and contract
    # packages that inference.py loads must come from code/, not from this
    # repository.
    model_dir = extract(tiny_artifact, tmp_path / "model")
    script = (
        "import sys, json; sys.path.insert(0, 'code'); import inference;"
        "m = inference.model_fn('.');"
        "print(json.dumps({k: getattr(v, '__file__', '') for k, v in sys.modules.items() if k.split('.')[0] in ('model', 'contract')}))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=model_dir, capture_output=True, text=True, check=True)
    files = json.loads(out.stdout.splitlines()[-1])
    assert "contract.jsonreader" in files and "model.preprocess" in files, files
    assert all(f.startswith(str(model_dir / "code")) for f in files.values()), files


def test_a_model_that_cannot_load_is_a_clear_error(tiny_artifact, tmp_path):
    import tarfile

    from critic.local.container import ContainerError
    from model.package import package

    with pytest.raises(ContainerError, match="no such model artifact"):
        ModelContainer(tmp_path / "missing.tar.gz")
    model_dir = extract(tiny_artifact, tmp_path / "broken")
    (model_dir / "model.pt").write_bytes(b"not weights")
    broken = package(model_dir, tmp_path / "broken.tar.gz")
    assert tarfile.is_tarfile(broken)
    with pytest.raises(ContainerError, match="failed to load"):
        ModelContainer(broken, workers=2)


def test_an_artifact_without_its_contract_package_fails_to_load_as_on_aws(tiny_artifact, tmp_path):
    """inference.py imports contract.jsonreader from code/contract/; the
    repository's copy (on the path of this process, and in its editable
    install) must not stand in for a missing one."""
    import shutil

    from critic.local.container import ContainerError
    from model.package import package

    model_dir = extract(tiny_artifact, tmp_path / "no-contract")
    shutil.rmtree(model_dir / "code" / "contract")
    with pytest.raises(ContainerError, match="contract"):
        ModelContainer(package(model_dir, tmp_path / "no-contract.tar.gz"), workers=1)


def test_two_workers_serve_concurrent_requests_in_order(tiny_artifact):
    from concurrent.futures import ThreadPoolExecutor

    reviews = [POSITIVE if i % 2 else NEGATIVE for i in range(40)]
    with ModelContainer(tiny_artifact, workers=2) as c, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda r: json.loads(c.invoke(json.dumps({"review": r}).encode(),
                                                              "application/json").body), reviews))
    assert [r["label"] for r in results] == ["positive" if i % 2 else "negative" for i in range(40)]


def test_a_request_waiting_for_a_worker_when_the_container_closes_gets_503_not_a_hang(tiny_artifact):
    import threading
    import time

    container = ModelContainer(tiny_artifact, workers=1)
    container._idle.get()  # the only worker is busy
    results = []
    waiting = threading.Thread(target=lambda: results.append(container.invoke(b'{"review": "fine"}',
                                                                              "application/json")))
    waiting.start()
    deadline = time.time() + 10
    while container._idle.waiting() == 0:
        assert time.time() < deadline
        time.sleep(0.01)
    container.close()
    waiting.join(10)
    assert not waiting.is_alive()
    assert results[0].status == 503
    assert container.invoke(b'{"review": "fine"}', "application/json").status == 503
