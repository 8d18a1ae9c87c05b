"""SCIM error responses (RFC 7644 §3.12) as an exception the whole host raises."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """A failure that is answered with a SCIM error body and the given HTTP status."""

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        # Extra response headers, such as WWW-Authenticate on a 401 or Allow on a 405.
        self.headers = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        """The error as the JSON document RFC 7644 §3.12 describes."""
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body

    def __repr__(self) -> str:
        return f"ScimError({self.status}, {self.detail!r}, scim_type={self.scim_type!r})"


# Makes the error a parser raises for a detail message (invalidFilter, invalidPath, ...).
ErrorFactory = Callable[[str], ScimError]
