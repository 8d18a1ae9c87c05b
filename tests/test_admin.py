"""The admin listener through HTTP: pages, their JSON API, /metrics, and its own token."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime

import pytest
from helpers import ScimClient, bearer, make_config, metric, patch_op

from scimhost.admin import build_admin_app
from scimhost.admin.auth import COOKIE
from scimhost.app import create_app
from scimhost.http.keys import HOST

WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


ADMIN_TOKEN = "the-admin-token-of-at-least-32-characters"


async def admin_for(aiohttp_client, scim_client, environ=None):
    """A test client of the admin app of the host `scim_client` serves (which opened the store)."""
    return await aiohttp_client(build_admin_app(scim_client.app[HOST], environ=environ))


@pytest.fixture
async def admin(aiohttp_client, client):
    return await admin_for(aiohttp_client, client)


async def flushed(client) -> None:
    """Add the activity this process counted to the store now (the app does every few seconds)."""
    host = client.app[HOST]
    await host.activity.flush(host.storage)


async def api(admin, path: str, status: int = 200):
    response = await admin.get(path)
    assert response.status == status, (path, response.status, await response.text())
    return await response.json()


async def test_overview_shows_each_source_its_token_counts_and_activity(client, admin, scim, issue_token):
    user = await scim.create_user("bjensen", emails=[{"value": "b@example.com"}])
    await scim.create_group("Eng", [user["id"]])
    await scim.create_user("jsmith")
    await scim.json("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}, expect=400)
    await flushed(client)

    overview = await api(admin, "/api/overview")
    assert overview["storage"]["reachable"] is True
    sources = {s["slug"]: s for s in overview["sources"]}
    demo, other = sources["demo"], sources["other"]
    assert demo["base_url"] == "https://scim.example.test/source/scim/demo/v2"
    assert demo["token"]["state"] == "issued" and demo["token"]["issued"]
    assert other["token"] == {
        "state": "none",
        "issued": None,
        "command": "scimhost sources token other",
        "previous_expires": None,
    }
    assert demo["counts"] == {"User": 2, "Group": 1} and other["counts"] == {"User": 0, "Group": 0}
    assert demo["requests_last_hour"] == 4 and demo["errors_last_hour"] == 1
    assert demo["last_error"].startswith("POST /Users 400 invalidValue") and demo["last_error_at"]
    assert demo["last_write"] is not None and other["last_write"] is None
    assert overview["sinks"] == [] and overview["dispatcher"] == {"lease_holder": None}

    page = await (await admin.get("/")).text()
    assert "https://scim.example.test/source/scim/demo/v2" in page and "Copy" in page
    assert "scimhost sources token other" in page  # what to run for a source without a token
    assert "4 requests, " in page and ">1 error<" in page  # "1 error", not "1 errors"
    assert "no sinks are configured: nothing to deliver" in page and "no process holds the lease" not in page

    # "1 error" links to the source's failed requests: when, what, and what the client was told.
    assert '<a class="bad" href="/sources/demo/failures">1 error</a>' in page
    failures = await api(admin, "/api/sources/demo/failures")
    [failed] = failures["failures"]
    assert (failed["method"], failed["path"], failed["status"], failed["scim_type"]) == (
        "POST",
        "/Users",
        400,
        "invalidValue",
    )
    assert "userName" in failed["detail"] and failed["request_id"] and failed["at"]
    listed = await (await admin.get("/sources/demo/failures")).text()
    assert "POST /Users" in listed and "invalidValue" in listed and failed["request_id"] in listed
    assert (await api(admin, "/api/sources/other/failures"))["failures"] == []
    assert (await admin.get("/sources/nosuch/failures")).status == 404


async def test_source_page_searches_with_a_scim_filter_and_pages_by_cursor(client, admin, scim):
    for i in range(55):
        await scim.create_user(f"user{i:02d}", active=i % 2 == 0)
    first = await api(admin, "/api/sources/demo?type=User")
    assert first["total"] == 55 and len(first["resources"]) == 50 and first["next_cursor"]
    second = await api(admin, f"/api/sources/demo?type=User&cursor={first['next_cursor']}")
    names = [r["name"] for r in first["resources"] + second["resources"]]
    assert names == [f"user{i:02d}" for i in range(55)]

    found = await api(admin, '/api/sources/demo?type=User&filter=userName sw "user1" and active eq true')
    assert [r["name"] for r in found["resources"]] == ["user10", "user12", "user14", "user16", "user18"]
    bad = await api(admin, "/api/sources/demo?type=User&filter=userName zz 1")
    assert bad["error"].startswith("invalidFilter") and bad["resources"] == []

    page = await (await admin.get('/sources/demo?type=User&filter=userName eq "user07"')).text()
    assert "user07" in page and "user08" not in page
    assert "invalidFilter" in await (await admin.get("/sources/demo?filter=(((")).text()
    assert (await admin.get("/sources/nosuch")).status == 404
    assert (await admin.get("/api/sources/nosuch")).status == 404


async def test_resource_page_shows_document_record_memberships_and_diffs(client, admin, scim):
    user = await scim.create_user("bjensen", title="Engineer", password="Sup3r-secret-pw")
    group = await scim.create_group("Eng", [user["id"]])
    await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "Boss"}))

    shown = await api(admin, f"/api/sources/demo/User/{user['id']}")
    assert shown["document"]["userName"] == "bjensen" and shown["document"]["title"] == "Boss"
    assert shown["record"]["username"] == "bjensen"
    assert [g["value"] for g in shown["groups"]] == [group["id"]]
    patch, create = shown["history"]
    assert patch["action"] == "patch" and {"attribute": "title", "old": "Engineer", "new": "Boss"} in patch["diff"]
    assert create["action"] == "create" and patch["actor"]["account"] == "scimhost-source-demo"

    page = await (await admin.get(f"/sources/demo/User/{user['id']}")).text()
    assert "Engineer" in page and "Boss" in page and "Eng" in page
    for response in (
        page,
        await (await admin.get(f"/api/sources/demo/User/{user['id']}")).text(),
        await (await admin.get(f"/sources/demo/events/{create['seq']}")).text(),
        await (await admin.get("/changes")).text(),
    ):
        assert "password" not in response.lower() and "Sup3r-secret-pw" not in response

    members = await api(admin, f"/api/sources/demo/Group/{group['id']}")
    assert [m["value"] for m in members["members"]] == [user["id"]]
    assert (await admin.get(f"/sources/demo/User/{group['id']}")).status == 404  # a group is not a User
    assert (await admin.get(f"/api/sources/other/User/{user['id']}")).status == 404  # nor in another source


async def test_recent_changes_span_sources_and_link_to_each_event(client, admin, scim, issue_token):
    other = ScimClient(client, "other", await issue_token("other"))
    first = await scim.create_user("alice")
    await other.create_user("bob")
    await scim.json("DELETE", f"/Users/{first['id']}", expect=204)
    changes = await api(admin, "/api/changes")
    assert [(e["source"], e["action"]) for e in changes["events"]] == [
        ("demo", "delete"),
        ("other", "create"),
        ("demo", "create"),
    ]
    newest = changes["events"][0]
    event = await api(admin, f"/api/sources/demo/events/{newest['seq']}")
    assert event["resourceId"] == first["id"] and event["deliveries"] == []
    assert (await admin.get(f"/api/sources/other/events/{newest['seq']}")).status == 404  # scoped to its source
    page = await (await admin.get("/changes")).text()
    assert f"/sources/demo/events/{newest['seq']}" in page


async def test_pages_name_resources_and_members_beside_their_ids(client, admin, scim):
    alice = await scim.create_user("alice")
    bob = await scim.create_user("bob")
    group = await scim.create_group("Eng", [alice["id"], bob["id"]])
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "remove", "path": f'members[value eq "{bob["id"]}"]'}),
        expect=204,
    )
    await scim.json("DELETE", f"/Users/{bob['id']}", expect=204)

    changes = await api(admin, "/api/changes")
    delete, patch, create = changes["events"][:3]
    # The deleted user is still named, from the last document its events kept.
    assert (delete["action"], delete["resourceName"]) == ("delete", "bob")
    assert patch["resourceName"] == "Eng" and patch["members"]["removed"] == [
        {"id": bob["id"], "type": "User", "name": "bob"}
    ]
    assert [m["name"] for m in create["members"]["added"]] == ["alice", "bob"]
    page = await (await admin.get("/changes")).text()
    assert "members: " not in page and "Removed" in page and "Added" in page
    assert re.search(r">Eng</a> <code class=\"muted\">" + group["id"], page)  # the name, then the id
    history = await (await admin.get(f"/sources/demo/Group/{group['id']}")).text()
    assert re.search(r"Removed</span>:\s*<a href=\"/sources/demo/User/" + bob["id"] + r'" [^>]*>bob</a>', history)


async def test_a_big_groups_page_counts_its_members_and_pages_through_them(client, admin, scim):
    from scimhost.admin.views import MEMBERS_SHOWN

    users = [await scim.create_user(f"u{i:03d}") for i in range(MEMBERS_SHOWN + 5)]
    group = await scim.create_group("All", [u["id"] for u in users])
    first = await api(admin, f"/api/sources/demo/Group/{group['id']}")
    assert (first["members_total"], first["members_page"], first["members_pages"]) == (MEMBERS_SHOWN + 5, 1, 2)
    assert [m["display"] for m in first["members"]] == [f"u{i:03d}" for i in range(MEMBERS_SHOWN)]
    second = await api(admin, f"/api/sources/demo/Group/{group['id']}?members_page=2")
    assert [m["display"] for m in second["members"]] == [f"u{i:03d}" for i in range(MEMBERS_SHOWN, MEMBERS_SHOWN + 5)]
    page = await (await admin.get(f"/sources/demo/Group/{group['id']}")).text()
    assert f'id="members-total">{MEMBERS_SHOWN + 5}<' in page and "page 1 of 2" in page
    assert '?members_page=2">More members' in page and "Only the first members" not in page


async def test_a_user_that_never_sent_active_is_shown_active_by_default(client, admin, scim):
    await scim.create_user("quiet")
    await scim.create_user("off", active=False)
    listed = {r["name"]: r for r in (await api(admin, "/api/sources/demo?type=User"))["resources"]}
    assert (listed["quiet"]["active"], listed["quiet"]["active_sent"]) == (True, False)
    assert (listed["off"]["active"], listed["off"]["active_sent"]) == (False, True)
    page = await (await admin.get("/sources/demo?type=User")).text()
    assert re.search(r'<td>yes <span class="muted"[^>]*>\(default\)</span></td>', page)
    assert "<td>no</td>" in page
    groups = (await api(admin, "/api/sources/demo?type=Group"))["resources"]
    assert all(g["active"] is None for g in groups)  # a group has no active


async def test_page_text_from_clients_is_escaped(client, admin, scim):
    await scim.create_user("<script>alert(1)</script>", displayName="<img src=x onerror=alert(2)>")
    page = await (await admin.get("/sources/demo?type=User")).text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


async def test_metrics_count_requests_writes_auth_failures_and_mapping_outcomes(aiohttp_client, storage_url):
    sources = [
        {"slug": "demo", "name": "Demo"},
        {
            "slug": "mapped",
            "name": "Mapped",
            "mappings": [
                {
                    "name": "title",
                    "resource_type": "User",
                    "expression": "{'x': 1 // 0} if title == 'crash' else {'title': title}",
                },
            ],
        },
    ]
    client = await aiohttp_client(create_app(make_config(storage_url, sources=sources)))
    admin = await admin_for(aiohttp_client, client)
    host = client.app[HOST]
    demo = ScimClient(client, "demo", await host.issue_token("demo"))
    mapped = ScimClient(client, "mapped", await host.issue_token("mapped"))
    await demo.create_user("one")
    user = await demo.create_user("two")
    await demo.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "x"}))
    await client.get("/source/scim/demo/v2/Users", headers=bearer("not-a-token"))
    await client.get("/source/scim/demo/v2/Users")
    await client.get("/source/scim/who-knows/v2/Users")
    await mapped.create_user("fine", title="ok")
    await mapped.json(
        "POST",
        "/Users",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bad", "title": "crash"},
        expect=400,
    )

    text = await (await admin.get("/metrics")).text()
    for name in (
        "scimhost_requests_total",
        "scimhost_request_duration_seconds_bucket",
        "scimhost_auth_failures_total",
        "scimhost_resource_writes_total",
        "scimhost_mapping_evaluations_total",
    ):
        assert name in text, name
    assert (
        metric(text, "scimhost_requests_total", source="demo", resource_type="Users", method="POST", status="201") == 2
    )
    assert (
        metric(text, "scimhost_requests_total", source="demo", resource_type="Users", method="GET", status="401") == 2
    )
    assert metric(text, "scimhost_requests_total", source="unknown", status="404") == 1  # not the typed slug
    assert "who-knows" not in text and user["id"] not in text
    assert metric(text, "scimhost_auth_failures_total", source="demo", reason="invalid_credentials") == 1
    assert metric(text, "scimhost_auth_failures_total", source="demo", reason="missing_credentials") == 1
    assert metric(text, "scimhost_resource_writes_total", source="demo", resource_type="User", action="create") == 2
    assert metric(text, "scimhost_resource_writes_total", source="demo", resource_type="User", action="patch") == 1
    assert metric(text, "scimhost_mapping_evaluations_total", source="mapped", outcome="ok") == 1
    assert metric(text, "scimhost_mapping_evaluations_total", source="mapped", outcome="error") == 1
    assert (
        metric(
            text,
            "scimhost_request_duration_seconds_count",
            source="demo",
            resource_type="Users",
            method="POST",
            status="201",
        )
        == 2
    )
    # The mapping pool (process mode): its size, and no worker busy or write waiting now.
    assert metric(text, "scimhost_mapping_pool_workers", runtime="restrictedpython") == host.settings.mappings.workers
    assert "scimhost_mapping_pool_busy_workers" in text and "scimhost_mapping_pool_queue" in text


async def test_every_admin_answer_carries_the_security_headers(aiohttp_client, client, scim):
    """No cache keeps people's data, nothing is sniffed or referred, and pages run no inline
    script and cannot be framed: on pages, JSON, metrics, errors and redirects alike."""
    user = await scim.create_user("bjensen")
    admin = await admin_for(aiohttp_client, client)
    paths = ["/", "/sources/demo", f"/sources/demo/User/{user['id']}", "/changes", "/sources/nosuch"]
    paths += ["/api/overview", "/api/sources/nosuch", "/metrics", "/static/admin.css", "/static/admin.js", "/nowhere"]
    for path in paths:
        response = await admin.get(path)
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        policy = response.headers.get("Content-Security-Policy")
        if response.content_type == "text/html":
            assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path
            assert "unsafe-inline" not in policy and response.headers["X-Frame-Options"] == "DENY"
            assert "<script>" not in await response.text() and " style=" not in await response.text(), path
    redirect = await admin.post("/login", data={"token": "x", "next": "/changes"}, allow_redirects=False)
    assert redirect.status == 303 and redirect.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("sources", [["demo"], ["demo", "other"]])
async def test_recent_changes_page_back_to_the_first_event(client, admin, issue_token, sources):
    from scimhost.admin.views import PAGE_SIZE

    for slug in sources:
        writer = ScimClient(client, slug, await issue_token(slug))
        for i in range(PAGE_SIZE + 7):
            await writer.create_user(f"{slug}-{i}")
    seen, before = [], None
    while True:
        page = await api(admin, "/api/changes" + (f"?before={before}" if before else ""))
        seen += [e["seq"] for e in page["events"]]
        before = page["next_before"]
        if before is None:
            break
    assert len(seen) == len(sources) * (PAGE_SIZE + 7) and seen == sorted(seen, reverse=True)


async def test_alerting_counters_have_every_known_series_at_zero_before_any_request(
    aiohttp_client, storage_url, monkeypatch
):
    """`rate()` and absence alerts need a series from the start: each configured source and
    sink with each fixed label value is exposed at 0 on a host that has answered nothing."""
    pytest.importorskip("scimhost_webhook")
    monkeypatch.setenv("ADMIN_TEST_HOOK_SECRET", WEBHOOK_SECRET)
    config = make_config(storage_url)
    config["events"] = {
        "sinks": [
            {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x", "secret_env": "ADMIN_TEST_HOOK_SECRET"}
        ]
    }
    client = await aiohttp_client(create_app(config))
    text = await (await (await admin_for(aiohttp_client, client)).get("/metrics")).text()
    samples = set(re.findall(r"^(scimhost_\w+_total)\{([^}]*)\} 0\.0$", text, re.MULTILINE))

    def present(name: str, **labels: str) -> bool:
        return any(n == name and dict(re.findall(r'(\w+)="([^"]*)"', found)) == labels for n, found in samples)

    for slug in ("demo", "other"):
        for reason in ("missing_credentials", "invalid_credentials"):
            assert present("scimhost_auth_failures_total", source=slug, reason=reason)
        for resource_type in ("User", "Group"):
            for action in ("create", "replace", "patch", "delete"):
                assert present(
                    "scimhost_resource_writes_total", source=slug, resource_type=resource_type, action=action
                )
        for outcome in ("ok", "error", "timeout", "saturated"):
            assert present("scimhost_mapping_evaluations_total", source=slug, outcome=outcome)
    for outcome in ("done", "retry", "dead", "paused"):
        assert present("scimhost_deliveries_total", sink="hook", outcome=outcome)


async def test_outbox_gauges_grow_while_the_webhook_receiver_is_down(aiohttp_client, storage_url, monkeypatch):
    pytest.importorskip("scimhost_webhook")
    monkeypatch.setenv("ADMIN_TEST_HOOK_SECRET", WEBHOOK_SECRET)
    config = make_config(storage_url)
    config["events"] = {
        "sinks": [
            {
                "name": "hook",
                "type": "webhook",
                "url": "http://127.0.0.1:9/down",
                "secret_env": "ADMIN_TEST_HOOK_SECRET",
                "timeout_seconds": 1,
            }
        ]
    }
    client = await aiohttp_client(create_app(config))
    admin = await admin_for(aiohttp_client, client)
    scim = ScimClient(client, "demo", await client.app[HOST].issue_token("demo"))
    before = metric(await (await admin.get("/metrics")).text(), "scimhost_outbox_pending", sink="hook")
    first = time.time()
    for name in ("one", "two", "three"):
        await scim.create_user(name)
    last = time.time()
    await asyncio.sleep(0.2)
    text = ""
    for _ in range(100):  # the dispatcher tries, fails, and counts the retries
        asked = time.time()
        text = await (await admin.get("/metrics")).text()
        if metric(text, "scimhost_deliveries_total", sink="hook", outcome="retry") >= 1:
            break
        await asyncio.sleep(0.05)
    assert before == 0
    assert metric(text, "scimhost_outbox_pending", sink="hook") == 3
    assert metric(text, "scimhost_outbox_dead", sink="hook") == 0
    # The oldest event was written between `first` and `last`: its age when scraped lies between.
    age = metric(text, "scimhost_outbox_oldest_pending_age_seconds", sink="hook")
    assert asked - last - 0.001 <= age <= time.time() - first + 0.001 and age >= 0.2
    assert metric(text, "scimhost_deliveries_total", sink="hook", outcome="retry") >= 1
    overview = await api(admin, "/api/overview")
    [sink] = overview["sinks"]
    assert sink["name"] == "hook" and sink["pending"] == 3 and sink["last_error"]
    # Failing is shown as failing, with the attempts and when the next one is, not "healthy".
    assert sink["state"] == "retrying" and sink["retrying"] >= 1 and sink["most_attempts"] >= 1
    next_attempt = datetime.fromisoformat(sink["next_attempt"])
    page = await (await admin.get("/")).text()
    assert "hook" in page and sink["last_error"][:20] in page
    assert "failing, retrying" in page and "healthy" not in page
    assert next_attempt.strftime("%Y-%m-%d %H:%M:%S UTC") in page


async def test_with_a_token_every_admin_route_needs_it_and_source_tokens_never_open_it(aiohttp_client, storage_url):
    client = await aiohttp_client(create_app({**make_config(storage_url), "admin": {"token_env": "ADMIN_TOKEN"}}))
    source_token = await client.app[HOST].issue_token("demo")
    admin = await admin_for(aiohttp_client, client, environ={"ADMIN_TOKEN": ADMIN_TOKEN})
    paths = []
    for resource in admin.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        paths.append(path.format(slug="demo", type="User", id="x", seq="1", name="nosuch.js"))
    assert {"/", "/metrics", "/api/overview", "/changes", "/api/changes", "/login"} <= set(paths)
    for path in paths:
        for method in ("GET", "POST"):
            for headers in ({}, bearer(source_token), bearer("wrong"), {"Cookie": f"{COOKIE}=1.abc"}):
                response = await admin.request(method, path, headers=headers, allow_redirects=False)
                assert response.status in (401, 405), (method, path, headers, response.status)
    # Open: the stylesheet and script the login form needs, the same for everyone.
    for path in ("/static/admin.css", "/static/admin.js"):
        assert (await admin.get(path)).status == 200
    with_token = bearer(ADMIN_TOKEN)
    assert (await admin.get("/api/overview", headers=with_token)).status == 200
    assert (await admin.get("/metrics", headers=with_token)).status == 200

    # A person signs in through the form: an HttpOnly, SameSite=Strict session cookie.
    form = await admin.get("/changes")
    assert form.status == 401 and 'name="token"' in await form.text()
    wrong = await admin.post("/login", data={"token": "guess", "next": "/changes"}, allow_redirects=False)
    assert wrong.status == 401
    assert 'name="next" value="/changes"' in await wrong.text()  # a second try still goes there
    signed = await admin.post("/login", data={"token": ADMIN_TOKEN, "next": "/changes"}, allow_redirects=False)
    assert signed.status == 303 and signed.headers["Location"] == "/changes"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    outside = await admin.post("/login", data={"token": ADMIN_TOKEN, "next": "//evil.example/"}, allow_redirects=False)
    assert outside.headers["Location"] == "/"  # never sent elsewhere
    session = cookie.split(";", 1)[0]
    assert (await admin.get("/changes", headers={"Cookie": session})).status == 200
    assert (await admin.get("/api/overview", headers={"Cookie": session})).status == 200


def test_a_token_env_that_is_not_set_or_short_is_a_config_error(storage_url):
    from scimhost.config import ConfigError
    from scimhost.host import load_host

    host = load_host({**make_config(storage_url), "admin": {"token_env": "NO_SUCH_ADMIN_TOKEN"}})
    with pytest.raises(ConfigError, match="NO_SUCH_ADMIN_TOKEN"):
        build_admin_app(host, environ={})
    with pytest.raises(ConfigError, match="NO_SUCH_ADMIN_TOKEN is shorter than 32 characters"):
        build_admin_app(host, environ={"NO_SUCH_ADMIN_TOKEN": "x" * 31})
    assert build_admin_app(host, environ={"NO_SUCH_ADMIN_TOKEN": "x" * 32})


async def test_soft_deleted_resources_are_shown_as_such(aiohttp_client, storage_url):
    config = make_config(storage_url, sources=[{"slug": "demo", "name": "Demo", "on_delete": "soft"}])
    client = await aiohttp_client(create_app(config))
    admin = await admin_for(aiohttp_client, client)
    scim = ScimClient(client, "demo", await client.app[HOST].issue_token("demo"))
    user = await scim.create_user("leaver", externalId="ext-9")
    await scim.create_user("stayer")
    assert (await scim.request("DELETE", f"/Users/{user['id']}")).status == 204
    listing = await api(admin, "/api/sources/demo?type=User")
    assert [r["name"] for r in listing["resources"]] == ["stayer"]
    assert [(r["id"], r["name"], r["external_id"]) for r in listing["deleted"]] == [(user["id"], "leaver", "ext-9")]
    page = await (await admin.get("/sources/demo?type=User")).text()
    assert "Soft-deleted Users" in page and "leaver" in page
    kept = await api(admin, f"/api/sources/demo/User/{user['id']}")
    assert kept["document"]["userName"] == "leaver" and kept["deleted"]["restore"].endswith(
        f"sources restore demo User {user['id']}"
    )
    assert [e["action"] for e in kept["history"]] == ["delete", "create"]
    page = await (await admin.get(f"/sources/demo/User/{user['id']}")).text()
    assert 'id="soft-deleted"' in page
    await api(admin, "/api/sources/demo/User/00000000-0000-0000-0000-000000000000", status=404)
