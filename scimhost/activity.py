"""Each source's requests and errors per minute, and its failed requests, counted in this process
and added to the store every few seconds (the admin page's "requests and errors in the last
hour" spans processes and hosts)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scimhost.storage.backend import FailedRequest, StorageBackend, StorageError

log = logging.getLogger(__name__)

# Minutes older than this are deleted as new ones are written.
KEEP = timedelta(days=2)
# Failed requests kept per source between two flushes: a client failing in a loop is counted in
# full, but listed only this often.
FAILURES_PER_FLUSH = 50


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
        self._failures: dict[str, list[FailedRequest]] = {}
        self._pruned: datetime | None = None

    def request(self, source: str, *, failed: FailedRequest | None = None) -> None:
        """One request the source made; `failed` when it was answered with an error."""
        now = time.time()
        key = (source, int(now // 60))
        minute = self._pending.get(key)
        if minute is None:
            minute = self._pending[key] = _Minute()
        minute.requests += 1
        if failed is not None:
            minute.errors += 1
            minute.last_error_at, minute.last_error = failed.at, summary(failed)[:500]
            kept = self._failures.setdefault(source, [])
            if len(kept) < FAILURES_PER_FLUSH:
                kept.append(failed)

    async def flush(self, storage: StorageBackend) -> None:
        """Add what was counted to the store (kept for the next flush if the store fails)."""
        pending, self._pending = self._pending, {}
        failures, self._failures = self._failures, {}
        try:
            for source in list(failures):
                await storage.record_failed_requests(source, failures[source])
                del failures[source]
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
            self._restore(pending, failures)
        except BaseException:  # cancelled mid-flush (shutdown): the final flush takes the rest
            self._restore(pending, failures)
            raise

    def _restore(self, pending: dict[tuple[str, int], _Minute], failures: dict[str, list[FailedRequest]]) -> None:
        """Keep the counts and failures a failed flush did not write (those written were zeroed
        or removed)."""
        for key, counts in pending.items():
            if counts.requests:
                self._merge(key, counts)
        for source, kept in failures.items():
            self._failures[source] = (kept + self._failures.get(source, []))[:FAILURES_PER_FLUSH]

    def _merge(self, key: tuple[str, int], counts: _Minute) -> None:
        minute = self._pending.setdefault(key, _Minute())
        minute.requests += counts.requests
        minute.errors += counts.errors
        if counts.last_error_at and (minute.last_error_at is None or counts.last_error_at > minute.last_error_at):
            minute.last_error_at, minute.last_error = counts.last_error_at, counts.last_error


def summary(failed: FailedRequest) -> str:
    """`METHOD path status scimType: detail`, the admin page's last error."""
    detail = f"{failed.scim_type}: " if failed.scim_type else ""
    detail += failed.detail
    return f"{failed.method} {failed.path} {failed.status} {detail}".strip()
