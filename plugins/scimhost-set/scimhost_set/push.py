"""The `set-push` sink: each scimhost event as one or more signed SETs, POSTed to a receiver as
SET Push (RFC 8935) describes."""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from scimhost.delivery.sink import EventSink, Outcome
from scimhost_set.keys import SigningKey, key_problems, load_keys
from scimhost_set.settings import SetPushSettings
from scimhost_set.tokens import claims, event_uris, payloads, signed

CONTENT_TYPE = "application/secevent+jwt"
# RFC 8935 §2.4 error codes: the SET will never be accepted as it is.
PERMANENT = {"invalid_request", "invalid_key", "invalid_issuer", "invalid_audience"}
# The receiver refuses the publisher itself: stop until an operator looks.
REFUSED = {"authentication_failed", "access_denied"}


class SetPushSink(EventSink):
    """SETs pushed to one receiver, signed by the first of `key_env`'s keys."""

    name = "set-push"
    settings_type = SetPushSettings
    options: SetPushSettings

    @classmethod
    def environment_problems(cls, options: SetPushSettings) -> list[str]:
        bearer = ("bearer_env", options.bearer_env) if options.bearer_env is not None else None
        return key_problems(options.key_env, bearer)

    @classmethod
    def provider_config(cls, options: SetPushSettings) -> dict[str, Any]:
        # RFC 9967 §4: events are delivered as they happen; requests are never answered later.
        return {"securityEvents": {"asyncRequest": "none", "eventUris": event_uris(options.mode)}}

    def __init__(self, options: SetPushSettings, *, sink_name: str) -> None:
        super().__init__(options, sink_name=sink_name)
        self._session: aiohttp.ClientSession | None = None
        self._keys: list[SigningKey] = []

    def attempt_seconds(self) -> float:
        return self.options.timeout_seconds

    async def start(self) -> None:
        self._keys = load_keys(self.options.key_env)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.options.timeout_seconds))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def issuer(self) -> str:
        return self.options.issuer or self.public_url

    async def deliver(self, envelopes: list[dict[str, Any]]) -> list[Outcome]:
        return [await self._push_event(envelope["data"]) for envelope in envelopes]

    async def _push_event(self, data: dict[str, Any]) -> Outcome:
        """Every SET of one event, in order; the event is delivered when each one was accepted
        (a retry sends them all again: the receiver dedups on `txn` and the event URI)."""
        outcome = Outcome.delivered(202)
        for uri, payload in payloads(data, self.options.mode):
            token = signed(
                claims(data, uri, payload, issuer=self.issuer, audience=self.options.audience), self._keys[0]
            )
            outcome = await self._push(token)
            if outcome.kind != "delivered":
                return outcome
        return outcome

    async def _push(self, token: str) -> Outcome:
        assert self._session is not None, "start() first"
        headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/json"}
        if self.options.bearer_env is not None:
            headers["Authorization"] = f"Bearer {os.environ.get(self.options.bearer_env, '')}"
        try:
            async with self._session.post(
                self.options.url, data=token.encode(), headers=headers, allow_redirects=False
            ) as response:
                body = await response.read()
                return _outcome(response.status, response.headers, body)
        except TimeoutError:
            return Outcome.retry(f"no answer within {self.options.timeout_seconds:g}s")
        except aiohttp.ClientError as exc:
            return Outcome.retry(f"the receiver is unreachable: {type(exc).__name__}: {exc}")


def _outcome(status: int, headers: Any, body: bytes) -> Outcome:
    """A push's answer as an outcome (RFC 8935 §2.2-2.4)."""
    if status == 202 or 200 <= status < 300:
        return Outcome.delivered(status)
    if status == 400:
        error, description = _error(body)
        if error in REFUSED:
            return Outcome.pause(f"400 {error}: {description}", status=status)
        if error in PERMANENT:
            return Outcome.permanent(f"400 {error}: {description}", status=status)
        return Outcome.permanent(f"400 {error or 'without an error code'}: {description}", status=status)
    if status in (401, 403):
        return Outcome.pause(f"{status}: the receiver refuses this publisher's credentials", status=status)
    if status == 429 or status >= 500 or status == 408:
        return Outcome.retry(f"{status} from the receiver", status=status, after=_retry_after(headers))
    return Outcome.permanent(f"{status} from the receiver (redirects are not followed)", status=status)


def _error(body: bytes) -> tuple[str, str]:
    import json

    try:
        document = json.loads(body)
    except ValueError:
        return "", body[:200].decode(errors="replace")
    if not isinstance(document, dict):
        return "", ""
    return str(document.get("err") or ""), str(document.get("description") or "")[:200]


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
