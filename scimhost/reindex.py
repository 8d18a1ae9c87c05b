"""Rebuilding the index rows of resources stored under another index configuration (a schema,
an extension or `[[indexes]]` changed since they were written), so that no filter matches a
row the current configuration would not give."""

from __future__ import annotations

import logging

from scimhost.host import Host
from scimhost.scim.index import index_entries, unique_values
from scimhost.storage.backend import UniquenessConflict

log = logging.getLogger("scimhost.reindex")

BATCH = 200


async def reindex_stale(host: Host) -> int:
    """Rebuild the rows of every stale resource of every source; how many were rebuilt. A
    resource written meanwhile is skipped (its write rebuilt them); one whose value another
    resource holds under a new uniqueness rule is left as it is, with a warning."""
    rebuilt = 0
    for source in host.sources.values():
        for resource_type in source.catalog.resource_types.values():
            fingerprint, after = resource_type.index_fingerprint, None
            while stale := await host.storage.stale_index(
                source.slug, resource_type.name, fingerprint, after=after, limit=BATCH
            ):
                for resource in stale:
                    try:
                        rebuilt += await host.storage.reindex_resource(
                            source.slug,
                            resource_type.name,
                            resource.id,
                            version=resource.version,
                            index=index_entries(resource.document, resource_type),
                            unique_values=unique_values(resource.document, resource_type),
                            fingerprint=fingerprint,
                        )
                    except UniquenessConflict as exc:
                        log.warning(
                            "source %s: %s %s keeps its old index rows: its %s is another's too",
                            source.slug,
                            resource_type.name,
                            resource.id,
                            exc.attribute,
                        )
                after = stale[-1].id
    if rebuilt:
        log.info("rebuilt the index rows of %d resources stored under another index configuration", rebuilt)
    return rebuilt
