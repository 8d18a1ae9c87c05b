"""`scimhost serve` is safe to expose without a proxy in front: slow or stalled connections are
cut off by the `[server]` timeouts, a shutdown never waits for a half-sent body, and junk at the
protocol level is logged in one short line, not a traceback per request."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from serving import admin_table, cli_token, free_port, scimhost, wait_until_up


def start(tmp_path: Path, **server: float) -> tuple[subprocess.Popen, int, str]:
    """A `serve` process on SQLite with the given `[server]` settings: (process, port, token)."""
    port = free_port()
    settings = "".join(f"{name} = {value}\n" for name, value in server.items())
    config = tmp_path / "scimhost.toml"
    config.write_text(
        f'[server]\nport = {port}\n{settings}[storage.tortoise]\nurl = "sqlite://./db.sqlite3"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n' + admin_table()
    )
    token = cli_token(config)
    process = subprocess.Popen(scimhost("-c", str(config), "serve"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until_up(port, process)
    return process, port, token


def stop(process: subprocess.Popen) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    return out.decode(), err.decode()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (reading what it sends)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        try:
            if sock.recv(65536) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def response_of(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection or `within` seconds pass."""
    sock.settimeout(within)
    data = b""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_headers_that_never_complete_are_cut_off(tmp_path):
    process, port, _ = start(tmp_path, idle_timeout=1.0)
    try:
        stalled = []
        for i in range(60):
            sock = connect(port)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i)
            stalled.append(sock)
        started = time.monotonic()
        # Trickle one more header byte now and then: sending does not keep a connection alive.
        for _ in range(3):
            time.sleep(0.3)
            for sock in stalled:
                try:
                    sock.sendall(b"a")
                except OSError:
                    pass
        assert all(closed_by_server(sock, within=5) for sock in stalled)
        assert time.monotonic() - started < 6
        # The server still answers.
        sock = connect(port)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert response_of(sock, 5).startswith(b"HTTP/1.1 200")
    finally:
        stop(process)


def test_idle_keep_alive_connections_are_closed(tmp_path):
    process, port, _ = start(tmp_path, idle_timeout=1.0)
    try:
        sock = connect(port)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        ready, _, _ = select.select([sock], [], [], 5)
        assert ready and sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert closed_by_server(sock, within=5)
        assert 0.5 < time.monotonic() - started < 4
        silent = connect(port)  # connects and never sends a byte
        assert closed_by_server(silent, within=5)
    finally:
        stop(process)


def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(tmp_path):
    process, port, token = start(tmp_path, body_timeout=1.0)
    try:
        sock = connect(port)
        sock.sendall(
            b"POST /source/scim/demo/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + token.encode()
            + b'\r\nContent-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{"userName": '
        )
        started = time.monotonic()
        answer = response_of(sock, 6)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"status":"408"' in answer.replace(b" ", b"")
        assert time.monotonic() - started < 5
    finally:
        stop(process)


def test_sigterm_answers_a_request_whose_body_is_still_arriving_and_exits_promptly(tmp_path):
    process, port, token = start(tmp_path, shutdown_timeout=30.0, body_timeout=60.0)
    sock = connect(port)
    try:
        sock.sendall(
            b"POST /source/scim/demo/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + token.encode()
            + b'\r\nContent-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{"userName": '
        )
        time.sleep(0.5)  # the head is in and the handler waits for the rest of the body
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        answer = response_of(sock, 10)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"Retry-After: 1" in answer
        process.wait(timeout=20)
        assert time.monotonic() - started < 10
    finally:
        _, err = stop(process)
    assert process.returncode == 0, err


@pytest.mark.parametrize(
    "junk, logged",
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n", True),
        # Not HTTP at all (TLS to a plain port, scanners): aiohttp itself logs it at DEBUG only.
        (b"NOT AN HTTP REQUEST AT ALL\r\n\r\n", False),
    ],
)
def test_protocol_garbage_is_logged_in_one_line_without_a_traceback(tmp_path, junk, logged):
    process, port, _ = start(tmp_path)
    try:
        for _ in range(30):
            sock = connect(port)
            sock.sendall(junk)
            response_of(sock, 2)
            sock.close()
        sock = connect(port)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert response_of(sock, 5).startswith(b"HTTP/1.1 200")
    finally:
        _, err = stop(process)
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if "malformed HTTP request" in line]
    assert (1 if logged else 0) <= len(lines) <= 21, err[-3000:]  # at most twenty lines a minute
    assert all("WARNING" in line for line in lines)
    assert "ERROR" not in err
