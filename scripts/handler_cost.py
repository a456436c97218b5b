#!/usr/bin/env python3
"""CPU cost of the realtime Lambda handler itself, outside the local stack:
the unmodified handler (functions/realtime/app.py: Powertools, boto3) runs in
this process, in a loop, against a stand-in InvokeEndpoint on 127.0.0.1 that
answers at once. Prints milliseconds of CPU (and of wall time) per call, for
boto3's invoke_endpoint alone and for a whole API event, as JSON.

`make load` reports what the same handler costs inside the stack, where each
request also passes through the HTTP API, the Lambda runtime, the AWS
endpoint and a model worker; this is the floor that handler code sets.

Usage: .venv/bin/python scripts/handler_cost.py [--calls 2000] [--pause-ms 5]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ANSWER = b'{"label": "positive", "score": 0.9}'


class _InvokeEndpoint(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args) -> None:
        pass


class _Context:
    function_name, function_version, memory_limit_in_mb = "critic-realtime", "$LATEST", 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:critic-realtime"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 28_000


def per_call(function, calls: int, pause: float) -> dict:
    """CPU and wall milliseconds per call, counting the calls only; `pause`
    seconds of sleep between calls, as between requests in the stack."""
    for _ in range(min(200, calls)):
        function()
    cpu = wall = 0.0
    for _ in range(calls):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        function()
        cpu += time.process_time() - cpu_start
        wall += time.perf_counter() - wall_start
        if pause:
            time.sleep(pause)
    return {"cpu_ms": round(cpu * 1000 / calls, 3), "wall_ms": round(wall * 1000 / calls, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pause-ms", type=float, default=0.0,
                        help="sleep between calls: code that waits between requests runs with cold caches")
    args = parser.parse_args()

    # The stand-in runs in a child process: the figures are the handler's CPU alone.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _InvokeEndpoint)
    child = os.fork()
    if child == 0:
        try:
            server.serve_forever()
        finally:
            os._exit(0)
    server.socket.close()
    os.environ.update({
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{server.server_port}",
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "ENDPOINT_NAME": "critic", "POWERTOOLS_SERVICE_NAME": "critic-realtime",
        "POWERTOOLS_METRICS_NAMESPACE": "Critic", "AWS_SAM_LOCAL": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "critic-realtime",
    })
    sys.path[:0] = [str(REPO / "functions" / "realtime"), str(REPO)]
    import app  # noqa: E402 - after the environment it reads at import

    event = json.loads((REPO / "events" / "api-post-json.json").read_text())
    body = json.dumps({"review": "A wonderful, moving film."}).encode()
    logs = io.StringIO()

    def invoke_endpoint() -> None:
        app.sagemaker_runtime.invoke_endpoint(EndpointName="critic", ContentType="application/json",
                                              Accept="application/json", Body=body)["Body"].read()

    def handler() -> None:
        with contextlib.redirect_stdout(logs):  # its log and metric lines
            response = app.lambda_handler(event, _Context())
        logs.seek(0)
        logs.truncate()
        assert response["statusCode"] == 200, response

    pause = args.pause_ms / 1000
    figures = {"calls": args.calls, "pause_ms": args.pause_ms,
               "invoke_endpoint": per_call(invoke_endpoint, args.calls, pause),
               "handler": per_call(handler, args.calls, pause)}
    os.kill(child, signal.SIGTERM)
    os.waitpid(child, 0)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
