"""The `[storage.ldap]` table."""

from __future__ import annotations

from dataclasses import dataclass, field

# SCIM attribute (as a filter's index path names it) -> LDAP attribute, for inetOrgPerson.
# Each is written from the document whenever the document has the value, and only then, so a
# filter on it answers exactly what the document holds. BOOLEAN_ATTRIBUTES hold TRUE or FALSE.
USER_ATTRIBUTES = {
    "active": "scimhostActive",
    "displayname": "displayName",
    "name.givenname": "givenName",
    "emails.value": "mail",
    "title": "title",
    "preferredlanguage": "preferredLanguage",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:employeenumber": "employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department": "departmentNumber",
}
GROUP_ATTRIBUTES: dict[str, str] = {}
BOOLEAN_ATTRIBUTES = frozenset({"scimhostActive"})


@dataclass(frozen=True)
class LdapSettings:
    """Where the directory is, how to bind, and where each source's entries live."""

    # ldap:// or ldaps:// URL of the directory.
    url: str = "ldap://127.0.0.1:389"
    bind_dn: str = ""
    # The environment variable holding the bind password (never the password itself).
    bind_password_env: str = "SCIMHOST_LDAP_PASSWORD"
    # The entry under which every source gets its own subtree (created when missing).
    base_dn: str = ""
    # Each source's subtree below base_dn; `{source}` is the source's slug.
    source_rdn: str = "ou={source}"
    users_rdn: str = "ou=people"
    groups_rdn: str = "ou=groups"
    # The value a groupOfNames without members holds (its `member` is required); never shown.
    empty_member: str = "cn=empty-membership-placeholder"
    # Connections in the pool, and how long any operation may take before the request gets 503.
    pool_size: int = 4
    timeout_seconds: float = 5.0
    # A connection is replaced after this many sorted (VLV) searches: below the server's
    # per-connection limit (OpenLDAP sssvlv-maxperconn, whose default is 5), and pool_size times
    # it below its global one (sssvlv-max).
    sorted_searches_per_connection: int = 4
    # More SCIM attribute -> LDAP attribute pairs (overriding the defaults of the same key); an
    # LDAP attribute "" drops a default. Only attributes with an EQUALITY and SUBSTR rule that
    # folds case, of directoryString or IA5String syntax, belong here.
    user_attributes: dict[str, str] = field(default_factory=dict)
    group_attributes: dict[str, str] = field(default_factory=dict)
