"""The server's log of malformed HTTP traffic: one WARNING line per bad request, no traceback,
and a bounded number of lines a minute, so junk sent to the port cannot flood the logs."""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

LOGGER_NAME = "scimhost.protocol"
# Lines about malformed requests per process per minute; the rest are counted and summed up.
LINES_PER_MINUTE = 20


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's traceback for a request it could not parse into one short WARNING line."""

    def __init__(self, lines_per_minute: int = LINES_PER_MINUTE) -> None:
        super().__init__()
        self.lines_per_minute = lines_per_minute
        self._window_start = float("-inf")
        self._lines = 0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True  # anything else (a failing handler) keeps its level and traceback
        now = time.monotonic()
        if now - self._window_start >= 60:
            if self._suppressed:
                record.suppressed_before = self._suppressed
            self._window_start, self._lines, self._suppressed = now, 0, 0
        if self._lines >= self.lines_per_minute:
            self._suppressed += 1
            return False
        self._lines += 1
        reason = (getattr(exc, "message", "") or type(exc).__name__).splitlines()[0][:200]
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        message = f"malformed HTTP request from {remote}: {type(exc).__name__}: {reason}"
        suppressed = getattr(record, "suppressed_before", 0)
        if suppressed:
            message += f" ({suppressed} more in the previous minute not logged)"
        record.msg, record.args = message, ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


def protocol_logger() -> logging.Logger:
    """The logger the server's connections report to (aiohttp's `logger` argument)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
    return logger
