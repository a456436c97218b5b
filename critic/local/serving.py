"""The local stack's HTTP servers: werkzeug's threaded WSGI server with
HTTP/1.1 keep-alive, so the clients of the HTTP API and of the AWS endpoint
(the page, boto3 in the Lambda environments, the load tests) reuse their
connections as they do with API Gateway and AWS, instead of paying for a new
connection and a new server thread on every request.

werkzeug's own handler closes every connection: it cannot tell where an
unread request body ends. This one can: a request body is a declared
Content-Length read through a counting stream, whatever the application left
unread is drained before the next request line, and the connection closes
whenever that is not certain (a chunked request, a response without a
Content-Length, an error, an HTTP/1.0 client, `Connection: close`). Open
connections are closed when the server stops, so no client keeps talking to a
stopped stack.

Why not a maintained server (issue #19): waitress 3.0.2 was tried in place of
this module (both servers, 16 threads) and is not used, for what it does to
the AWS endpoint: its parser drops every request header whose name has an
underscore, so S3 user metadata such as x-amz-meta-my_key is lost (PutObject
with Metadata {"my_key": "1", "other-key": "2"}: HeadObject answers
{"Other-Key": "2"} on waitress, {"my_key": "1", "other-key": "2"} here), the
very case moto's own request handler, which this one extends, exists for;
there is no hook to keep them. Waitress on the HTTP API alone would leave this
module in place for the endpoint. Its figures were no better either: with
`.venv/bin/python scripts/load_local.py --duration 30 --concurrency 1 16`,
run alternately on a busy 2-core machine (load average 4 to 7), c=16 gave
229 and 292 req/s (p99 120 and 102 ms) here against 221 and 234 req/s
(p99 110 and 121 ms) on waitress, and the stack's own CPU per request was
1.36 and 1.22 ms here against 1.68 and 2.00 ms; batch (10 files of 10,000
lines) took 14.1 and 11.6 s here, 8.9 and 9.6 s on waitress. Cheroot was not
tried: it would need the same header-name handling moto adds to werkzeug's.
"""
from __future__ import annotations

import io
import logging
import socket
import threading

from werkzeug.exceptions import InternalServerError
from werkzeug.serving import WSGIRequestHandler, make_server

_DRAIN_TIMEOUT = 1.0  # seconds to wait for the rest of an unread request body
_WERKZEUG_LOG = logging.getLogger("werkzeug")


class _Body(io.RawIOBase):
    """The request body: at most `length` bytes of the connection."""

    def __init__(self, stream, length: int):
        self._stream = stream
        self.remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.remaining <= 0:
            return 0
        view = memoryview(buffer)[:self.remaining]
        count = self._stream.readinto(view)
        if not count:
            raise ConnectionError("the client closed the connection inside the request body")
        self.remaining -= count
        return count


class KeepAliveHandler(WSGIRequestHandler):
    """WSGIRequestHandler with persistent connections (HTTP/1.1) and without
    the per-request access log line when werkzeug's logger would drop it."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small answers leave at once
        track = getattr(self.server, "track", None)
        if track:
            track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            track = getattr(self.server, "track", None)
            if track:
                track(self.connection, False)

    def log_request(self, code="-", size="-") -> None:
        if _WERKZEUG_LOG.isEnabledFor(logging.INFO):
            super().log_request(code, size)

    def run_wsgi(self) -> None:  # noqa: C901 - one request, as werkzeug's, plus what keep-alive needs
        # http.server has already answered "Expect: 100-continue" (HTTP/1.1).
        self.environ = environ = self.make_environ()
        if self.request_version != "HTTP/1.1":
            self.close_connection = True
        body = None
        if environ.get("wsgi.input_terminated"):  # a chunked request: its end is the decoder's business
            self.close_connection = True
        else:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
            else:
                body = _Body(self.rfile, length)
                environ["wsgi.input"] = io.BufferedReader(body, 65536)
        state: dict = {"set": None, "sent": False}

        def write(data: bytes) -> None:
            assert state["set"] is not None, "write() before start_response"
            assert isinstance(data, bytes), "applications must write bytes"
            if not state["sent"]:
                state["sent"] = True
                status, headers = state["set"]
                code_text, _, message = status.partition(" ")
                code = int(code_text)
                self.send_response(code, message)
                names = set()
                for name, value in headers:
                    if name.lower() == "connection":
                        continue  # hop-by-hop: the server's to decide (PEP 3333)
                    self.send_header(name, value)
                    names.add(name.lower())
                delimited = ("content-length" in names or environ["REQUEST_METHOD"] == "HEAD"
                             or 100 <= code < 200 or code in (204, 304))
                if not delimited or self.close_connection:
                    self.send_header("Connection", "close")  # sets close_connection
                # The head and the first block of the body in one send.
                self._headers_buffer.append(b"\r\n")
                self._headers_buffer.append(data)
                self.flush_headers()
            elif data:
                self.wfile.write(data)

        def start_response(status, headers, exc_info=None):
            if exc_info:
                try:
                    if state["sent"]:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state["set"] is not None:
                raise AssertionError("Headers already set")
            state["set"] = (status, headers)
            return write

        def execute(app) -> None:
            result = app(environ, start_response)
            try:
                for data in result:
                    write(data)
                if not state["sent"]:
                    write(b"")
            finally:
                if hasattr(result, "close"):
                    result.close()

        try:
            execute(self.server.app)
        except (ConnectionError, socket.timeout) as error:
            self.close_connection = True
            self.connection_dropped(error, environ)
            return
        except Exception as error:  # noqa: BLE001 - werkzeug's answer: 500, and the traceback in the log
            self.close_connection = True
            if self.server.passthrough_errors:
                raise
            if not state["sent"]:
                state["set"] = None
                try:
                    execute(InternalServerError())
                except Exception:  # noqa: BLE001
                    pass
            from werkzeug.debug.tbtools import DebugTraceback

            self.server.log("error", f"Error on request:\n{DebugTraceback(error).render_traceback_text()}")
            return
        if body is not None and body.remaining:
            self._drain(body)

    def _drain(self, body: _Body) -> None:
        """Read what the application left of the request body, so the next
        request starts where it should (and the client sees the answer, not
        a reset); close the connection if it does not arrive promptly."""
        self.connection.settimeout(_DRAIN_TIMEOUT)
        try:
            scratch = bytearray(1 << 20)
            while body.remaining and body.readinto(scratch):
                pass
        except OSError:
            pass
        finally:
            self.connection.settimeout(self.timeout)
        if body.remaining:
            self.close_connection = True


class Server(threading.Thread):
    """One threaded WSGI server in a thread; stop() also closes the open
    (kept-alive) connections."""

    def __init__(self, name: str, host: str, port: int, app, handler=KeepAliveHandler):
        super().__init__(name=name, daemon=True)
        self.server = make_server(host, port, app, threaded=True, request_handler=handler)
        self.server.daemon_threads = True
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.server.track = self._track

    def _track(self, connection: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def run(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # the handler thread reads EOF and ends
            except OSError:
                pass
