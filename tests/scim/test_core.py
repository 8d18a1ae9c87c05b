"""The pure core: in-memory filter evaluation, the PATCH engine and validation."""

from __future__ import annotations

import pytest

from scimhost.builtin.core_schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE_TYPE,
    GROUP_SCHEMA,
    USER_RESOURCE_TYPE,
    USER_SCHEMA,
)
from scimhost.scim.catalog import build_catalog
from scimhost.scim.errors import ScimError
from scimhost.scim.evaluate import match_resource
from scimhost.scim.extensions import SchemaExtension
from scimhost.scim.filter import parse_filter
from scimhost.scim.patch import MemberOp, apply_patch, parse_patch_request
from scimhost.scim.validation import validated_document

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CATALOG = build_catalog(
    [USER_SCHEMA, GROUP_SCHEMA],
    [USER_RESOURCE_TYPE, GROUP_RESOURCE_TYPE],
    [SchemaExtension("User", ENTERPRISE_USER_SCHEMA)],
)
USER = CATALOG.resource_types["User"]
GROUP = CATALOG.resource_types["Group"]

DOC = {
    "schemas": [USER.schema.id, ENT],
    "userName": "BJensen",
    "externalId": "Ext-1",
    "active": True,
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [{"value": "bj@Example.com", "type": "work", "primary": True}, {"value": "b@home.org", "type": "home"}],
    ENT: {"employeeNumber": "701984", "manager": {"value": "m1"}},
    "meta": {"created": "2024-01-02T03:04:05Z"},
}


@pytest.mark.parametrize(
    "text, expected",
    [
        ('userName eq "bjensen"', True),  # caseExact false
        ('externalId eq "ext-1"', False),  # caseExact true
        ('externalId eq "Ext-1"', True),
        ('name.familyName sw "jen"', True),
        ('emails.value ew "example.com"', True),
        ('emails[type eq "work" and value co "example"]', True),
        ('emails[type eq "home" and value co "example"]', False),
        ('emails[type eq "work"].value eq "BJ@example.com"', True),
        ("active eq true", True),
        ('active eq "True"', True),
        ('active eq "false"', False),
        (f'{ENT}:employeeNumber eq "701984"', True),
        (f'{ENT}:manager.value eq "m1"', True),
        ("title pr", False),
        ("not (title pr)", True),
        ('meta.created gt "2024-01-01T00:00:00Z"', True),
        ('meta.created lt "2024-01-02T04:04:05+01:00"', False),
        ('userName eq "x" or name.givenName eq "barbara"', True),
        ("title eq null", True),
        ("userName ne null", True),
    ],
)
def test_filters_match_documents(text, expected):
    assert match_resource(parse_filter(text), DOC, USER) is expected


@pytest.mark.parametrize("text", ['nosuch eq "x"', "active gt true", 'name eq "x"', "emails[nosuch pr]"])
def test_meaningless_filters_are_invalid(text):
    with pytest.raises(ScimError) as excinfo:
        match_resource(parse_filter(text), DOC, USER)
    assert excinfo.value.scim_type == "invalidFilter"


def patch(doc, *operations, resource_type=USER, row=None):
    ops = parse_patch_request({"Operations": list(operations)})
    return apply_patch(doc, ops, resource_type, members_attribute=row)


def test_value_path_add_creates_the_missing_entry():
    result = patch({"userName": "x"}, {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1"})
    assert result.document["phoneNumbers"] == [{"type": "mobile", "value": "+1"}]


def test_pathless_keys_plain_dotted_and_urn_qualified():
    result = patch(
        {"userName": "x", "name": {"givenName": "A"}},
        {
            "op": "replace",
            "value": {"name.familyName": "B", f"{ENT}:department": "D", "displayName": "AB", "id": "ignored"},
        },
    )
    assert result.document == {
        "userName": "x",
        "name": {"givenName": "A", "familyName": "B"},
        ENT: {"department": "D"},
        "displayName": "AB",
    }


def test_the_input_document_is_never_modified():
    doc = {"userName": "x", "emails": [{"value": "a", "type": "work"}]}
    patch(doc, {"op": "replace", "path": 'emails[type eq "work"].value', "value": "b"})
    assert doc == {"userName": "x", "emails": [{"value": "a", "type": "work"}]}


def test_members_become_ordered_row_operations():
    result = patch(
        {"displayName": "G"},
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
        {"op": "remove", "path": 'members[value eq "a" or value eq "c"]'},
        {"op": "remove", "path": "members", "value": [{"value": "b"}]},
        {"op": "replace", "value": {"displayName": "H", "members": []}},
        resource_type=GROUP,
        row="members",
    )
    assert result.document == {"displayName": "H"}
    assert result.member_ops == [
        MemberOp("add", ({"value": "a"}, {"value": "b"})),
        MemberOp("remove", ({"value": "a"}, {"value": "c"})),
        MemberOp("remove", ({"value": "b"},)),
        MemberOp("set", ()),
    ]


def test_members_filter_other_than_value_is_refused():
    with pytest.raises(ScimError) as excinfo:
        patch(
            {"displayName": "G"},
            {"op": "remove", "path": 'members[display eq "x"]'},
            resource_type=GROUP,
            row="members",
        )
    assert excinfo.value.scim_type == "invalidPath"


def test_adding_a_primary_value_demotes_the_old_primary():
    result = patch(
        {"userName": "x", "emails": [{"value": "a", "primary": True}]},
        {"op": "add", "path": "emails", "value": [{"value": "b", "primary": True}]},
    )
    assert result.document["emails"] == [{"value": "a"}, {"value": "b", "primary": True}]


def test_validation_normalises_and_checks():
    doc = validated_document(
        {
            "USERNAME": "x",
            "Active": "TRUE",
            "emails": [{"value": "a", "TYPE": "Work", "display": None}],
            ENT.upper(): {"MANAGER": "m1"},
        },
        USER,
    )
    assert doc == {
        "userName": "x",
        "active": True,
        "emails": [{"value": "a", "type": "work"}],
        ENT: {"manager": {"value": "m1"}},
        "schemas": [USER.schema.id, ENT],
    }
    with pytest.raises(ScimError, match="userName"):
        validated_document({"displayName": "x"}, USER)


def test_immutable_attributes_cannot_change():
    catalog = build_catalog(
        [USER_SCHEMA, GROUP_SCHEMA],
        [USER_RESOURCE_TYPE, GROUP_RESOURCE_TYPE],
        [SchemaExtension("User", {"id": "urn:x:ext", "attributes": [{"name": "badge", "mutability": "immutable"}]})],
    )
    user_type = catalog.resource_types["User"]
    existing = validated_document({"userName": "x", "urn:x:ext": {"badge": "1"}}, user_type)
    validated_document({"userName": "y", "urn:x:ext": {"badge": "1"}}, user_type, existing=existing)
    with pytest.raises(ScimError) as excinfo:
        validated_document({"userName": "y", "urn:x:ext": {"badge": "2"}}, user_type, existing=existing)
    assert excinfo.value.scim_type == "mutability"


@pytest.mark.parametrize(
    "text, on_groups, lacking",
    [
        ('userName eq "x"', False, {"userName"}),
        ("userName pr", False, {"userName"}),
        ('not (userName eq "x")', True, {"userName"}),
        ('userName ne "x"', True, {"userName"}),
        ("userName eq null", True, {"userName"}),
        ('userName eq "x" or displayName eq "g"', "displayname", {"userName"}),
        ('userName eq "x" and displayName eq "g"', False, {"userName"}),
        ('emails[type eq "work"]', False, {"emails.type"}),
        ('not (emails[type eq "work" or value pr]) and displayName pr', "displayname", {"emails.type", "emails.value"}),
        ('displayName eq "g"', "displayname", set()),
    ],
)
def test_a_search_across_types_folds_attributes_a_type_lacks(text, on_groups, lacking):
    """RFC 7644 §3.4.2.2: resolved for Group, User-only attributes have no value; `fold` leaves
    True (every group), False (none) or the part a backend must still decide."""
    from scimhost.scim.query import Undefined, fold, resolve_filter

    undefined = Undefined()
    folded = fold(resolve_filter(parse_filter(text), GROUP, undefined))
    assert undefined.filter_paths == lacking
    if isinstance(on_groups, bool):
        assert folded is on_groups
    else:
        assert not isinstance(folded, bool) and folded.field.key == on_groups


def test_a_value_filter_true_of_any_value_means_the_attribute_has_one():
    from scimhost.scim.query import QOr, QPresent, Undefined, fold, resolve_filter

    folded = fold(resolve_filter(parse_filter('emails[nosuch ne "x"]'), USER, Undefined()))
    assert isinstance(folded, QOr) and all(isinstance(t, QPresent) for t in folded.terms)
    assert {t.field.key for t in folded.terms} >= {"emails.value", "emails.type"}
    with pytest.raises(ScimError) as raised:
        resolve_filter(parse_filter('userName eq "x"'), GROUP)
    assert raised.value.scim_type == "invalidFilter"
