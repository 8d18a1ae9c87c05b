"""A throwaway OpenLDAP server (Debian's slapd) in a temporary directory on a loopback port,
for tests and benchmarks: `async with Slapd.running() as slapd: ...`."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
OWN_SCHEMA = Path(__file__).with_name("scimhost.schema")
SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "secret"

CONFIG = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {own_schema}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload sssvlv
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
sizelimit unlimited
database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {dir}/db
maxsize 1073741824
# Tests and benchmarks measure scimhost, not the disk: no fsync per write.
dbnosync
index objectClass eq
index entryUUID eq
index uid,cn,mail,displayName,employeeNumber,scimhostExternalId eq,sub
index scimhostCreated eq
index member eq
overlay sssvlv
sssvlv-max 64
sssvlv-maxperconn 16
"""


def available() -> str | None:
    """Why a slapd cannot be started here, or None."""
    for program in (SLAPD, SLAPADD):
        if not Path(program).exists():
            return f"{program} is missing (Debian packages slapd and ldap-utils)"
    return None


@dataclass(frozen=True)
class Slapd:
    """A running throwaway server."""

    url: str
    suffix: str
    root_dn: str
    root_password: str
    directory: Path

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[Slapd]:
        directory = Path(tempfile.mkdtemp(prefix="scimhost-slapd-"))
        (directory / "db").mkdir()
        config = directory / "slapd.conf"
        config.write_text(
            CONFIG.format(
                schema=SCHEMA_DIR,
                own_schema=OWN_SCHEMA,
                dir=directory,
                suffix=SUFFIX,
                root_dn=ROOT_DN,
                root_password=ROOT_PASSWORD,
            )
        )
        base = directory / "base.ldif"
        base.write_text(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n")
        subprocess.run([SLAPADD, "-q", "-f", str(config), "-l", str(base)], check=True, capture_output=True)
        port = _free_port()
        url = f"ldap://127.0.0.1:{port}"
        log = open(directory / "slapd.log", "wb")  # noqa: SIM115 - open for the server's life
        process = subprocess.Popen(
            [SLAPD, "-f", str(config), "-h", url + "/", "-d", os.environ.get("SCIMHOST_SLAPD_DEBUG", "0")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(port, process, directory)
            yield cls(url, SUFFIX, ROOT_DN, ROOT_PASSWORD, directory)
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            shutil.rmtree(directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited: {(directory / 'slapd.log').read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("slapd did not start listening within 10 s")


__all__ = ["Slapd", "available"]
