"""The account store role: service accounts, token hashes, auth schemes' credentials and
per-source activity."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime

from scimhost.storage.store import Store
from scimhost.storage.values import Credential, FailedRequest, ServiceAccount, SourceActivity


class AccountStore(Store):
    """Keeps who may open a source and what its clients did. `purge_source` deletes the
    source's activity and failed requests, the service account with its tokens, and its
    credentials."""

    # --- service accounts and tokens -------------------------------------------------------

    @abstractmethod
    async def ensure_service_account(self, source: str, username: str) -> ServiceAccount:
        """The source's service account, created if it does not exist yet."""

    @abstractmethod
    async def service_accounts(self) -> list[ServiceAccount]:
        """Every service account, ordered by source slug."""

    @abstractmethod
    async def token_hashes(self, source: str, *, now: datetime) -> tuple[str, ...]:
        """The hashes of the tokens that open the source at `now`: the current one, if issued,
        and the one it replaced while its grace period lasts."""

    @abstractmethod
    async def set_token_hash(self, source: str, token_hash: str, *, grace_until: datetime | None = None) -> None:
        """Replace the source's token. The old one stops working at once, or with
        `grace_until` keeps working until then (an older previous token ends at once)."""

    @abstractmethod
    async def revoke_tokens(self, source: str) -> None:
        """End every token of the source at once: the current one, any in grace, and every
        session credential (issued access tokens)."""

    # --- credentials of auth scheme plugins ------------------------------------------------------

    @abstractmethod
    async def add_credential(self, source: str, credential: Credential) -> None:
        """Keep a credential of the source. Raises StorageError if the source has one of the
        same kind and id."""

    @abstractmethod
    async def get_credential(self, source: str, kind: str, credential_id: str) -> Credential | None:
        """The source's credential of that kind and id (expired ones too), or None; never
        another source's."""

    @abstractmethod
    async def list_credentials(self, source: str, kind: str) -> list[Credential]:
        """The source's credentials of a kind, oldest first."""

    @abstractmethod
    async def delete_credential(self, source: str, kind: str, credential_id: str) -> bool:
        """Delete one credential of the source; whether it existed."""

    @abstractmethod
    async def touch_credential(self, source: str, kind: str, credential_id: str, at: datetime) -> None:
        """Record that a credential was used at `at` (never moving `last_used` back)."""

    @abstractmethod
    async def prune_credentials(self, *, before: datetime) -> int:
        """Delete every source's credentials that expired before `before`; how many."""

    # --- per-source activity ---------------------------------------------------------------------

    @abstractmethod
    async def record_activity(
        self,
        source: str,
        minute: datetime,
        *,
        requests: int,
        errors: int,
        last_error_at: datetime | None = None,
        last_error: str | None = None,
    ) -> None:
        """Add one process's counts of a minute to the source's activity (each process adds
        its own; the newest error of the minute wins)."""

    @abstractmethod
    async def source_activity(self, source: str, *, since: datetime) -> SourceActivity:
        """The source's requests and errors since `since`, its last request's minute and its
        last error ever kept (activity older than `before` in prune_activity is gone)."""

    @abstractmethod
    async def record_failed_requests(self, source: str, failures: Sequence[FailedRequest]) -> None:
        """Keep these failed requests of the source (every process adds its own)."""

    @abstractmethod
    async def failed_requests(self, source: str, *, since: datetime, limit: int = 100) -> list[FailedRequest]:
        """The source's failed requests at or after `since`, newest first, at most `limit`."""

    @abstractmethod
    async def prune_activity(self, *, before: datetime) -> int:
        """Delete every source's activity of minutes before `before`, and its failed requests
        from before then; how many rows."""
