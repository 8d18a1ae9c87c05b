"""A mapping runtime that takes seconds to construct, as a worker's start-up does on a busy
machine (imported by the worker processes of tests/test_mappings.py)."""

import time

from scimhost.builtin.restrictedpython_runtime import RestrictedPythonRuntime

START_SECONDS = 2.5


class SlowStartingRuntime(RestrictedPythonRuntime):
    name = "slow-starting"

    def __init__(self) -> None:
        time.sleep(START_SECONDS)
        super().__init__()
