"""bench/ldap_store.py still runs against the current code (tiny sizes, its own slapd)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "ldap_store.py"


def test_the_ldap_benchmark_runs(slapd):  # the fixture: slapd is installed (or CI fails)
    result = subprocess.run(
        [sys.executable, str(BENCH), "--users", "20", "--group-size", "20", "--requests", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 14 and all(row["n"] > 0 for row in rows)
    assert any("slapd_cpu_ms" in row for row in rows)
