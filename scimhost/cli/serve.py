"""`scimhost serve`: one process or several workers, drained on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import signal
import sys
from pathlib import Path

from aiohttp import web

from scimhost.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, config_of, setup_logging
from scimhost.app import build_app
from scimhost.host import Host, load_host
from scimhost.http.access_log import JsonAccessLogger
from scimhost.http.protocol_log import protocol_logger

log = logging.getLogger("scimhost")


def cmd_serve(args: argparse.Namespace) -> int:
    config = config_of(args)
    host = load_host(config)
    server = host.settings.server
    address = args.host or server.host
    port = server.port if args.port is None else args.port
    workers = args.workers or server.workers
    if workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if workers == 1:
        asyncio.run(serve_host(host, address, port, reuse_port=False))
        return EXIT_OK
    if port == 0:
        print("error: several workers need a fixed port, not 0", file=sys.stderr)
        return EXIT_USAGE
    # Migrate once before the workers start, so they never race to change the schema.
    asyncio.run(_migrate(host))
    return _run_workers(config, address, port, workers, args.log_level)


LINGERING_SECONDS = 2.0


async def serve_host(host: Host, address: str, port: int, *, reuse_port: bool) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and drain in-flight requests."""
    settings = host.settings.server
    runner = web.AppRunner(
        build_app(host),
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        keepalive_timeout=settings.idle_timeout,
        # After an answer given before the whole body was read (408, 413), the rest of the body
        # is read and dropped this long, so the client sees the answer, then the connection closes.
        lingering_time=LINGERING_SECONDS,
        logger=protocol_logger(),
        access_log_class=JsonAccessLogger,
        access_log=logging.getLogger("scimhost.access") if settings.access_log else None,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, address, port, reuse_port=reuse_port or None)
        await site.start()
        for bound in runner.addresses:
            log.info("listening on %s:%s", bound[0], bound[1])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down: draining in-flight requests (up to %ss)", settings.shutdown_timeout)
    finally:
        await runner.cleanup()


async def _migrate(host: Host) -> None:
    await host.storage.open(migrate=True)
    await host.storage.close()


def _worker_main(config: Path | None, address: str, port: int, log_level: str) -> None:
    setup_logging(log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_host(load_host(config), address, port, reuse_port=True))


def _run_workers(config: Path | None, address: str, port: int, workers: int, log_level: str) -> int:
    # spawn, not fork: a forked worker would inherit the parent's connections and state.
    ctx = multiprocessing.get_context("spawn")
    processes = [
        ctx.Process(target=_worker_main, args=(config, address, port, log_level), name=f"scimhost-worker-{i}")
        for i in range(workers)
    ]
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker drains its requests

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    log.info("started %d workers on %s:%s", workers, address, port)
    exit_code = EXIT_OK
    # A worker that dies on its own takes the others down: a supervisor restarts the whole.
    while any(p.is_alive() for p in processes):
        for process in processes:
            process.join(timeout=0.5)
            if not process.is_alive() and not stopping:
                log.error("%s exited with code %s; stopping", process.name, process.exitcode)
                exit_code = EXIT_FAILED
                stop(signal.SIGTERM, None)
    return exit_code
