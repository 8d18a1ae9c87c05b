"""scimhost event sink: each event POSTed to a URL, signed as Standard Webhooks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from scimhost.delivery.sink import EventSink, Outcome
from scimhost.hookspecs import hookimpl

SECRET_PREFIX = "whsec_"
RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class WebhookSettings:
    """The webhook sink's keys of its `[[events.sinks]]` entry."""

    url: str
    # Environment variables holding `whsec_...` secrets: one, or several while rotating.
    secret_env: str | tuple[str, ...]
    timeout_seconds: float = 15.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url: must be an absolute http:// or https:// URL")
        if not 0 < self.timeout_seconds <= 300:
            raise ValueError("timeout_seconds: must be more than 0 and at most 300")

    @property
    def secret_names(self) -> tuple[str, ...]:
        return (self.secret_env,) if isinstance(self.secret_env, str) else tuple(self.secret_env)


def decode_secret(value: str, name: str) -> bytes:
    """The key of a `whsec_<base64>` secret."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"secret_env: {name} must hold a secret starting with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"secret_env: {name} is not {SECRET_PREFIX} followed by base64") from None
    if len(key) < 16:
        raise ValueError(f"secret_env: the secret in {name} is shorter than 16 bytes")
    return key


def sign(keys: list[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,<base64 HMAC-SHA256>` for each key."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


class WebhookSink(EventSink):
    """POSTs each event to the configured URL; the answer's status decides the outcome."""

    name = "webhook"
    settings_type = WebhookSettings

    @classmethod
    def environment_problems(cls, options: WebhookSettings) -> list[str]:
        problems = []
        for name in options.secret_names:
            value = os.environ.get(name)
            try:
                if not value:
                    raise ValueError(f"secret_env: the environment variable {name} is not set")
                decode_secret(value, name)
            except ValueError as exc:
                problems.append(str(exc))
        return problems

    def attempt_seconds(self) -> float:
        return self.options.timeout_seconds

    async def start(self) -> None:
        self._keys = [decode_secret(os.environ[name], name) for name in self.options.secret_names]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.options.timeout_seconds))

    async def close(self) -> None:
        await self._session.close()

    async def deliver(self, envelopes: list[dict[str, Any]]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._post(envelope) for envelope in envelopes)))

    async def _post(self, envelope: dict[str, Any]) -> Outcome:
        body = orjson.dumps(envelope)
        message_id = envelope["data"]["id"]
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._keys, message_id, timestamp, body),
        }
        try:
            async with self._session.post(
                self.options.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return Outcome.retry(f"no answer within {self.options.timeout_seconds:g}s")
        except aiohttp.ClientError as exc:
            return Outcome.retry(f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return Outcome.delivered(status)
        if status == 410:
            return Outcome.pause("the receiver answered 410 Gone", status=status)
        if status in RETRIED_STATUSES or status >= 500:
            return Outcome.retry(f"the receiver answered {status}", status=status, after=retry_after)
        if 300 <= status < 400:
            return Outcome.permanent(f"the receiver answered {status}; redirects are not followed", status=status)
        return Outcome.permanent(f"the receiver answered {status}", status=status)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (seconds, or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


@hookimpl
def register_event_sinks():
    return [WebhookSink]
