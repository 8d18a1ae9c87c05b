"""Test-only fault points: the process kills itself (SIGKILL) at a named point of its work when
the environment variable SCIMHOST_FAULT names that point, read once when the host loads.

They exist to prove what survives a crash at the worst moments: `after_commit` (a write is
committed, nothing after it has run) and `after_send` (a sink received an event, the dispatcher
has not recorded it), and where resources and events live in two stores, `after_intent` (the
intent is recorded, the resource store not yet written) and `after_resource_write` (written, the
intent not yet settled). Unset, they cost one set lookup.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

FAULT_ENV = "SCIMHOST_FAULT"
POINTS = frozenset({"after_commit", "after_send", "after_intent", "after_resource_write"})


def armed_points(environ: Mapping[str, str]) -> frozenset[str]:
    """The fault points the environment arms (comma-separated names)."""
    names = {name.strip() for name in environ.get(FAULT_ENV, "").split(",") if name.strip()}
    unknown = names - POINTS
    if unknown:
        raise ValueError(f"{FAULT_ENV}: unknown fault points {', '.join(sorted(unknown))}")
    return frozenset(names)


def fault_point(armed: frozenset[str], name: str) -> None:
    """Die here, at once and without cleanup, if this point is armed."""
    if name in armed:
        os.kill(os.getpid(), signal.SIGKILL)
