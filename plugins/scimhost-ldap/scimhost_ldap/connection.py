"""python-ldap on asyncio: operations sent by message id, answers read when the connection's
socket is readable, so the event loop never waits on the directory; connect and bind run on a
thread with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import ldap
from ldap.ldapobject import LDAPObject

from scimhost.storage.backend import StorageError

log = logging.getLogger(__name__)


class DirectoryDown(StorageError):
    """The directory did not answer (down, unreachable, or slower than the timeout)."""


@dataclass(frozen=True)
class Answer:
    """A finished operation: its entries (searches) and response controls."""

    entries: list[tuple[str, dict[str, list[bytes]]]]
    controls: list[Any]
    # An extended operation's response value.
    value: bytes | None = None


class Connection:
    """One bound LDAP connection with any number of operations in flight."""

    def __init__(self, raw: LDAPObject, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.raw = raw
        self.loop = loop
        self.timeout = timeout
        self._waiting: dict[int, asyncio.Future[Answer]] = {}
        self._fd = raw.fileno()
        self.broken = False
        # Sorted (VLV) searches made: OpenLDAP's sssvlv keeps each one's sort state until the
        # connection closes, and refuses more than sssvlv-maxperconn of them ("Server is busy").
        self.sorted_searches = 0
        loop.add_reader(self._fd, self._drain)

    @classmethod
    async def open(cls, url: str, bind_dn: str, password: str, *, timeout: float) -> Connection:
        def connect() -> LDAPObject:
            raw = ldap.initialize(url, bytes_mode=False)
            raw.set_option(ldap.OPT_NETWORK_TIMEOUT, timeout)
            raw.set_option(ldap.OPT_TIMEOUT, timeout)
            raw.set_option(ldap.OPT_REFERRALS, 0)
            raw.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
            raw.simple_bind_s(bind_dn, password)
            return raw

        try:
            raw = await asyncio.wait_for(asyncio.to_thread(connect), timeout)
        except (TimeoutError, ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR) as exc:
            raise DirectoryDown(f"the directory at {url} does not answer: {_text(exc)}") from None
        except ldap.INVALID_CREDENTIALS:
            raise StorageError(f"the directory at {url} refused the bind of {bind_dn}") from None
        return cls(raw, asyncio.get_running_loop(), timeout)

    async def call(self, send: Callable[[LDAPObject], int]) -> Answer:
        """Send one operation (`send` returns its message id) and wait for its answer."""
        if self.broken:
            raise DirectoryDown("the connection to the directory is broken")
        try:
            msgid = send(self.raw)
        except ldap.SERVER_DOWN as exc:
            self._break(exc)
            raise DirectoryDown(f"the directory does not answer: {_text(exc)}") from None
        future: asyncio.Future[Answer] = self.loop.create_future()
        self._waiting[msgid] = future
        # Answers may already sit in libldap's buffer, where the socket shows nothing.
        self._drain()
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            self._waiting.pop(msgid, None)
            with contextlib.suppress(ldap.LDAPError):
                self.raw.abandon_ext(msgid)
            raise DirectoryDown(f"the directory did not answer within {self.timeout:g} s") from None
        finally:
            self._waiting.pop(msgid, None)

    def _drain(self) -> None:
        while self._waiting:
            try:
                kind, data, msgid, controls, _, value = self.raw.result4(ldap.RES_ANY, all=1, timeout=0, add_extop=1)
            except ldap.TIMEOUT:
                return
            except ldap.SERVER_DOWN as exc:
                self._break(exc)
                return
            except ldap.LDAPError as exc:
                msgid = _msgid(exc)
                future = self._waiting.pop(msgid, None) if msgid is not None else None
                if future is not None and not future.done():
                    future.set_exception(exc)
                elif future is None:
                    log.warning("LDAP error for no waiting operation: %s", _text(exc))
                    return
                continue
            if kind is None:
                return
            future = self._waiting.pop(msgid, None)
            if future is not None and not future.done():
                entries = [(dn, attrs) for dn, attrs in data or [] if dn is not None]
                future.set_result(Answer(entries, controls or [], value))

    def _break(self, exc: BaseException) -> None:
        self.broken = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(DirectoryDown(f"the directory does not answer: {_text(exc)}"))
        self._waiting.clear()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self._fd)
        with contextlib.suppress(ldap.LDAPError):
            self.raw.unbind_ext()


class Pool:
    """A bounded set of connections, opened on demand and replaced when they break."""

    def __init__(
        self, url: str, bind_dn: str, password: str, *, size: int, timeout: float, sorted_per_connection: int = 15
    ) -> None:
        self.url, self.bind_dn, self.password = url, bind_dn, password
        self.size, self.timeout = size, timeout
        self.sorted_per_connection = sorted_per_connection
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection of one's own for the block (a transaction needs one to itself)."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout)
        except TimeoutError:
            raise DirectoryDown(f"no connection to the directory was free within {self.timeout:g} s") from None
        connection: Connection | None = None
        try:
            while self._idle and connection is None:
                candidate = self._idle.pop()
                if candidate.broken:
                    candidate.close()
                else:
                    connection = candidate
            if connection is None:
                connection = await Connection.open(self.url, self.bind_dn, self.password, timeout=self.timeout)
            yield connection
        finally:
            if connection is not None:
                if connection.broken or connection.sorted_searches >= self.sorted_per_connection:
                    connection.close()
                else:
                    self._idle.append(connection)
            self._slots.release()

    async def call(self, send: Callable[[LDAPObject], int], *, sorted_search: bool = False) -> Answer:
        """One operation on a pooled connection; `sorted_search`: a VLV search, counted so the
        connection is replaced before the directory's per-connection limit of them."""
        async with self.connection() as connection:
            if sorted_search:
                connection.sorted_searches += 1
            return await connection.call(send)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


def _msgid(exc: ldap.LDAPError) -> int | None:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    value = info.get("msgid")
    return int(value) if value is not None else None


def _text(exc: BaseException) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
    if info:
        return str(info.get("desc", "")) + (f" ({info['info']})" if info.get("info") else "")
    return str(exc) or type(exc).__name__
