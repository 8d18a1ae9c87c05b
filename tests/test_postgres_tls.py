"""TLS to PostgreSQL with libpq's URL options, against the machine's server switched to TLS with
a throwaway certificate authority for the length of this module."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import pytest
from helpers import bearer, make_config

from scimhost.app import create_app
from scimhost.builtin.tortoise_storage.statements import Params
from scimhost.config import ConfigError
from scimhost.host import load_host
from scimhost.http.keys import HOST
from scimhost.storage.backend import StorageError
from scimhost.testing_databases import IN_CI


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def certificate_authority(folder: Path, name: str) -> None:
    """`<name>.key` and a self-signed `<name>.pem` that may sign server certificates."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=folder)  # fmt: skip


def server_certificate(folder: Path, ca: str) -> None:
    """`server.key` and `server.pem` for 127.0.0.1 and localhost, signed by the CA."""
    (folder / "san.cnf").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.cnf", "-out", "server.pem", cwd=folder)  # fmt: skip


async def set_server_tls(postgres_url: str, folder: Path | None) -> None:
    """Switch the server's TLS on with the folder's certificate, or back to its own settings."""
    admin = await asyncpg.connect(postgres_url)
    try:
        if folder is None:
            for name in ("ssl", "ssl_cert_file", "ssl_key_file"):
                await admin.execute(f"ALTER SYSTEM RESET {name}")
        else:
            await admin.execute(f"ALTER SYSTEM SET ssl_cert_file = '{folder / 'server.pem'}'")
            await admin.execute(f"ALTER SYSTEM SET ssl_key_file = '{folder / 'server.key'}'")
            await admin.execute("ALTER SYSTEM SET ssl = on")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()
    for _ in range(50):  # the reload is a signal: new connections see it shortly after
        probe = await asyncpg.connect(postgres_url, ssl=False)
        on = await probe.fetchval("SHOW ssl")
        await probe.close()
        if (on == "on") == (folder is not None):
            return
        await asyncio.sleep(0.1)
    pytest.fail("the PostgreSQL server did not switch TLS (see its log)")


@pytest.fixture(scope="module")
def tls_server(postgres_url):
    """The machine's PostgreSQL serving TLS with a certificate of a new CA; the folder of the
    CA's files. The server's settings are reset afterwards."""
    problem = None
    if shutil.which("openssl") is None:
        problem = "openssl is not installed"
    elif os.geteuid() != 0:
        problem = "the server's key must be given to the postgres user, which needs root"
    if problem:
        if IN_CI:
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    folder = Path(tempfile.mkdtemp(prefix="scimhost-pg-tls-"))
    folder.chmod(0o755)  # the server process reads its certificate from here
    certificate_authority(folder, "ca")
    certificate_authority(folder, "other-ca")
    server_certificate(folder, "ca")
    postgres = pwd.getpwnam("postgres")
    for name in ("server.key", "server.pem"):
        os.chown(folder / name, postgres.pw_uid, postgres.pw_gid)
    (folder / "server.key").chmod(0o600)
    try:
        asyncio.run(set_server_tls(postgres_url, folder))
        yield folder
    finally:
        asyncio.run(set_server_tls(postgres_url, None))
        shutil.rmtree(folder, ignore_errors=True)


def tls_url(schema_url: str, **options: str) -> str:
    return schema_url + "".join(f"&{key}={value}" for key, value in options.items())


async def connection_is_tls(host) -> bool:
    database = host.storage.database
    [row] = await database.rows(
        Params(database.dialect).query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    )
    return bool(row[0] if isinstance(row, tuple | list) else row["ssl"])


@pytest.mark.parametrize("mode", ["verify-full", "verify-ca", "require"])
async def test_sslmode_connects_over_tls_and_serves_scim(tls_server, postgres_schema_url, aiohttp_client, mode):
    url = tls_url(postgres_schema_url, sslmode=mode, sslrootcert=str(tls_server / "ca.pem"))
    if mode == "require":
        url = tls_url(postgres_schema_url, sslmode=mode)  # encrypted, the certificate not checked
    client = await aiohttp_client(create_app(make_config(url)))
    token = await client.app[HOST].issue_token("demo")
    created = await client.post("/source/scim/demo/v2/Users", json={"userName": "tls"}, headers=bearer(token))
    assert created.status == 201
    found = await client.get('/source/scim/demo/v2/Users?filter=userName eq "tls"', headers=bearer(token))
    assert (await found.json())["totalResults"] == 1
    assert await connection_is_tls(client.app[HOST])


async def test_a_server_certificate_of_another_authority_is_refused_in_one_line(tls_server, postgres_schema_url):
    url = tls_url(postgres_schema_url, sslmode="verify-full", sslrootcert=str(tls_server / "other-ca.pem"))
    host = load_host(make_config(url))
    with pytest.raises(StorageError, match="certificate verify failed"):
        await host.storage.open()


def test_unknown_sslmode_and_unreadable_certificates_are_config_errors(tmp_path, postgres_url):
    with pytest.raises(ConfigError, match="sslmode must be one of disable, allow, prefer, require"):
        load_host(make_config(f"{postgres_url}?sslmode=yes"))
    with pytest.raises(ConfigError, match="sslcert and sslkey go together"):
        load_host(make_config(f"{postgres_url}?sslmode=require&sslcert=client.pem"))
    with pytest.raises(StorageError, match="TLS certificate files cannot be used"):
        load_host(make_config(f"{postgres_url}?sslmode=verify-full&sslrootcert={tmp_path}/missing.pem"))
