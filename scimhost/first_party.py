"""The plugins scimhost's own repository ships, by what they register: the install line an
error gives when a config names one that is not installed."""

from __future__ import annotations

# (kind, name) -> the distribution in plugins/ that registers it.
DISTRIBUTIONS: dict[tuple[str, str], str] = {
    ("event sink type", "webhook"): "scimhost-webhook",
    ("event sink type", "nats"): "scimhost-nats",
    ("storage backend", "memory"): "scimhost-memory",
    ("storage backend", "ldap"): "scimhost-ldap",
    ("auth scheme", "oauth"): "scimhost-oauth",
    ("event sink type", "set-push"): "scimhost-set",
    ("event sink type", "set-poll"): "scimhost-set",
}


def install_hint(kind: str, name: object) -> str:
    """`; it is provided by ...: pip install ...` for a first-party plugin, else ``."""
    distribution = DISTRIBUTIONS.get((kind, name)) if isinstance(name, str) else None
    if distribution is None:
        return ""
    return (
        f"; it is provided by the distribution {distribution}: "
        f"pip install ./plugins/{distribution} (from a scimhost checkout), then restart"
    )
