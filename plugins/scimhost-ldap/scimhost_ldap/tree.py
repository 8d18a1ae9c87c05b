"""Where a source's entries live: the one place every DN and search base is made, so no query
of a source can name another source's subtree."""

from __future__ import annotations

from dataclasses import dataclass

from ldap.dn import escape_dn_chars, str2dn

from scimhost_ldap.settings import LdapSettings

# The RDN attribute of each resource type's entries, and the SCIM attribute its value is.
NAMING = {"User": ("uid", "userName"), "Group": ("cn", "displayName")}


@dataclass(frozen=True)
class Tree:
    """A source's subtree: its own entry, and below it one container per resource type."""

    source: str
    base: str
    containers: dict[str, str]

    @classmethod
    def of(cls, settings: LdapSettings, source: str) -> Tree:
        base = f"{settings.source_rdn.format(source=escape_dn_chars(source))},{settings.base_dn}"
        return cls(
            source,
            base,
            {"User": f"{settings.users_rdn},{base}", "Group": f"{settings.groups_rdn},{base}"},
        )

    def container(self, resource_type: str) -> str:
        try:
            return self.containers[resource_type]
        except KeyError:
            raise ValueError(f"the LDAP store keeps Users and Groups, not {resource_type}") from None

    def dn(self, resource_type: str, name: str) -> str:
        """The DN of the entry named `name` (its userName or displayName)."""
        attribute, _ = NAMING[resource_type]
        return f"{attribute}={escape_dn_chars(name)},{self.container(resource_type)}"

    def type_of(self, dn: str) -> str | None:
        """The resource type of an entry of this source's subtree, from its DN (None: not one)."""
        try:
            parent = str2dn(dn)[1:]
        except Exception:
            return None
        for resource_type, container in self.containers.items():
            if _same(parent, str2dn(container)):
                return resource_type
        return None

    def rdn_value(self, dn: str) -> str:
        return str(str2dn(dn)[0][0][1])


def _same(a: list, b: list) -> bool:
    fold = lambda d: [[(t.lower(), str(v).lower(), f) for t, v, f in rdn] for rdn in d]  # noqa: E731
    return fold(a) == fold(b)
