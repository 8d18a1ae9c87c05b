"""Each source's requests and errors per minute, counted in this process and added to the store
every few seconds (the admin page's "requests and errors in the last hour" spans processes and
hosts)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scimhost.storage.backend import StorageBackend, StorageError

log = logging.getLogger(__name__)

# Minutes older than this are deleted as new ones are written.
KEEP = timedelta(days=2)


@dataclass
class _Minute:
    requests: int = 0
    errors: int = 0
    last_error_at: datetime | None = None
    last_error: str | None = None


class ActivityRecorder:
    """Counts requests per source and minute until `flush` adds them to the store."""

    def __init__(self) -> None:
        # (source, minutes since the epoch) -> counts: every request adds to one (cheaply).
        self._pending: dict[tuple[str, int], _Minute] = {}
        self._pruned: datetime | None = None

    def request(self, source: str, *, error: str | None = None) -> None:
        """One request the source made; `error` describes it when it was answered with one."""
        now = time.time()
        key = (source, int(now // 60))
        minute = self._pending.get(key)
        if minute is None:
            minute = self._pending[key] = _Minute()
        minute.requests += 1
        if error is not None:
            minute.errors += 1
            minute.last_error_at, minute.last_error = datetime.fromtimestamp(now, UTC), error[:500]

    async def flush(self, storage: StorageBackend) -> None:
        """Add what was counted to the store (kept for the next flush if the store fails)."""
        pending, self._pending = self._pending, {}
        try:
            for (source, minute), counts in pending.items():
                await storage.record_activity(
                    source,
                    datetime.fromtimestamp(minute * 60, UTC),
                    requests=counts.requests,
                    errors=counts.errors,
                    last_error_at=counts.last_error_at,
                    last_error=counts.last_error,
                )
                counts.requests = counts.errors = 0
                counts.last_error_at = counts.last_error = None
            now = datetime.now(UTC)
            if self._pruned is None or now - self._pruned > timedelta(hours=1):
                self._pruned = now
                await storage.prune_activity(before=now - KEEP)
        except StorageError as exc:
            log.warning("could not record source activity (kept for the next try): %s", exc)
            self._restore(pending)
        except BaseException:  # cancelled mid-flush (shutdown): the final flush takes the rest
            self._restore(pending)
            raise

    def _restore(self, pending: dict[tuple[str, int], _Minute]) -> None:
        """Keep the counts a failed flush did not write (those written were zeroed)."""
        for key, counts in pending.items():
            if counts.requests:
                self._merge(key, counts)

    def _merge(self, key: tuple[str, int], counts: _Minute) -> None:
        minute = self._pending.setdefault(key, _Minute())
        minute.requests += counts.requests
        minute.errors += counts.errors
        if counts.last_error_at and (minute.last_error_at is None or counts.last_error_at > minute.last_error_at):
            minute.last_error_at, minute.last_error = counts.last_error_at, counts.last_error
