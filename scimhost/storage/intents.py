"""An intent's event draft as JSON and back, for outboxes that keep intents as rows."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from scimhost.storage.values import EventDraft


def draft_json(draft: EventDraft) -> str:
    """The draft as a JSON text (its sinks as a list)."""
    return orjson.dumps(dataclasses.asdict(draft)).decode()


def draft_from_json(text: str | bytes) -> EventDraft:
    """The draft `draft_json` wrote."""
    fields: dict[str, Any] = orjson.loads(text)
    fields["sinks"] = tuple(fields.get("sinks") or ())
    return EventDraft(**fields)
