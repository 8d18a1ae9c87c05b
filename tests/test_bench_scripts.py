"""The benchmark scripts still run against the current storage code (tiny sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_seed_script_seeds_users_groups_and_members(tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(
        '[storage.tortoise]\nurl = "sqlite://./bench.sqlite3"\n[[sources]]\nslug = "bench"\nname = "Benchmark"\n'
    )
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "seed.py"),
            "-c",
            str(config),
            "--users",
            "30",
            "--groups",
            "3",
            "--batch",
            "10",
            "--group-members",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "seeded 30 users and 3 groups" in result.stdout
    assert "has 20 members" in result.stdout


def test_event_log_benchmark_runs(tmp_path):
    import pytest

    pytest.importorskip("scimhost_webhook")
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "event_log.py"),
            "--url",
            f"sqlite://{tmp_path}/events.sqlite3",
            "--writes",
            "20",
            "--lag-writes",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| create, event, two sinks |" in result.stdout and "events/s" in result.stdout


def test_initial_sync_script_replays_a_first_cycle():
    from serving import free_port

    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "initial_sync.py"),
            "--storage",
            "sqlite",
            "--users",
            "20",
            "--slice",
            "10",
            "--group-size",
            "5",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "| 20 |" in result.stdout and "membership check" in result.stdout


def test_slow_receiver_benchmark_runs():
    import pytest

    pytest.importorskip("scimhost_webhook")
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "slow_receiver.py"),
            "--seconds",
            "1",
            "--rate",
            "20",
            "--users",
            "3",
            "--slow-seconds",
            "0.3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "one user slow (0.3 s) at hook:" in result.stdout and "commit to receipt p50" in result.stdout


def test_rate_limits_benchmark_runs():
    import shutil

    import pytest

    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    from serving import free_port

    result = subprocess.run(
        [sys.executable, str(BENCH / "rate_limits.py"), "--seconds", "1", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "limiter's CPU per GET" in result.stdout and "| beside the flood |" in result.stdout


def test_sets_benchmark_runs():
    import pytest

    pytest.importorskip("scimhost_set")
    result = subprocess.run(
        [sys.executable, str(BENCH / "sets.py"), "--writes", "40", "--rate", "20", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "| set-push |" in result.stdout and "| set-poll |" in result.stdout and "| webhook |" in result.stdout
