"""Discovery documents (RFC 7644 §4) built from what the host really supports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


@dataclass(frozen=True)
class Capabilities:
    """The optional protocol features this build implements; each flag must be true in fact."""

    patch: bool = False
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload_size: int = 0
    filter: bool = False
    filter_max_results: int = 0
    sort: bool = False
    etag: bool = False
    change_password: bool = False
    # RFC 9865 pagination
    cursor: bool = False
    default_page_size: int = 100
    max_page_size: int = 100


def service_provider_config(
    capabilities: Capabilities, authentication_schemes: Iterable[dict[str, Any]], location: str
) -> dict[str, Any]:
    """The ServiceProviderConfig resource (RFC 7643 §5)."""
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": capabilities.patch},
        "bulk": {
            "supported": capabilities.bulk,
            "maxOperations": capabilities.bulk_max_operations,
            "maxPayloadSize": capabilities.bulk_max_payload_size,
        },
        "filter": {"supported": capabilities.filter, "maxResults": capabilities.filter_max_results},
        "changePassword": {"supported": capabilities.change_password},
        "sort": {"supported": capabilities.sort},
        "etag": {"supported": capabilities.etag},
        "pagination": {
            "cursor": capabilities.cursor,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": capabilities.default_page_size,
            "maxPageSize": capabilities.max_page_size,
        },
        "authenticationSchemes": list(authentication_schemes),
        "meta": {"resourceType": "ServiceProviderConfig", "location": location},
    }
