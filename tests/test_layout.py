"""Shapes written once: the source URL layout and an event's JSON are each defined in one module,
and every view uses that definition."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from scimhost.delivery.envelope import envelope, event_json
from scimhost.testing import stored_event

ROOT = Path(__file__).resolve().parent.parent


def code_strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module, docstrings included (not comments)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    kinds = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}  # 3.12 splits f-strings
    return [(t.start[0], t.string) for t in tokens if t.type in kinds]


def test_the_source_url_layout_is_spelled_in_one_module():
    modules = [*sorted((ROOT / "scimhost").rglob("*.py")), *sorted(ROOT.glob("plugins/*/scimhost_*/**/*.py"))]
    modules += sorted(ROOT.glob("plugins/*/scimhost_*.py"))
    spelled = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in modules
        if path.name not in ("source_paths.py", "testing.py")
        for line, text in code_strings(path)
        if "source/scim" in text or "/v2" in text
    ]
    assert spelled == []


def test_an_event_has_one_json_shape_in_the_envelope_the_cli_and_the_admin_api():
    import asyncio

    from scimhost.admin import views
    from scimhost.cli import events as cli_events

    event = stored_event(7, resource_id="u7")
    shown = event_json(event)
    assert envelope(event)["data"] == shown
    assert cli_events.event_json is event_json

    class NoNames:
        async def of_event(self, event):
            return None

        async def member_changes(self, event):
            return event.members

    summary = asyncio.run(views.event_summary(event, NoNames()))
    assert {key: summary[key] for key in views.SUMMARY_KEYS} == {key: shown[key] for key in views.SUMMARY_KEYS}
