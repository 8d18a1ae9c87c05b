"""The interface an auth scheme plugin implements (`register_auth_schemes`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from scimhost.config import Settings
    from scimhost.sources import Source
    from scimhost.storage.backend import StorageBackend


@dataclass(frozen=True)
class Principal:
    """Who a request was authenticated as: a source's service account, by one scheme."""

    source: str
    account: str
    scheme: str


@dataclass(frozen=True)
class SchemeDetail:
    """One line the admin pages show of a scheme for a source (never a secret's value)."""

    label: str
    value: str
    # Something the operator should act on (a secret about to expire).
    warning: bool = False


class AuthScheme(ABC):
    """Authenticates requests to one source; one instance serves every source of the host."""

    name: ClassVar[str]
    # Sent in `WWW-Authenticate` on a 401.
    challenge: ClassVar[str]
    # The dataclass typing a source's own table of this scheme (`[sources.<name>]`), or None
    # when the scheme has no per-source settings. Read into `SourceSettings.auth_options[name]`
    # (its defaults when the table is absent) for every source whose `auth` lists the scheme.
    source_settings_type: ClassVar[type | None] = None

    def __init__(self, settings: Settings, storage: StorageBackend) -> None:
        self.settings = settings
        self.storage = storage

    @abstractmethod
    async def authenticate(self, source: Source, headers: Mapping[str, str]) -> Principal | None:
        """The principal the request's credentials open `source` as, or None if they do not."""

    def credentials_changed(self, source: str) -> None:
        """This process replaced the source's stored credentials: forget any cached copy.

        Other processes and hosts learn of the change only through the store; a scheme that
        caches says in its settings how long that may take."""

    def describe_for(self, source: Source) -> dict[str, Any]:
        """This scheme's `authenticationSchemes` entry in `source`'s ServiceProviderConfig (where
        it may name the source's own endpoints); `describe()` by default."""
        return self.describe()

    async def details(self, source: Source) -> list[SchemeDetail]:
        """What the admin overview shows of this scheme for `source`; nothing by default."""
        return []

    def warnings(self, sources: list[Source]) -> list[str]:
        """Likely mistakes in the settings of these sources (those that list the scheme), for
        `check` and `serve` to warn of; none by default."""
        return []

    def describe_source(self, source: Source) -> dict[str, Any]:
        """What an operator copies into an identity provider to use this scheme with `source`
        (`sources list --json` shows it under the scheme's name); nothing by default."""
        return {}

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """This scheme as a ServiceProviderConfig `authenticationSchemes` entry."""
