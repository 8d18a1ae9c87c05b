"""The filter and PATCH path grammar: precedence, value paths, URNs, errors that say where."""

from __future__ import annotations

import pytest

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
