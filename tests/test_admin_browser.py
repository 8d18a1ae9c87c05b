"""The admin pages in a real Chromium (Debian's chromium, driven by playwright), served by a real
`scimhost serve` after provisioning through SCIM.

Set SCIMHOST_SCREENSHOTS=1 to save the main pages into docs/images/ (shown in the README)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from serving import free_port, post, scimhost, wait_until_up

from scimhost.testing_databases import IN_CI

ADMIN_TOKEN = "admin-token-for-the-browser-test"
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def browser():
    """Headless Chromium; missing, it fails the run under CI=true and skips otherwise.

    Started after the database fixtures (tests name it last): playwright's sync API runs an
    event loop of its own while it lives, and the PostgreSQL fixtures need theirs."""
    executable = os.environ.get("SCIMHOST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        problem = f"playwright is not installed ({exc})"
    if executable is None:
        problem = "no chromium on PATH (apt install chromium)"
    if problem:
        if IN_CI:
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def provisioned(tmp_path, storage_url):
    """A serving process whose `demo` source received two users and a group, one user patched,
    with a webhook sink whose receiver is down: (admin URL, user ids)."""
    port, admin_port = free_port(), free_port()
    config = tmp_path / "scimhost.toml"
    config.write_text(
        f'[server]\nport = {port}\npublic_url = "https://scim.example.com"\n'
        f'[storage.tortoise]\nurl = "{storage_url}"\n'
        f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_env = "BROWSER_ADMIN_TOKEN"\n'
        "[events]\npoll_seconds = 0.1\n"
        '[[events.sinks]]\nname = "crm-hook"\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
        'secret_env = "BROWSER_HOOK_SECRET"\ntimeout_seconds = 1\n'
        '[[sources]]\nslug = "entra"\nname = "Microsoft Entra ID"\n'
        '[[sources.mappings]]\nname = "department"\nresource_type = "User"\n'
        "expression = \"{'department': urn_ietf_params_scim_schemas_extension_enterprise_2_0_User['department'] "
        'if urn_ietf_params_scim_schemas_extension_enterprise_2_0_User else None}"\n'
        '[[sources]]\nslug = "okta"\nname = "Okta"\n'
    )
    env = {**os.environ, "BROWSER_ADMIN_TOKEN": ADMIN_TOKEN, "BROWSER_HOOK_SECRET": WEBHOOK_SECRET}
    subprocess.run(scimhost("-c", str(config), "migrate"), capture_output=True, check=True, env=env)
    issued = subprocess.run(
        scimhost("-c", str(config), "sources", "token", "entra", "--json"), capture_output=True, check=True, env=env
    )
    token = json.loads(issued.stdout)["token"]
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    try:
        wait_until_up(port, process)
        base = f"http://127.0.0.1:{port}/source/scim/entra/v2"
        enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ids = {}
        for user_name, given, family, department in (
            ("bjensen@example.com", "Barbara", "Jensen", "Sales"),
            ("jsmith@example.com", "John", "Smith", "R&D"),
        ):
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", enterprise],
                "userName": user_name,
                "name": {"givenName": given, "familyName": family},
                "displayName": f"{given} {family}",
                "title": "Engineer",
                "active": True,
                "emails": [{"value": user_name, "type": "work", "primary": True}],
                "password": "Do-not-show-1",
                enterprise: {"department": department},
            }
            ids[user_name] = _json(base + "/Users", token, body)["id"]
        _json(
            base + "/Groups",
            token,
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Sales team",
                "members": [{"value": ids["bjensen@example.com"]}],
            },
        )
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "Head of Sales"}],
        }
        assert post(base + f"/Users/{ids['bjensen@example.com']}", token, patch, method="PATCH") == 200
        # A client mistake, for the failed requests page.
        assert post(base + "/Users", token, {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}) == 400
        yield f"http://127.0.0.1:{admin_port}", ids
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _json(url: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _shoot(page, name: str) -> None:
    if os.environ.get("SCIMHOST_SCREENSHOTS"):
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=True)


def test_an_operator_signs_in_and_sees_what_was_provisioned(provisioned, browser):
    admin, ids = provisioned
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(admin + "/changes")
    # Signed out: the login form; a wrong token keeps the page asked for, the right one opens it.
    assert page.get_by_label("Admin token").is_visible()
    page.get_by_label("Admin token").fill("not the token")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That is not the admin token."
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("h1:has-text('Recent changes')")
    page.get_by_role("link", name="Overview").first.click()
    page.wait_for_selector("h1:has-text('Overview')")

    entra = page.locator("section.source[data-slug=entra]")
    assert "https://scim.example.com/source/scim/entra/v2" in entra.inner_text()
    assert entra.get_by_role("button", name="Copy").is_visible()
    assert entra.locator("dt:text-is('Users') + dd").inner_text() == "2"
    assert entra.locator("dt:text-is('Groups') + dd").inner_text() == "1"
    okta = page.locator("section.source[data-slug=okta]")
    # The hint names the config file the host was read from, so it can be pasted as it is.
    assert re.search(r"none yet — run scimhost -c \S+ sources token okta", okta.inner_text())
    # The sink whose receiver is down shows its backlog and error once the dispatcher tried, and
    # the requests appear once the serving process added its counts to the store (every 5 s).
    for _ in range(100):
        sink = page.locator("tr.sink[data-sink=crm-hook]").inner_text()
        last_hour = entra.locator("dt:text-is('Last hour') + dd").inner_text()
        if "connect" in sink.lower() and last_hour.startswith("5 requests"):
            break
        page.wait_for_timeout(200)
        page.reload()
    assert "crm-hook" in sink and "connect" in sink.lower()
    assert last_hour == "5 requests, 1 error"
    _shoot(page, "overview")

    # The error count opens the failed requests: what was sent and what the client was told.
    entra.get_by_role("link", name="1 error").click()
    page.wait_for_selector("h1:has-text('Failed requests')")
    [failure] = page.locator("tr.failure").all_inner_texts()
    assert "POST /Users" in failure and "400" in failure and "invalidValue" in failure
    page.go_back()

    # The source's users, searched with a SCIM filter.
    entra.get_by_role("link", name="Microsoft Entra ID").click()
    rows = page.locator("tr.resource")
    assert sorted(rows.all_inner_texts())[0].startswith("bjensen@example.com")
    assert rows.count() == 2
    page.get_by_label("SCIM filter").fill('name.familyName eq "Smith"')
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**filter=*")
    assert [t.split("\t")[0] for t in page.locator("tr.resource").all_inner_texts()] == ["jsmith@example.com"]
    page.get_by_label("SCIM filter").fill("title zz 1")
    page.get_by_role("button", name="Search").click()
    assert "invalidFilter" in page.get_by_role("alert").inner_text()
    page.get_by_label("SCIM filter").fill("")
    page.get_by_role("button", name="Search").click()
    _shoot(page, "source")

    # A user: the stored document, the record the mapping made, the group, the PATCH's diff.
    page.get_by_role("link", name="bjensen@example.com").click()
    page.wait_for_selector("#record")
    assert '"department": "Sales"' in page.locator("#record").inner_text()
    assert '"title": "Head of Sales"' in page.locator("#document").inner_text()
    assert page.get_by_role("link", name="Sales team").is_visible()
    patch_row = page.locator("tr.event").first
    assert "patch" in patch_row.inner_text()
    assert patch_row.locator("td.old").inner_text() == '"Engineer"'
    assert patch_row.locator("td.new").inner_text() == '"Head of Sales"'
    body = page.content()
    assert "Do-not-show-1" not in body and "password" not in page.locator("main").inner_text().lower()
    _shoot(page, "resource")

    # Recent changes, and one event with its failing delivery.
    page.get_by_role("link", name="Recent changes").click()
    events = page.locator("tr.event")
    assert events.count() == 4
    assert "patch User" in events.first.inner_text() and "bjensen@example.com" in events.first.inner_text()
    # The group's creation names the member it added, linked to her page.
    group_created = events.filter(has_text="Sales team")
    assert group_created.get_by_role("link", name="bjensen@example.com").is_visible()
    _shoot(page, "changes")
    events.first.get_by_role("link").first.click()
    delivery = page.locator("tr.delivery")
    assert "crm-hook" in delivery.inner_text() and "pending" in delivery.inner_text()
    context.close()


def test_the_pages_fit_a_phone(provisioned, browser):
    admin, ids = provisioned
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    page = context.new_page()
    for path in (
        "/",
        "/sources/entra",
        f"/sources/entra/User/{ids['bjensen@example.com']}",
        "/changes",
        "/sources/entra/failures",
    ):
        page.goto(admin + path)
        # Wide content (tables, JSON) scrolls inside its own box; the page itself never does.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    page.goto(admin + "/")
    _shoot(page, "overview-phone")
    context.close()


# Markup and script in every place a client or a mapping can put text. Each one, if it ever ran,
# would open a dialog, write to the console, or leave an element the page itself never has.
HOSTILE = {
    "userName": "<script>alert('userName')</script>",
    "displayName": "<img src=x onerror=\"alert('displayName')\">",
    "externalId": '"><svg onload="alert(\'externalId\')">',
    "kept": "<iframe srcdoc=\"<script>parent.alert('kept')</script>\"></iframe>",
    "title": "</pre></td><script>console.error('xss title')</script>",
    "group": "<a href=\"javascript:alert('group')\" id=evil>Sales</a><style>body{display:none}</style>",
}


@pytest.fixture
def hostile(tmp_path, storage_url):
    """A serving process whose source holds hostile values, one written by a mapping, one in a
    PATCH's diff: (admin URL, user id, group id, event seq of the PATCH)."""
    port, admin_port = free_port(), free_port()
    config = tmp_path / "scimhost.toml"
    config.write_text(
        f'[server]\nport = {port}\n[storage.tortoise]\nurl = "{storage_url}"\n'
        f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_env = "BROWSER_ADMIN_TOKEN"\n'
        '[[sources]]\nslug = "evil"\nname = "Evil"\n'
        '[[sources.mappings]]\nname = "markup"\nresource_type = "User"\n'
        "expression = \"{'badge': '<b onmouseover=alert(1)>' + (userName or '') + '</b>'}\"\n"
    )
    env = {**os.environ, "BROWSER_ADMIN_TOKEN": ADMIN_TOKEN}
    subprocess.run(scimhost("-c", str(config), "migrate"), capture_output=True, check=True, env=env)
    issued = subprocess.run(
        scimhost("-c", str(config), "sources", "token", "evil", "--json"), capture_output=True, check=True, env=env
    )
    token = json.loads(issued.stdout)["token"]
    process = subprocess.Popen(
        scimhost("-c", str(config), "serve"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    try:
        wait_until_up(port, process)
        base = f"http://127.0.0.1:{port}/source/scim/evil/v2"
        user = _json(
            base + "/Users",
            token,
            {
                "userName": HOSTILE["userName"],
                "displayName": HOSTILE["displayName"],
                "externalId": HOSTILE["externalId"],
                "note": HOSTILE["kept"],
                "title": "Engineer",
            },
        )
        group = _json(base + "/Groups", token, {"displayName": HOSTILE["group"], "members": [{"value": user["id"]}]})
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": HOSTILE["title"]}],
        }
        assert post(base + f"/Users/{user['id']}", token, patch, method="PATCH") == 200
        yield f"http://127.0.0.1:{admin_port}", user["id"], group["id"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_hostile_values_are_shown_as_text_and_never_run(hostile, browser):
    admin, user_id, group_id = hostile
    context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    page = context.new_page()
    dialogs, errors = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda message: errors.append(message.text) if "xss" in message.text else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(admin + "/changes")
    seqs = page.locator("tr.event a[href*='/events/']").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    pages = ["/", "/sources/evil?type=User", "/sources/evil?type=Group", f"/sources/evil/User/{user_id}"]
    pages += [f"/sources/evil/Group/{group_id}", "/changes", *dict.fromkeys(seqs)]
    shown = ""
    for path in pages:
        page.goto(admin + path)
        page.hover("main")  # (an onmouseover that had become markup would fire now)
        # The page's own markup only: its one script file, no element a value brought in.
        assert page.locator("script").count() == 1, path
        assert page.locator("main img, main svg, main iframe, main style, main b, #evil").count() == 0, path
        assert page.evaluate("getComputedStyle(document.body).display") != "none", path
        shown += page.locator("main").inner_text()
    assert dialogs == [] and errors == []
    # Every value is there, as the text it is.
    for name, value in HOSTILE.items():
        assert value in shown or value.replace('"', '\\"') in shown, name
    assert "<b onmouseover=alert(1)>" in shown  # the mapping's output, in the record
    context.close()
