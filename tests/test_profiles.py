"""`profile = "ipsie-al1"`: the strict choices at once, and `check` naming the profile's rules a
source's configuration does not meet."""

from __future__ import annotations

import pytest
from helpers import ScimClient, make_config

from scimhost.app import create_app
from scimhost.cli import main
from scimhost.config import ConfigError
from scimhost.host import load_host
from scimhost.http.keys import HOST


def test_the_ipsie_profile_chooses_the_strict_settings(tmp_path):
    pytest.importorskip("scimhost_oauth")
    config = make_config(
        f"sqlite://{tmp_path}/db.sqlite3", sources=[{"slug": "idp", "name": "IdP", "profile": "ipsie-al1"}]
    )
    host = load_host(config)
    settings = host.sources["idp"].settings
    assert (settings.passwords, settings.auth) == ("refuse", ("oauth",))
    assert host.sources["idp"].limits.rate_per_second > 0 and host.sources["idp"].limits.max_concurrent > 0
    assert [w for w in host.config_warnings() if "profile" in w] == []


async def test_an_ipsie_source_refuses_passwords_over_http(aiohttp_client, storage_url):
    config = make_config(
        storage_url, sources=[{"slug": "idp", "name": "IdP", "profile": "ipsie-al1", "auth": ["bearer"]}]
    )
    client = await aiohttp_client(create_app(config))
    scim = ScimClient(client, "idp", await client.app[HOST].issue_token("idp"))
    refused = await scim.json("POST", "/Users", {"userName": "a", "password": "x"}, expect=400)
    assert refused["scimType"] == "invalidValue"


def test_check_names_each_rule_a_profile_source_does_not_meet(tmp_path, capsys):
    path = tmp_path / "scimhost.toml"
    path.write_text(
        '[[sources]]\nslug = "loose"\nname = "Loose"\nprofile = "ipsie-al1"\npasswords = "hash"\nauth = ["bearer"]\n'
        "[sources.limits]\nsource_rate_per_second = 0\n"
    )
    assert main(["-c", str(path), "migrate"]) == 0
    capsys.readouterr()
    assert main(["-c", str(path), "check"]) == 0
    err = capsys.readouterr().err
    gaps = [line for line in err.splitlines() if "(profile ipsie-al1)" in line]
    assert len(gaps) == 3, err
    assert any("passwords = 'hash'" in line for line in gaps)
    assert any("rate limit is off" in line for line in gaps)
    assert any("auth lists bearer" in line for line in gaps)


def test_an_unknown_profile_is_a_config_error(tmp_path):
    config = make_config(
        f"sqlite://{tmp_path}/db.sqlite3", sources=[{"slug": "idp", "name": "IdP", "profile": "ipsie"}]
    )
    with pytest.raises(ConfigError, match="profile: must be one of ipsie-al1"):
        load_host(config)
