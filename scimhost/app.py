"""The aiohttp application: `create_app(config, plugins=...)`; the app owns its whole host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from scimhost.delivery.dispatcher import Dispatcher, DispatchSettings
from scimhost.faults import fault_point
from scimhost.host import Host, load_host
from scimhost.http.keys import HOST, STOPPING
from scimhost.http.middlewares import body_limit, plain_errors, request_ids, scim_errors, source_auth
from scimhost.http.observe import label_routes, observed
from scimhost.http.routes import setup_routes
from scimhost.reindex import reindex_stale
from scimhost.retention import PURGE_EVERY_SECONDS, purge_expired_deleted
from scimhost.storage.backend import StorageError
from scimhost.storage.composed import ComposedStorage

log = logging.getLogger("scimhost")


def create_app(
    config: Path | Mapping[str, Any] | None = None,
    *,
    plugins: Iterable[tuple[str, object]] = (),
    environ: Mapping[str, str] | None = None,
) -> web.Application:
    """An application for the config (TOML path or parsed document) and installed plugins.

    `plugins` adds (name, plugin) pairs beside the entry points.
    """
    return build_app(load_host(config, plugins=plugins, environ=environ))


def build_app(host: Host) -> web.Application:
    """An application serving an already loaded host."""
    app = web.Application(
        middlewares=[request_ids, observed, plain_errors, scim_errors, body_limit, source_auth],
        client_max_size=host.settings.server.max_body_bytes,
    )
    app[HOST] = host
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_stopping)
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_mapping_workers)
    app.cleanup_ctx.append(_dispatcher)
    app.cleanup_ctx.append(_sampler)
    app.cleanup_ctx.append(_purging)
    app.cleanup_ctx.append(_reindexing)
    app.cleanup_ctx.append(_recovering)
    setup_routes(app)
    label_routes(app)
    return app


async def _stopping(app: web.Application) -> None:
    """Shutdown begins: requests still receiving their bodies are answered at once (bodies.py)."""
    app[STOPPING].set()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    host = app[HOST]
    await host.storage.open(migrate=True)
    try:
        await host.ensure_service_accounts()
        await _log_sources(host)
        yield
    finally:
        await host.storage.close()


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    async with run_dispatcher(app[HOST]):
        yield


@contextlib.asynccontextmanager
async def run_dispatcher(host: Host, *, force: bool = False) -> AsyncIterator[None]:
    """Run the event dispatcher in this process while the context lasts, when sinks are
    configured and `[events] dispatcher` allows it (or `force`): one process of all that share
    the database delivers at a time, the lease decides which."""
    events = host.settings.events
    if not events.sinks or not (events.dispatcher or force):
        yield
        return
    sinks = {}
    try:
        for settings in events.sinks:
            sink = host.registry.event_sinks[settings.type](settings.options, sink_name=settings.name)
            sink.public_url = host.settings.server.base_url
            await sink.start()
            sinks[settings.name] = (sink, settings.concurrency)
        dispatcher = Dispatcher(
            host.storage,
            sinks,
            owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            settings=DispatchSettings(poll_seconds=events.poll_seconds),
            after_send=lambda: fault_point(host.faults, "after_send"),
            outcome=lambda sink, outcome: host.metrics.deliveries.labels(sink, outcome).inc(),
        )
        host.dispatcher = dispatcher
        task = asyncio.create_task(dispatcher.run(), name="scimhost-dispatcher")
        try:
            yield
        finally:
            host.dispatcher = None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        for sink, _ in sinks.values():
            with contextlib.suppress(Exception):
                await sink.close()


# How often a process adds its counted activity to the store and samples its pool gauges.
ACTIVITY_FLUSH_SECONDS = 5.0
POOL_SAMPLE_SECONDS = 1.0


async def _sampler(app: web.Application) -> AsyncIterator[None]:
    """Sample the mapping pools into gauges and add counted activity to the store, in the
    background; the last counts are added at shutdown."""
    host = app[HOST]

    async def run() -> None:
        since_flush = 0.0
        while True:
            await asyncio.sleep(POOL_SAMPLE_SECONDS)
            sample_pools(host)
            since_flush += POOL_SAMPLE_SECONDS
            if since_flush >= ACTIVITY_FLUSH_SECONDS:
                since_flush = 0.0
                await host.activity.flush(host.storage)

    sample_pools(host)
    try:
        async with _running(run(), "scimhost-sampler"):
            yield
    finally:
        await host.activity.flush(host.storage)  # the last counts, once the sampler has stopped


@contextlib.asynccontextmanager
async def _running(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """`work` as a task for as long as the context lasts, cancelled and awaited at its end."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _purging(app: web.Application) -> AsyncIterator[None]:
    """Purge soft-deleted resources past their source's retention, hourly, in the background."""
    host = app[HOST]
    if not any(source.settings.on_delete == "soft" for source in host.sources.values()):
        yield
        return

    async def run() -> None:
        while True:
            try:
                await purge_expired_deleted(host, now=datetime.now(UTC))
            except StorageError as exc:
                log.warning("purging soft-deleted resources failed: %s", exc)
            await asyncio.sleep(PURGE_EVERY_SECONDS)

    async with _running(run(), "scimhost-purge"):
        yield


# How often a process decides intents left open (resources and events in two stores).
RECOVER_EVERY_SECONDS = 15.0


async def _recovering(app: web.Application) -> AsyncIterator[None]:
    """Where resources and events live in two stores, decide the intents a dead process left
    (scimhost.storage.composed): at start and then every RECOVER_EVERY_SECONDS."""
    storage = app[HOST].storage
    if not isinstance(storage, ComposedStorage) or not storage.split:
        yield
        return

    async def run() -> None:
        while True:
            try:
                counts = await storage.recover_intents()
                if any(counts.values()):
                    log.info("recovered intents: %(settled)d settled, %(abandoned)d abandoned", counts)
            except StorageError as exc:
                log.warning("deciding open intents failed: %s", exc)
            await asyncio.sleep(RECOVER_EVERY_SECONDS)

    async with _running(run(), "scimhost-recovery"):
        yield


def sample_pools(host: Host) -> None:
    metrics = host.metrics
    for runtime, (size, busy, waiting) in host.mappings.pool_stats().items():
        metrics.mapping_pool_workers.labels(runtime).set(size)
        metrics.mapping_pool_busy.labels(runtime).set(busy)
        metrics.mapping_pool_queue.labels(runtime).set(waiting)


async def _mapping_workers(app: web.Application) -> AsyncIterator[None]:
    mappings = app[HOST].mappings
    await mappings.start()
    try:
        yield
    finally:
        await mappings.close()


async def _log_sources(host: Host) -> None:
    log.info("storage: %s", host.storage.describe())
    for warning in host.config_warnings():
        log.warning("%s", warning)
    accounts = {account.source: account for account in await host.storage.service_accounts()}
    if not host.sources:
        log.warning("no sources are configured: add a [[sources]] table to serve SCIM")
    for source in host.sources.values():
        if source.token_from_env:
            token = f"from ${source.settings.token_env}"
        elif accounts.get(source.slug) and accounts[source.slug].has_token:
            token = "issued"
        else:
            token = f"none yet (run: {host.settings.command(f'sources token {source.slug}')})"
        log.info("source %s: %s token: %s", source.slug, source.base_url, token)


async def _reindexing(app: web.Application) -> AsyncIterator[None]:
    """Rebuild, in the background after start, the index rows of resources stored under another
    index configuration (`scimhost migrate` does it before; this finds what is left)."""
    host = app[HOST]

    async def run() -> None:
        try:
            await reindex_stale(host)
        except StorageError as exc:
            log.warning("rebuilding stale index rows failed: %s", exc)

    async with _running(run(), "scimhost-reindex"):
        yield
