"""The one form people read times in, on the admin pages and in the commands' text output:
`2026-12-06 20:05:31 UTC` (JSON output keeps ISO 8601)."""

from __future__ import annotations

from datetime import UTC, datetime


def shown(value: datetime | str | None) -> str:
    """A moment (a datetime or an ISO 8601 text; naive means UTC) as people read it; "" for none."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
