"""OAuth benchmark (scimhost-oauth): a GET with an OAuth access token beside the same GET with a
bearer token, and the token endpoint's requests/s with a client secret and with an RFC 7523
assertion, with the machine's bare-aiohttp ceiling measured in the same run.

Needs `wrk` (Debian package `wrk`) and the plugin with its test extra (PyJWT signs assertions):

    python bench/oauth.py --seconds 5

The GETs and the secret grant are driven by wrk; assertion grants by an aiohttp client sending
assertions signed before the run (each is accepted once), so that figure includes a Python
client sharing the machine's two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import CEILING_APP, cpu_seconds, measured, wait_up, wrk  # noqa: E402

ISSUER, SUBJECT, AUDIENCE = "https://login.example.com/tenant/v2.0", "provisioning", "api://scimhost"
GET_SCRIPT = """
wrk.headers["Authorization"] = "{auth}"
function request() return wrk.format("GET", "{path}") end
"""
GRANT_SCRIPT = """
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "{auth}"
function request() return wrk.format(nil, "{path}") end
"""


def keys():
    """A signing key and its JWKS document."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk["kid"] = "bench-1"
    return private, json.dumps({"keys": [jwk]}).encode()


def serve_jwks(document: bytes) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def cli(config: Path, *words: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "scimhost", "-c", str(config), *words, "--json"], check=True, capture_output=True
    )
    return json.loads(out.stdout)


def post(url: str, body: bytes, headers: dict) -> dict:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def assertion_grants(url: str, assertions: list[str], connections: int) -> tuple[float, int]:
    """(seconds, failures) to exchange every assertion, `connections` at a time."""
    import aiohttp

    queue = list(assertions)
    failures = 0

    async def worker(session):
        nonlocal failures
        while queue:
            data = {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": queue.pop(),
            }
            async with session.post(url, data=data) as response:
                await response.read()
                failures += response.status != 200

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return time.monotonic() - started, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--assertions", type=int, default=2000)
    args = parser.parse_args()
    import jwt as pyjwt

    private, document = keys()
    jwks, jwks_port = serve_jwks(document)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "scimhost.toml"
        config.write_text(
            f"[server]\nport = {args.port}\naccess_log = false\n[admin]\nenabled = false\n"
            "[limits]\nsource_rate_per_second = 0\nsource_max_concurrent = 0\n"
            '[storage.tortoise]\nurl = "sqlite://./bench.sqlite3"\n'
            '[[sources]]\nslug = "bench"\nname = "Benchmark"\nauth = ["bearer", "oauth"]\n'
            f'[[sources.oauth.trusted_issuers]]\nissuer = "{ISSUER}"\n'
            f'jwks_url = "http://127.0.0.1:{jwks_port}/keys"\nsubject = "{SUBJECT}"\naudience = "{AUDIENCE}"\n'
        )
        subprocess.run(
            [sys.executable, "-m", "scimhost", "-c", str(config), "migrate"], check=True, capture_output=True
        )
        bearer = cli(config, "sources", "token", "bench")["token"]
        secret = cli(config, "oauth", "secrets", "create", "bench")
        basic = (
            "Basic "
            + __import__("base64").b64encode(f"{secret['client_id']}:{secret['client_secret']}".encode()).decode()
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "scimhost", "-c", str(config), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{args.port}/source/scim/bench/v2"
        try:
            wait_up(f"http://127.0.0.1:{args.port}/healthz")
            user = post(
                base + "/Users",
                json.dumps({"userName": "bjensen@example.com", "name": {"givenName": "Barbara"}}).encode(),
                {"Authorization": f"Bearer {bearer}", "Content-Type": "application/scim+json"},
            )
            token_url = base + "/oauth/token"
            access = post(
                token_url,
                b"grant_type=client_credentials",
                {"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"},
            )
            path = f"/source/scim/bench/v2/Users/{user['id']}"

            def scripted(template: str, **values) -> str:
                script = Path(tmp) / f"{uuid.uuid4().hex}.lua"
                script.write_text(template.format(**values))
                return str(script)

            def run(script: str):
                return measured(
                    server.pid, lambda: wrk(f"http://127.0.0.1:{args.port}", script, args.seconds, args.connections)
                )

            rows = {}
            get_bearer = scripted(GET_SCRIPT, auth=f"Bearer {bearer}", path=path)
            get_oauth = scripted(GET_SCRIPT, auth=f"Bearer {access['access_token']}", path=path)
            # Alternated, twice each: the machine is shared and one run varies.
            for label, script in [("GET, bearer token", get_bearer), ("GET, OAuth access token", get_oauth)] * 2:
                result = run(script)
                if label not in rows or result[3] < rows[label][3]:
                    rows[label] = result
            rows["token endpoint, client secret (Basic)"] = run(
                scripted(GRANT_SCRIPT, auth=basic, path="/source/scim/bench/v2/oauth/token")
            )
            now = int(time.time())
            assertions = [
                pyjwt.encode(
                    {
                        "iss": ISSUER,
                        "sub": SUBJECT,
                        "aud": AUDIENCE,
                        "exp": now + 600,
                        "iat": now,
                        "jti": uuid.uuid4().hex,
                    },
                    private,
                    algorithm="RS256",
                    headers={"kid": "bench-1"},
                )
                for _ in range(args.assertions)
            ]
            before = cpu_seconds(server.pid)
            seconds, failures = asyncio.run(assertion_grants(token_url, assertions, args.connections))
            spent = cpu_seconds(server.pid) - before
            if failures:
                print(f"{failures} assertion grants failed", file=sys.stderr)
            rows["token endpoint, RFC 7523 assertion (aiohttp client)"] = (
                len(assertions) / seconds,
                float("nan"),
                float("nan"),
                1000 * spent / len(assertions),
                len(assertions) / seconds,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
            jwks.shutdown()

        ceiling_file = Path(tmp) / "ceiling.py"
        ceiling_file.write_text(CEILING_APP)
        ceiling_process = subprocess.Popen([sys.executable, str(ceiling_file), "8095"], start_new_session=True)
        try:
            wait_up("http://127.0.0.1:8095/x")
            ceiling = measured(
                ceiling_process.pid, lambda: wrk("http://127.0.0.1:8095", get_bearer, args.seconds, args.connections)
            )
        finally:
            ceiling_process.terminate()
            ceiling_process.wait(timeout=30)

    print(f"ceiling (bare aiohttp, same Lua GET): {ceiling[0]:.0f} req/s, {ceiling[3]:.3f} ms CPU/req")
    print("| scenario | req/s | p50 ms | p99 ms | of ceiling | server CPU ms/req |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, (rps, p50, p99, cpu, _) in rows.items():
        print(f"| {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {100 * rps / ceiling[0]:.0f}% | {cpu:.3f} |")
    bearer_cpu, oauth_cpu = rows["GET, bearer token"][3], rows["GET, OAuth access token"][3]
    print(f"OAuth GET CPU vs bearer GET CPU: {100 * (oauth_cpu / bearer_cpu - 1):+.1f}%")
    os._exit(0)


if __name__ == "__main__":
    main()
