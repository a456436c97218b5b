"""A SageMaker PyTorch inference container without Docker.

`ModelContainer(artifact)` unpacks a model.tar.gz and starts worker processes
that serve it the way AWS's PyTorch inference image does: each worker puts
the artifact's code/ first on its path, loads the SageMaker inference
toolkit's HandlerService (sagemaker-pytorch-inference) and answers requests
through it, so model_fn/input_fn/predict_fn/output_fn run exactly as in the
cloud, including the toolkit's error handling. Workers are separate
processes, as TorchServe's are: the artifact's code never mixes with this
process's modules, and two cores serve two requests at once.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from critic.local.pool import FairPool, PoolClosed

_FRAME = struct.Struct(">II")  # header length, body length
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class InvocationResult:
    status: int
    body: bytes
    content_type: str


class ContainerError(RuntimeError):
    """The model could not be loaded."""


def _write_frame(stream, header: dict, body: bytes = b"") -> None:
    head = json.dumps(header).encode()
    stream.write(_FRAME.pack(len(head), len(body)) + head + body)
    stream.flush()


def _read_frame(stream) -> tuple[dict, bytes]:
    prefix = stream.read(_FRAME.size)
    if len(prefix) < _FRAME.size:
        raise EOFError("worker closed its pipe")
    head_len, body_len = _FRAME.unpack(prefix)
    header = json.loads(stream.read(head_len))
    return header, stream.read(body_len)


class _Worker:
    def __init__(self, model_dir: Path, threads: int, startup_timeout: float, python: str):
        # Another interpreter (scripts/check_serving_image.py: the serving image's
        # Python and PyTorch) has no critic installed: it finds this module after
        # the artifact's code/, which still comes first.
        path = [str(model_dir / "code")] + ([] if python == sys.executable else [str(_REPO_ROOT)])
        env = dict(os.environ, SAGEMAKER_PROGRAM="inference.py", OMP_NUM_THREADS=str(threads),
                   PYTHONPATH=os.pathsep.join(path), PYTHONDONTWRITEBYTECODE="1")
        self.process = subprocess.Popen(
            [python, "-m", "critic.local.container", str(model_dir), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=model_dir,
        )
        ready = queue.Queue()
        threading.Thread(target=lambda: ready.put(self._read()), daemon=True).start()
        try:
            header, body = ready.get(timeout=startup_timeout)
        except queue.Empty:
            self.close()
            raise ContainerError(f"model did not load within {startup_timeout:.0f} s") from None
        if header.get("status") != 200:
            self.close()
            raise ContainerError(f"model failed to load: {body.decode(errors='replace')}")

    def _read(self):
        try:
            return _read_frame(self.process.stdout)
        except (EOFError, OSError, ValueError) as error:
            return {"status": 500}, f"worker exited ({error})".encode()

    def invoke(self, body: bytes, content_type: str, accept: str) -> InvocationResult:
        _write_frame(self.process.stdin, {"content_type": content_type, "accept": accept}, body)
        header, out = _read_frame(self.process.stdout)
        return InvocationResult(header["status"], out, header["content_type"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class ModelContainer:
    """Thread-safe: each call borrows an idle worker (and waits for one)."""

    def __init__(self, artifact: str | Path, workers: int = 2, startup_timeout: float = 120,
                 python: str = sys.executable):
        artifact = Path(artifact)
        if not artifact.is_file():
            raise ContainerError(f"{artifact}: no such model artifact")
        from model.package import extract  # not at import: workers must not load the repo's model/

        self._tmp = tempfile.TemporaryDirectory(prefix="critic-model-")
        self.model_dir = extract(artifact, Path(self._tmp.name))
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self._timeout = startup_timeout
        self._python = python
        self._idle: FairPool[_Worker] = FairPool()  # first come, first served
        self._all: list[_Worker] = []
        # Workers load the model at the same time, as the model server's do.
        errors: list[ContainerError] = []
        starters = [threading.Thread(target=self._add_worker, args=(errors,)) for _ in range(workers)]
        for starter in starters:
            starter.start()
        for starter in starters:
            starter.join()
        if errors:
            self.close()
            raise errors[0]

    def _add_worker(self, errors: list | None = None) -> None:
        try:
            worker = _Worker(self.model_dir, self._threads, self._timeout, self._python)
        except ContainerError as error:
            if errors is None:
                raise
            errors.append(error)
            return
        self._all.append(worker)
        self._idle.put(worker)

    def invoke(self, body: bytes, content_type: str, accept: str = "application/json") -> InvocationResult:
        try:
            worker = self._idle.get()
        except PoolClosed:
            return InvocationResult(503, b"the model container is stopping", "text/plain")
        try:
            result = worker.invoke(body, content_type or "", accept or "")
        except (EOFError, OSError, ValueError):
            # A worker that died (out of memory, killed) is replaced, as the
            # model server does; this request fails like a 500 from AWS.
            worker.close()
            self._all.remove(worker)
            self._add_worker()
            return InvocationResult(500, b"model worker died while serving the request", "text/plain")
        self._idle.put(worker)
        return result

    def close(self) -> None:
        self._idle.close()
        for worker in self._all:
            worker.close()
        self._all.clear()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Context:
    """The parts of TorchServe's request context the toolkit reads and sets."""

    def __init__(self, model_dir: str):
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [self]
        self.headers: dict = {}
        self.status, self.content_type = 200, None

    def get_request_properties(self):
        return self.headers

    def set_response_status(self, code=200, phrase="", idx=0):
        self.status = code

    def set_response_content_type(self, idx, value):
        self.content_type = value


def _serve(model_dir: str, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # Only the artifact's code/ may provide its modules: drop the working
    # directory and the project root from the path, as in a real container.
    sys.path[:] = [os.path.join(model_dir, "code")] + [
        p for p in sys.path if p not in ("", os.getcwd(), model_dir)
    ]
    # Nor may this checkout's editable install (a finder on sys.meta_path,
    # not a path entry): an artifact without code/contract/ must fail to load
    # here as it would on AWS, not import the repository's copy.
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    import torch
    from sagemaker_pytorch_serving_container.handler_service import HandlerService

    torch.set_num_threads(threads)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the model's prints must not corrupt the pipe
    service, context = HandlerService(), _Context(model_dir)
    try:
        service.initialize(context)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises
        _write_frame(stdout, {"status": 500}, repr(error).encode())
        return
    _write_frame(stdout, {"status": 200})
    while True:
        try:
            header, body = _read_frame(stdin)
        except EOFError:
            return
        context.headers = {"Content-Type": header["content_type"], "Accept": header["accept"]}
        context.status, context.content_type = 200, None
        response = service.handle([{"body": body}], context)[0]
        if isinstance(response, str):
            response = response.encode()
        _write_frame(stdout, {"status": context.status, "content_type": context.content_type or "text/plain"},
                     bytes(response))


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
