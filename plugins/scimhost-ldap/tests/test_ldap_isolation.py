"""Two sources on two subtrees of one directory never see each other's entries: the core's
property tests of isolation (tests/test_isolation.py: generated filters, sorting, paging,
projections, searches, and writes aimed at the other source's ids), run with the Users and
Groups in slapd. Filters the directory cannot answer exactly are refused (400 invalidFilter),
which those tests accept."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import ldap
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
import test_isolation  # noqa: E402
from live_server import LiveServer  # noqa: E402
from test_isolation import (  # noqa: E402, F401
    World,
    test_a_top_level_or_stays_inside_the_callers_source,
    test_another_sources_ids_are_unknown_to_every_endpoint,
    test_list_and_search_show_only_the_callers_resources,
    test_writes_aimed_at_another_source_change_nothing,
)

PASSWORD_ENV = "SCIMHOST_TEST_LDAP_ISOLATION_PASSWORD"


@pytest.fixture(scope="module")
def world(slapd, tmp_path_factory):
    base = f"ou=iso{uuid.uuid4().hex[:8]},{slapd.suffix}"
    raw = ldap.initialize(slapd.url)
    raw.simple_bind_s(slapd.root_dn, slapd.root_password)
    raw.add_s(base, [("objectClass", [b"organizationalUnit"]), ("ou", [base.split(",")[0][3:].encode()])])
    raw.unbind_s()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSWORD_ENV, slapd.root_password)
        # inetOrgPerson's mail is an IA5String: the directory refuses a non-ASCII address (400
        # invalidValue), so the shared data's "zoë@home.example" is spelt in ASCII here.
        shared = test_isolation.user_document

        def ascii_emails(spec, manager=None):
            document = shared(spec, manager)
            for email in document["emails"]:
                email["value"] = email["value"].replace("ë", "e")
            return document

        patch.setattr(test_isolation, "user_document", ascii_emails)
        config = {
            "server": {"public_url": "https://scim.example.test"},
            "storage": {
                "backend": "ldap",
                "ldap": {
                    "url": slapd.url,
                    "bind_dn": slapd.root_dn,
                    "bind_password_env": PASSWORD_ENV,
                    "base_dn": base,
                },
                "tortoise": {"url": f"sqlite://{tmp_path_factory.mktemp('ldap-isolation')}/scimhost.sqlite3"},
            },
            "sources": [{"slug": "demo", "name": "Demo"}, {"slug": "other", "name": "Other"}],
            "limits": {"source_rate_per_second": 0, "source_max_concurrent": 0},
        }
        server = LiveServer(config).start()
        try:
            yield World(server)
        finally:
            server.stop()
