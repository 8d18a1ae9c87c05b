"""`scimhost serve`: bind, migrate, then one process or several workers, drained on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from scimhost.admin import admin_token, anonymous_admin_warning, build_admin_app
from scimhost.app import build_app
from scimhost.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, config_of, setup_logging, storage_problem
from scimhost.host import Host, load_host
from scimhost.http.access_log import access_logger_for
from scimhost.http.protocol_log import protocol_logger
from scimhost.metrics import MULTIPROC_ENV
from scimhost.storage.backend import StorageError

log = logging.getLogger("scimhost")


def cmd_serve(args: argparse.Namespace) -> int:
    config = config_of(args)
    # Every process of this serve writes its metrics into one folder, so any of them can report
    # all. It must be chosen before prometheus_client is imported (the host's Metrics does).
    own_metrics_dir = None
    if os.environ.get(MULTIPROC_ENV):
        # A folder the operator chose: what an earlier run left there would be counted again.
        for stale in Path(os.environ[MULTIPROC_ENV]).glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        own_metrics_dir = tempfile.mkdtemp(prefix="scimhost-metrics-")
        os.environ[MULTIPROC_ENV] = own_metrics_dir
    try:
        return _serve(args, config)
    finally:
        if own_metrics_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def _serve(args: argparse.Namespace, config: Path | None) -> int:
    host = load_host(config)
    settings = host.settings
    setup_logging(args.log_level or settings.logging.level, settings.logging.format)
    address = args.host or settings.server.host
    port = settings.server.port if args.port is None else args.port
    workers = args.workers or settings.server.workers
    if workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    admin = settings.admin.address if settings.admin.enabled else None
    if admin:
        admin_token(settings)  # a token_env that is not set stops here, in one line
        warning = anonymous_admin_warning(settings)  # and an admin listener open to the network
        if warning:
            log.warning("%s", warning)
    if workers > 1 and (port == 0 or (admin and admin[1] == 0)):
        print("error: several workers need fixed ports, not 0 (for [server] port and [admin] listen)", file=sys.stderr)
        return EXIT_USAGE
    # Bind before anything else starts, so that a port in use is one line, not a traceback
    # after the store was opened and the workers spawned.
    sockets = []
    for host_name, port_number in [(address, port)] + ([admin] if admin else []):
        try:
            sockets.append(bind(host_name, port_number, reuse_port=workers > 1))
        except OSError as exc:
            print(f"error: cannot listen on {host_name}:{port_number}: {exc.strerror or exc}", file=sys.stderr)
            for sock in sockets:
                sock.close()
            return EXIT_FAILED
    served = (address, sockets[0].getsockname()[1])
    if served != (settings.server.host, settings.server.port):
        # --host, --port or port 0: the URLs the host prints and returns name what is served.
        host = load_host(config, listen=served)
    try:
        problem = asyncio.run(_prepare_storage(host, migrate=args.migrate))
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_FAILED
        if workers == 1:
            asyncio.run(serve_host(host, sockets[0], sockets[1] if admin else None))
            return EXIT_OK
        # The parent keeps its sockets bound (not listening: the kernel gives connections only
        # to the workers' listening sockets) so that no other program takes the ports meanwhile.
        return _run_workers(config, address, port, admin, workers, args.log_level)
    finally:
        for sock in sockets:
            sock.close()


def bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to the address; OSError when it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _prepare_storage(host: Host, *, migrate: bool) -> str | None:
    """Apply pending migrations (or, refusing to, say they are pending); the problem, if any."""
    try:
        if migrate:
            await host.storage.open(migrate=True)
            await host.storage.close()
            return None
        await host.storage.open(migrate=False, create=False)
        try:
            pending = await host.storage.pending_migrations()
        finally:
            await host.storage.close()
    except StorageError as exc:
        return f"storage: {storage_problem(host, exc)}"
    if pending:
        return (
            f"{len(pending)} migration(s) pending and --no-migrate was given: run `{host.settings.command('migrate')}`"
        )
    return None


LINGERING_SECONDS = 2.0


async def serve_host(host: Host, scim_socket: socket.socket, admin_socket: socket.socket | None) -> None:
    """Serve SCIM (and the admin listener) on bound sockets until SIGTERM or SIGINT, then stop
    accepting and drain in-flight requests."""
    settings = host.settings.server
    access_log = logging.getLogger("scimhost.access") if settings.access_log else None
    runner = web.AppRunner(
        build_app(host),
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        keepalive_timeout=settings.idle_timeout,
        # After an answer given before the whole body was read (408, 413), the rest of the body
        # is read and dropped this long, so the client sees the answer, then the connection closes.
        lingering_time=LINGERING_SECONDS,
        logger=protocol_logger(),
        access_log_class=access_logger_for(host.settings.logging),
        access_log=access_log,
    )
    admin_runner = None
    await runner.setup()  # opens the store, starts the mapping workers and the dispatcher
    try:
        await web.SockSite(runner, scim_socket).start()
        if admin_socket is not None:
            logs_admin = access_log is not None and host.settings.logging.log_health_and_metrics
            admin_runner = web.AppRunner(
                build_admin_app(host),
                handle_signals=False,
                shutdown_timeout=5,
                access_log_class=access_logger_for(host.settings.logging),
                access_log=access_log if logs_admin else None,
            )
            await admin_runner.setup()
            await web.SockSite(admin_runner, admin_socket).start()
        for bound in runner.addresses:
            log.info("listening on %s:%s", bound[0], bound[1])
        if admin_runner is not None:
            for bound in admin_runner.addresses:
                log.info("admin listener on http://%s:%s/", bound[0], bound[1])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down: draining in-flight requests (up to %ss)", settings.shutdown_timeout)
    finally:
        if admin_runner is not None:
            await admin_runner.cleanup()
        await runner.cleanup()


def _worker_main(config: Path | None, address: str, port: int, admin, workers: int, log_level: str | None) -> None:
    host = load_host(config, listen=(address, port))
    host.serve_share(workers)
    setup_logging(log_level or host.settings.logging.level, host.settings.logging.format)
    with contextlib.suppress(KeyboardInterrupt):
        scim_socket = bind(address, port, reuse_port=True)
        admin_socket = bind(*admin, reuse_port=True) if admin else None
        asyncio.run(serve_host(host, scim_socket, admin_socket))


def _run_workers(config: Path | None, address: str, port: int, admin, workers: int, log_level: str | None) -> int:
    # spawn, not fork: a forked worker would inherit the parent's connections and state.
    ctx = multiprocessing.get_context("spawn")
    processes = [
        ctx.Process(
            target=_worker_main, args=(config, address, port, admin, workers, log_level), name=f"scimhost-worker-{i}"
        )
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
    from prometheus_client import multiprocess  # not at module level: after cmd_serve chose the folder

    dead: set[int] = set()
    while any(p.is_alive() for p in processes):
        for process in processes:
            process.join(timeout=0.5)
            if not process.is_alive() and process.pid is not None and process.pid not in dead:
                dead.add(process.pid)
                multiprocess.mark_process_dead(process.pid)  # its live gauges stop counting
            if not process.is_alive() and not stopping:
                log.error("%s exited with code %s; stopping", process.name, process.exitcode)
                exit_code = EXIT_FAILED
                stop(signal.SIGTERM, None)
    return exit_code
