"""The local stack's HTTP servers (critic/local/serving.py) on 127.0.0.1:
connections are kept alive between requests, an unread request body never
leaks into the next request, a connection closes whenever where a message
ends is uncertain, and stopping the server closes the connections it kept."""
from __future__ import annotations

import json
import socket
from http.client import HTTPConnection

import pytest
from werkzeug.wrappers import Request, Response

from critic.local.serving import Server


def app(environ, start_response):
    request = Request(environ)
    if request.path == "/ignore-body":  # answers without reading the body (like a 413)
        response = Response(json.dumps({"ignored": True}), status=413, content_type="application/json")
    elif request.path == "/stream":  # no Content-Length: the body ends with the connection
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"part one, ", b"part two"])
    elif request.path == "/fail":
        raise RuntimeError("boom")
    else:
        response = Response(json.dumps({"path": request.path, "body": request.get_data().decode(),
                                        "port": environ["REMOTE_PORT"]}), content_type="application/json")
    return response(environ, start_response)


@pytest.fixture
def server():
    server = Server("test-http", "127.0.0.1", 0, app)
    server.start()
    yield server
    server.stop()


def address(server) -> tuple[str, int]:
    return server.server.server_address[:2]


def connect(server) -> HTTPConnection:
    host, port = address(server)
    return HTTPConnection(host, port, timeout=10)


def ask(connection: HTTPConnection, path: str, body: bytes | None = None, headers: dict | None = None):
    connection.request("POST" if body is not None else "GET", path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response, response.read()


def test_requests_share_one_connection(server):
    connection = connect(server)
    first, body1 = ask(connection, "/a", b"one")
    second, body2 = ask(connection, "/b", b"two")
    assert (first.status, second.status) == (200, 200)
    assert first.getheader("Connection") is None and not first.will_close
    one, two = json.loads(body1), json.loads(body2)
    assert (one["path"], one["body"], two["path"], two["body"]) == ("/a", "one", "/b", "two")
    assert one["port"] == two["port"]  # the same client socket: the connection was kept
    connection.close()


def test_an_unread_body_is_drained_before_the_next_request(server):
    connection = connect(server)
    refused, _ = ask(connection, "/ignore-body", b"x" * 300_000)
    assert refused.status == 413 and not refused.will_close
    after, body = ask(connection, "/next", b"fine")
    assert after.status == 200
    assert json.loads(body)["path"] == "/next" and json.loads(body)["body"] == "fine"
    connection.close()


def test_a_body_without_a_length_closes_the_connection(server):
    connection = connect(server)
    response, body = ask(connection, "/stream")
    assert body == b"part one, part two"
    assert response.getheader("Connection") == "close" and response.will_close


def test_a_chunked_request_is_read_and_then_the_connection_closes(server):
    connection = connect(server)
    connection.request("POST", "/chunked", body=iter([b"ab", b"cd"]), encode_chunked=True,
                       headers={"Transfer-Encoding": "chunked"})
    response = connection.getresponse()
    assert json.loads(response.read())["body"] == "abcd"
    assert response.will_close


@pytest.mark.parametrize("request_line, extra", [
    ("GET /old HTTP/1.0", ""),                          # HTTP/1.0 has no keep-alive here
    ("GET /bye HTTP/1.1", "Connection: close\r\n"),    # the client asks to close
])
def test_the_client_can_end_the_connection(server, request_line, extra):
    with socket.create_connection(address(server), timeout=10) as raw:
        raw.sendall(f"{request_line}\r\nHost: x\r\n{extra}\r\n".encode())
        received = b""
        while chunk := raw.recv(65536):  # the server closes: recv ends
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    assert json.loads(body)["path"] in ("/old", "/bye")


def test_an_application_error_is_a_500_and_closes(server):
    connection = connect(server)
    response, _ = ask(connection, "/fail")
    assert response.status == 500 and response.will_close


def test_a_client_gone_inside_its_body_does_not_stop_the_server(server):
    with socket.create_connection(address(server), timeout=10) as raw:
        raw.sendall(b"POST /short HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this")
        raw.shutdown(socket.SHUT_WR)
        while raw.recv(65536):
            pass
    connection = connect(server)
    assert ask(connection, "/still-here")[0].status == 200
    connection.close()


def test_stopping_the_server_closes_kept_connections():
    server = Server("test-http", "127.0.0.1", 0, app)
    server.start()
    raw = socket.create_connection(address(server), timeout=10)
    raw.sendall(b"GET /kept HTTP/1.1\r\nHost: x\r\n\r\n")
    head = raw.recv(65536)
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
    server.stop()
    try:
        assert raw.recv(65536) == b""  # closed by the server, not left talking to a stopped stack
    finally:
        raw.close()
