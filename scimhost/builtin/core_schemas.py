"""Built-in plugin: the RFC 7643 User and Group schemas and resource types, and the
Enterprise User extension (RFC 7643 §4.3)."""

from __future__ import annotations

from typing import Any

from scimhost.hookspecs import hookimpl
from scimhost.scim.extensions import SchemaExtension

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def attr(name: str, type: str = "string", description: str = "", **characteristics: Any) -> dict[str, Any]:
    """An attribute definition with RFC 7643 §2.2 defaults for what is not given."""
    doc = {
        "name": name,
        "type": type,
        "multiValued": False,
        "description": description,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    }
    for key, value in characteristics.items():
        camel = {
            "multi_valued": "multiValued",
            "case_exact": "caseExact",
            "canonical": "canonicalValues",
            "references": "referenceTypes",
            "subs": "subAttributes",
        }.get(key, key)
        doc[camel] = value
    return doc


def multi(
    name: str,
    description: str,
    *,
    types: list[str] | None = None,
    value_type: str = "string",
    extra: list[dict] | None = None,
    **characteristics: Any,
) -> dict[str, Any]:
    """A multi-valued complex attribute with the usual value/display/type/primary sub-attributes."""
    subs = [attr("value", value_type, f"The value of the {name} entry.")]
    subs.append(attr("display", description="A human-readable name, primarily used for display purposes."))
    label = "A label indicating the attribute's function."
    subs.append(attr("type", description=label, canonical=types) if types else attr("type", description=label))
    subs.append(attr("primary", "boolean", "Whether this is the primary value of the attribute."))
    subs.extend(extra or [])
    return attr(name, "complex", description, multi_valued=True, subs=subs, **characteristics)


USER_SCHEMA = {
    "id": USER,
    "name": "User",
    "description": "User Account",
    "attributes": [
        attr(
            "userName",
            description="Unique identifier for the User, used to authenticate.",
            required=True,
            uniqueness="server",
        ),
        attr(
            "name",
            "complex",
            "The components of the user's real name.",
            subs=[
                attr("formatted", description="The full name, formatted for display."),
                attr("familyName", description="The family name of the User."),
                attr("givenName", description="The given name of the User."),
                attr("middleName", description="The middle name(s) of the User."),
                attr("honorificPrefix", description="The honorific prefix(es) of the User."),
                attr("honorificSuffix", description="The honorific suffix(es) of the User."),
            ],
        ),
        attr("displayName", description="The name of the User, suitable for display to end-users."),
        attr("nickName", description="The casual way to address the user."),
        attr("profileUrl", "reference", "A URL to the User's online profile.", references=["external"]),
        attr("title", description='The user\'s title, such as "Vice President".'),
        attr("userType", description="The relationship between the organization and the user."),
        attr("preferredLanguage", description="The User's preferred written or spoken language."),
        attr("locale", description="The User's default location for localization."),
        attr("timezone", description="The User's time zone in the 'Olson' format."),
        attr("active", "boolean", "The User's administrative status."),
        attr(
            "password",
            description="The User's cleartext password; never returned.",
            mutability="writeOnly",
            returned="never",
        ),
        multi("emails", "Email addresses for the user.", types=["work", "home", "other"]),
        multi("phoneNumbers", "Phone numbers for the User.", types=["work", "home", "mobile", "fax", "pager", "other"]),
        multi(
            "ims",
            "Instant messaging addresses for the User.",
            types=["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
        ),
        multi("photos", "URLs of photos of the User.", types=["photo", "thumbnail"], value_type="reference"),
        attr(
            "addresses",
            "complex",
            "A physical mailing address for this User.",
            multi_valued=True,
            subs=[
                attr("formatted", description="The full mailing address, formatted for display."),
                attr("streetAddress", description="The full street address component."),
                attr("locality", description="The city or locality component."),
                attr("region", description="The state or region component."),
                attr("postalCode", description="The zip code or postal code component."),
                attr("country", description="The country name component."),
                attr(
                    "type",
                    description="A label indicating the attribute's function.",
                    canonical=["work", "home", "other"],
                ),
                attr("primary", "boolean", "Whether this is the primary address."),
            ],
        ),
        attr(
            "groups",
            "complex",
            "A list of groups to which the user belongs.",
            multi_valued=True,
            mutability="readOnly",
            subs=[
                attr("value", description="The identifier of the User's group.", mutability="readOnly"),
                attr(
                    "$ref",
                    "reference",
                    "The URI of the Group resource.",
                    mutability="readOnly",
                    references=["User", "Group"],
                ),
                attr("display", description="The group's display name.", mutability="readOnly"),
                attr(
                    "type",
                    description="direct or indirect membership.",
                    mutability="readOnly",
                    canonical=["direct", "indirect"],
                ),
            ],
        ),
        multi("entitlements", "A list of entitlements for the User."),
        multi("roles", "A list of roles for the User."),
        multi("x509Certificates", "A list of certificates issued to the User.", value_type="binary"),
    ],
}

GROUP_SCHEMA = {
    "id": GROUP,
    "name": "Group",
    "description": "Group",
    "attributes": [
        attr("displayName", description="A human-readable name for the Group.", required=True, uniqueness="server"),
        attr(
            "members",
            "complex",
            "A list of members of the Group.",
            multi_valued=True,
            subs=[
                attr("value", description="Identifier of the member of this Group.", mutability="immutable"),
                attr(
                    "$ref",
                    "reference",
                    "The URI of the member resource.",
                    mutability="immutable",
                    references=["User", "Group"],
                ),
                attr("display", description="The member's display name.", mutability="readOnly"),
                attr(
                    "type", description="The type of the member.", mutability="immutable", canonical=["User", "Group"]
                ),
            ],
        ),
    ],
}

ENTERPRISE_USER_SCHEMA = {
    "id": ENTERPRISE_USER,
    "name": "EnterpriseUser",
    "description": "Enterprise User",
    "attributes": [
        attr("employeeNumber", description="Numeric or alphanumeric identifier assigned to a person."),
        attr("costCenter", description="Identifies the name of a cost center."),
        attr("organization", description="Identifies the name of an organization."),
        attr("division", description="Identifies the name of a division."),
        attr("department", description="Identifies the name of a department."),
        attr(
            "manager",
            "complex",
            "The User's manager.",
            subs=[
                attr("value", description="The id of the SCIM resource representing the User's manager."),
                attr("$ref", "reference", "The URI of the manager's User resource.", references=["User"]),
                attr("displayName", description="The displayName of the User's manager.", mutability="readOnly"),
            ],
        ),
    ],
}

USER_RESOURCE_TYPE = {
    "id": "User",
    "name": "User",
    "endpoint": "/Users",
    "description": "User Account",
    "schema": USER,
}

GROUP_RESOURCE_TYPE = {
    "id": "Group",
    "name": "Group",
    "endpoint": "/Groups",
    "description": "Group",
    "schema": GROUP,
}


@hookimpl
def register_schemas():
    return [USER_SCHEMA, GROUP_SCHEMA]


@hookimpl
def register_resource_types():
    return [USER_RESOURCE_TYPE, GROUP_RESOURCE_TYPE]


@hookimpl
def register_schema_extensions():
    return [SchemaExtension(resource_type="User", schema=ENTERPRISE_USER_SCHEMA, required=False)]
