"""The `set-poll` sink: a SET Poll feed (RFC 8936). The receiver POSTs to the host's poll
endpoint with the SETs it acknowledges (`ack`) or rejects (`setErrs`) and gets the next ones;
each event is one SET, held in flight until acknowledged and handed out again after
`inflight_seconds`. Per resource, the next SET is handed out only after the previous one's."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from scimhost.delivery.envelope import envelope
from scimhost.delivery.sink import EventSink, Outcome
from scimhost.http.keys import HOST, STOPPING
from scimhost.storage.backend import FinishedDelivery, StorageError
from scimhost_set.keys import key_problems, load_keys
from scimhost_set.settings import SetPollSettings
from scimhost_set.tokens import claims, event_uris, payloads, signed

POLL_PATH = "/set/{sink}/poll"
MAX_EVENTS = 100
# How often a waiting poll looks for new SETs.
POLL_STEP_SECONDS = 0.1


class SetPollSink(EventSink):
    """Deliveries its receiver polls for (the dispatcher leaves them alone)."""

    name = "set-poll"
    settings_type = SetPollSettings
    polled = True
    options: SetPollSettings

    @classmethod
    def environment_problems(cls, options: SetPollSettings) -> list[str]:
        return key_problems(options.key_env, ("token_env", options.token_env))

    @classmethod
    def provider_config(cls, options: SetPollSettings) -> dict[str, Any]:
        return {"securityEvents": {"asyncRequest": "none", "eventUris": event_uris(options.mode)}}

    async def deliver(self, envelopes: list[dict[str, Any]]) -> list[Outcome]:  # pragma: no cover - polled
        return [Outcome.retry("a polled sink: its receiver fetches its SETs")] * len(envelopes)


def _secret(options: SetPollSettings) -> bytes:
    return hashlib.sha256(os.environ.get(options.token_env, "").encode()).digest()


def set_id(options: SetPollSettings, sink: str, seq: int) -> str:
    """The SET's `jti`: its delivery's sequence number and a MAC of it, so that an `ack` names
    a delivery of this sink and nothing else, and a SET handed out again keeps its id."""
    mac = hmac.new(_secret(options), f"{sink}:{seq}".encode(), hashlib.sha256).hexdigest()[:24]
    return f"{seq}.{mac}"


def delivery_of(options: SetPollSettings, sink: str, jti: object) -> int | None:
    if not isinstance(jti, str) or "." not in jti:
        return None
    seq_text = jti.split(".", 1)[0]
    if not seq_text.isdigit():
        return None
    seq = int(seq_text)
    return seq if hmac.compare_digest(set_id(options, sink, seq), jti) else None


def _problem(status: int, err: str, description: str) -> web.Response:
    return web.json_response({"err": err, "description": description}, status=status)


async def poll(request: web.Request) -> web.Response:
    """RFC 8936 §2.4: acknowledge, report errors, and receive the next SETs."""
    host = request.app[HOST]
    name = request.match_info["sink"]
    found = next((s for s in host.settings.events.sinks if s.name == name and s.type == "set-poll"), None)
    if found is None:
        return _problem(404, "invalid_request", "no SET poll feed of that name")
    options: SetPollSettings = found.options
    presented = request.headers.get("Authorization", "")
    expected = os.environ.get(options.token_env, "")
    if (
        not expected
        or not presented.startswith("Bearer ")
        or not hmac.compare_digest(
            hashlib.sha256(presented[7:].encode()).digest(), hashlib.sha256(expected.encode()).digest()
        )
    ):
        response = _problem(401, "authentication_failed", "a valid bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="scimhost-set"'
        return response
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return _problem(400, "invalid_request", "the body is not JSON")
    if not isinstance(body, dict):
        return _problem(400, "invalid_request", "the body must be a JSON object")
    ack, errors = body.get("ack", []), body.get("setErrs", {})
    wanted, immediately = body.get("maxEvents", MAX_EVENTS), body.get("returnImmediately", False)
    if (
        not isinstance(ack, list)
        or not isinstance(errors, dict)
        or isinstance(wanted, bool)
        or not isinstance(wanted, int)
        or wanted < 0
        or not isinstance(immediately, bool)
    ):
        return _problem(400, "invalid_request", "ack, setErrs, maxEvents or returnImmediately is malformed")
    storage, now = host.storage, datetime.now(UTC)
    finished = []
    for jti in ack:
        seq = delivery_of(options, name, jti)
        if seq is not None:
            finished.append(FinishedDelivery(seq, "done", status=202))
    for jti, error in errors.items():
        seq = delivery_of(options, name, jti)
        if seq is not None:
            detail = error if isinstance(error, dict) else {}
            why = f"the receiver rejected it: {detail.get('err', '?')}: {str(detail.get('description', ''))[:200]}"
            finished.append(FinishedDelivery(seq, "dead", status=400, error=why))
    try:
        if finished:
            await storage.finish_deliveries(name, finished, now=now)
        stopping = request.app[STOPPING]
        sets = await _next_sets(host, name, options, min(wanted, MAX_EVENTS), wait=not immediately, stopping=stopping)
    except StorageError:
        return _problem(503, "invalid_request", "the store is unavailable; poll again")
    return web.json_response({"sets": sets, "moreAvailable": len(sets) == min(wanted, MAX_EVENTS) > 0})


async def _next_sets(
    host, name: str, options: SetPollSettings, limit: int, *, wait: bool, stopping: asyncio.Event
) -> dict[str, str]:
    """Claim up to `limit` due SETs (waiting for one up to `max_wait_seconds` unless told not
    to, or the server begins to stop), signed; by jti."""
    if limit == 0:
        return {}
    keys = load_keys(options.key_env)
    issuer = options.issuer or host.settings.server.base_url
    deadline = asyncio.get_running_loop().time() + (options.max_wait_seconds if wait else 0)
    while True:
        claimed = await host.storage.claim_deliveries(
            name, now=datetime.now(UTC), limit=limit, lease_seconds=options.inflight_seconds
        )
        sets = {}
        for delivery in claimed:
            data = envelope(delivery.event)["data"]
            made = payloads(data, options.mode)
            if not made:  # nothing SCIM shows changed (a remap): nothing to hand out
                await host.storage.finish_deliveries(
                    name, [FinishedDelivery(delivery.event.seq, "done")], now=datetime.now(UTC)
                )
                continue
            token_claims = claims(data, made[0][0], made[0][1], issuer=issuer, audience=options.audience)
            # One SET per event: its change and, beside it, an activation or deactivation.
            token_claims["events"] = dict(made)
            token_claims["jti"] = set_id(options, name, delivery.event.seq)
            sets[token_claims["jti"]] = signed(token_claims, keys[0])
        if sets or asyncio.get_running_loop().time() >= deadline or stopping.is_set():
            return sets
        await asyncio.sleep(POLL_STEP_SECONDS)
