"""Forgetting what is kept for a time: each source's soft-deleted resources, once older than
its `soft_delete_days` (the event log has its own `scimhost events prune`)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from scimhost.host import Host

log = logging.getLogger("scimhost.retention")

# How often a serving process purges (a purge with nothing to do is one indexed query a source).
PURGE_EVERY_SECONDS = 3600.0


async def purge_expired_deleted(
    host: Host, *, now: datetime, everything: bool = False, only: str | None = None
) -> dict[str, int]:
    """Purge each source's (or `only` that one's) soft-deleted resources past its retention
    (or all of them, with `everything`); how many per source. Backends without soft delete
    hold none."""
    if "soft_delete" not in host.storage.features:
        return {}
    purged = {}
    for slug, source in host.sources.items():
        if only is not None and slug != only:
            continue
        before = now if everything else now - timedelta(days=source.settings.soft_delete_days)
        purged[slug] = await host.storage.purge_deleted(slug, before=before)
        if purged[slug]:
            log.info("source %s: purged %d soft-deleted resources", slug, purged[slug])
    return purged
