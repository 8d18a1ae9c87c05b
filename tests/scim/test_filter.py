"""The filter and PATCH path grammar: precedence, value paths, URNs, errors that say where."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scimhost.scim.errors import ScimError
from scimhost.scim.filter import (
    And,
    AttrPath,
    Compare,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
    parse_filter,
    parse_path,
)

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def path(attr, sub=None, urn=None):
    return (urn, attr, sub)


def shape(node):
    """The tree without raw texts, for comparing."""
    if isinstance(node, Compare):
        return ("cmp", (node.path.urn, node.path.attr, node.path.sub), node.op, node.value)
    if isinstance(node, Present):
        return ("pr", (node.path.urn, node.path.attr, node.path.sub))
    if isinstance(node, And):
        return ("and", *map(shape, node.terms))
    if isinstance(node, Or):
        return ("or", *map(shape, node.terms))
    if isinstance(node, Not):
        return ("not", shape(node.expr))
    if isinstance(node, ValuePath):
        return ("vp", (node.path.urn, node.path.attr, node.path.sub), shape(node.filter))
    raise AssertionError(node)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('userName eq "bjensen"', ("cmp", path("userName"), "eq", "bjensen")),
        ('USERNAME EQ "x"', ("cmp", path("USERNAME"), "eq", "x")),
        ("title pr", ("pr", path("title"))),
        ("active eq true", ("cmp", path("active"), "eq", True)),
        ("active eq False", ("cmp", path("active"), "eq", False)),
        ("manager eq null", ("cmp", path("manager"), "eq", None)),
        ("age gt 21", ("cmp", path("age"), "gt", 21)),
        ("score le -1.5e2", ("cmp", path("score"), "le", -150.0)),
        ('name.familyName co "O\'Malley"', ("cmp", path("name", "familyName"), "co", "O'Malley")),
        ('title eq "a \\"quoted\\" \\u00e9"', ("cmp", path("title"), "eq", 'a "quoted" \u00e9')),
        (
            f'{ENT}:employeeNumber eq "42"',
            ("cmp", (ENT, "employeeNumber", None), "eq", "42"),
        ),
        (
            f'{ENT}:manager.value eq "m"',
            ("cmp", (ENT, "manager", "value"), "eq", "m"),
        ),
        (
            'a eq "1" or b eq "2" and c eq "3"',
            (
                "or",
                ("cmp", path("a"), "eq", "1"),
                ("and", ("cmp", path("b"), "eq", "2"), ("cmp", path("c"), "eq", "3")),
            ),
        ),
        (
            '(a eq "1" or b eq "2") and c eq "3"',
            (
                "and",
                ("or", ("cmp", path("a"), "eq", "1"), ("cmp", path("b"), "eq", "2")),
                ("cmp", path("c"), "eq", "3"),
            ),
        ),
        ('not (a eq "1")', ("not", ("cmp", path("a"), "eq", "1"))),
        ('not(a eq "1") and b pr', ("and", ("not", ("cmp", path("a"), "eq", "1")), ("pr", path("b")))),
        (
            'emails[type eq "work" and value co "@example.com"]',
            (
                "vp",
                path("emails"),
                ("and", ("cmp", path("type"), "eq", "work"), ("cmp", path("value"), "co", "@example.com")),
            ),
        ),
        (
            'emails[type eq "work"].value eq "x@y"',  # Entra's form
            ("vp", path("emails"), ("and", ("cmp", path("type"), "eq", "work"), ("cmp", path("value"), "eq", "x@y"))),
        ),
        (
            'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
            (
                "and",
                ("cmp", path("userType"), "eq", "Employee"),
                (
                    "or",
                    ("cmp", path("emails"), "co", "example.com"),
                    ("cmp", path("emails", "value"), "co", "example.org"),
                ),
            ),
        ),
        (
            'meta.lastModified gt "2011-05-13T04:42:34Z"',
            ("cmp", path("meta", "lastModified"), "gt", "2011-05-13T04:42:34Z"),
        ),
    ],
)
def test_filters_parse(text, expected):
    assert shape(parse_filter(text)) == expected


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "empty"),
        ("userName", "expected an operator"),
        ('userName xx "a"', "expected an operator"),
        ("userName eq", "expected a value"),
        ("userName eq bjensen", "expected a value"),
        ('(userName eq "a"', "expected ')'"),
        ('userName eq "a")', "position 16"),
        ('userName eq "a" and', "expected an attribute name"),
        ('emails[type eq "work"', "expected ']'"),
        ('emails[addresses[type eq "x"]]', "cannot hold another"),
        ('userName eq "unterminated', "unexpected character"),
        ("a eq 1e999", "out of range"),
        ("3name eq 1", "not an attribute path"),
        ("(" * 40 + 'a eq "1"' + ")" * 40, "nested deeper"),
        ('a eq "' + "x" * 5000 + '"', "longer than"),
        (" or ".join(f'a eq "{i}"' for i in range(300)), "more than 200 terms"),
    ],
)
def test_bad_filters_say_where(text, where):
    with pytest.raises(ScimError) as excinfo:
        parse_filter(text)
    assert excinfo.value.status == 400 and excinfo.value.scim_type == "invalidFilter"
    assert where in excinfo.value.detail


@pytest.mark.parametrize(
    "text, attr, has_filter, sub",
    [
        ("members", AttrPath(None, "members", None, "members"), False, None),
        ("name.givenName", AttrPath(None, "name", "givenName", "name.givenName"), False, None),
        ('members[value eq "2819c223"]', AttrPath(None, "members", None, "members"), True, None),
        ('emails[type eq "work"].value', AttrPath(None, "emails", None, "emails"), True, "value"),
        (f"{ENT}:manager", AttrPath(ENT, "manager", None, f"{ENT}:manager"), False, None),
        (ENT, AttrPath("urn:ietf:params:scim:schemas:extension:enterprise:2.0", "User", None, ENT), False, None),
    ],
)
def test_patch_paths_parse(text, attr, has_filter, sub):
    parsed = parse_path(text)
    assert isinstance(parsed, PatchPath)
    assert parsed.attr == attr
    assert (parsed.filter is not None) == has_filter
    assert parsed.sub == sub


@pytest.mark.parametrize(
    "text", ["", "   ", "a..b", 'emails[type eq "x"', 'emails[type eq "x"]value', "name.givenName[x pr]"]
)
def test_bad_patch_paths(text):
    with pytest.raises(ScimError) as excinfo:
        parse_path(text)
    assert excinfo.value.scim_type in ("invalidPath", "invalidFilter")


# --- every refused filter says why ------------------------------------------------------------

_PIECES = [
    "userName", "displayName", "emails", "members", "groups", "name.givenName", "meta.created", "id", "nosuch",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName", "emails[type eq \"work\"]", "members.value", "value",
    "type", "eq", "ne", "co", "sw", "gt", "le", "pr", "and", "or", "not", "(", ")", "[", "]", '"x"', '"2024-01-01"',
    "1", "1.5", "true", "null", "\"\\u0000\"", ".", ":", "\"", "\\", "  ",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=9))
def test_a_refused_filter_is_a_400_with_a_scim_type(pieces):
    """Whatever the text, a filter resolves or is a 400 with scimType invalidFilter (grammar,
    limits, attributes) or invalidValue (a value no store can hold): never another exception."""
    from scimhost.builtin.core_schemas import GROUP_RESOURCE_TYPE, GROUP_SCHEMA, USER_RESOURCE_TYPE, USER_SCHEMA
    from scimhost.scim.catalog import build_catalog
    from scimhost.scim.query import Undefined, fold, resolve_filter

    catalog = build_catalog([USER_SCHEMA, GROUP_SCHEMA], [USER_RESOURCE_TYPE, GROUP_RESOURCE_TYPE], [])
    text = " ".join(pieces)
    try:
        node = parse_filter(text)
        for resource_type in catalog.resource_types.values():
            for undefined in (None, Undefined()):
                try:
                    fold(resolve_filter(node, resource_type, undefined))
                except ScimError as exc:
                    assert exc.status == 400 and exc.scim_type == "invalidFilter", (text, exc.detail)
    except ScimError as exc:
        assert exc.status == 400 and exc.scim_type in ("invalidFilter", "invalidValue"), (text, exc.detail)
