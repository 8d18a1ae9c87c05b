"""scimhost storage backend `ldap`: a source's Users and Groups as entries of an LDAP directory."""

from __future__ import annotations

from scimhost.hookspecs import hookimpl
from scimhost_ldap.settings import LdapSettings
from scimhost_ldap.store import LdapStore

__all__ = ["LdapSettings", "LdapStore"]


@hookimpl
def register_storage_backends():
    return [LdapStore]
