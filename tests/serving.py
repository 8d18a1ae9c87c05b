"""`scimhost` as a real process: free ports, configs, tokens from the CLI, plain HTTP calls."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers import bearer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {process.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("server did not come up")


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=bearer(token) if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post(url: str, token: str, body: dict, method: str = "POST") -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={**bearer(token), "Content-Type": "application/scim+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def write_config(tmp_path: Path, storage_url: str, port: int, admin_port: int | None = None) -> Path:
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[server]\nport = {port}\n[storage.tortoise]\nurl = "{storage_url}"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n' + admin_table(admin_port)
    )
    return path


def admin_table(port: int | None = None) -> str:
    """An `[admin]` table on a free port (serve opens the admin listener by default)."""
    return f'[admin]\nlisten = "127.0.0.1:{port or free_port()}"\n'


def scimhost(*args: str) -> list[str]:
    return [sys.executable, "-m", "scimhost", *args]


def cli_token(config: Path, env: dict | None = None) -> str:
    """`scimhost migrate`, then `scimhost sources token demo`: the token it printed."""
    subprocess.run(scimhost("-c", str(config), "migrate"), capture_output=True, check=True, env=env)
    issued = subprocess.run(
        scimhost("-c", str(config), "sources", "token", "demo", "--json"), capture_output=True, check=True, env=env
    )
    return json.loads(issued.stdout)["token"]
