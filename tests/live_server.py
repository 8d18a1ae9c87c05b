"""A real scimhost app served on a loopback port from a thread of its own, for tests that drive
it synchronously (hypothesis property tests) with a plain HTTP client."""

from __future__ import annotations

import asyncio
import http.client
import threading
import uuid
from collections.abc import Coroutine
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from scimhost.app import create_app
from scimhost.http.keys import HOST


class LiveServer:
    """The app of `config`, listening on 127.0.0.1 on a free port, its loop in a thread."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-server", daemon=True)
        self.port = 0
        self._runner: web.AppRunner | None = None

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(120)

    def start(self) -> LiveServer:
        self.thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self.app = create_app(self.config)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def issue_token(self, slug: str) -> str:
        return self.call(self.app[HOST].issue_token(slug))

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


class SyncScim:
    """One source of a live server, as its identity provider speaks to it (keep-alive)."""

    def __init__(self, server: LiveServer, slug: str, token: str) -> None:
        self.server = server
        self.base = f"/source/scim/{slug}/v2"
        self.token = token
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None, *, raw_path: bool = False) -> tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = "application/scim+json"
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
            try:
                self._connection.request(method, path if raw_path else self.base + path, body=data, headers=headers)
                response = self._connection.getresponse()
                text = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()
                self._connection = None
                if attempt:
                    raise
        return response.status, (orjson.loads(text) if text else None)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def postgres_schema(url: str) -> tuple[str, Any]:
    """A new schema in the PostgreSQL at `url`: (URL using it, function that drops it)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    return f"{url}?schema={schema}", lambda: asyncio.run(run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
