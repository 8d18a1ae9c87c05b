"""Sources: the provisioning connections a host serves, each under its own base path."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from scimhost.config import ConfigError, Settings, SourceSettings
from scimhost.rate_limits import RateLimits
from scimhost.scim.catalog import Catalog
from scimhost.source_paths import base_path
from scimhost.tokens import hash_token


@dataclass(frozen=True)
class Source:
    """A configured source as the running host sees it."""

    settings: SourceSettings
    base_url: str
    catalog: Catalog
    # Hash of the token read from `token_env`; None when the host issues the token.
    env_token_hash: str | None = None
    # Its requests' limits for the whole host (`[limits]`, overridden by `[sources.limits]`).
    limits: RateLimits = RateLimits(0.0, 0, 0)

    @property
    def slug(self) -> str:
        return self.settings.slug

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def base_path(self) -> str:
        return base_path(self.slug)

    @property
    def service_account(self) -> str:
        """The username of the service account the source's token belongs to."""
        return f"scimhost-source-{self.slug}"

    @property
    def token_from_env(self) -> bool:
        return self.settings.token_env is not None


def build_sources(
    settings: Settings,
    catalog_for: Callable[[int, SourceSettings], Catalog],
    environ: Mapping[str, str] | None = None,
    *,
    strict: bool = True,
) -> dict[str, Source]:
    """The configured sources by slug.

    With `strict`, an unset or weak `token_env` token is an error; without, such a source gets
    no token at all (commands that do not serve requests still work).
    """
    environ = os.environ if environ is None else environ
    problems = []
    sources = {}
    for index, item in enumerate(settings.sources):
        env_hash = None
        if item.token_env is not None:
            token = environ.get(item.token_env, "")
            if not token:
                problems.append(
                    f"sources[{index}].token_env: environment variable {item.token_env} "
                    f"is not set or empty (source {item.slug!r})"
                )
            elif len(token) < 32:
                problems.append(
                    f"sources[{index}].token_env: the token in {item.token_env} is shorter "
                    f"than 32 characters (source {item.slug!r})"
                )
            else:
                env_hash = hash_token(token)
        catalog = catalog_for(index, item)
        sources[item.slug] = Source(
            settings=item,
            base_url=settings.server.base_url + base_path(item.slug),
            catalog=catalog,
            env_token_hash=env_hash,
            limits=rate_limits(settings, item),
        )
    if problems and strict:
        raise ConfigError(problems, settings.path)
    return sources


def rate_limits(settings: Settings, source: SourceSettings) -> RateLimits:
    """The source's limits: its own `[sources.limits]` keys, else `[limits]`'s."""
    own, host = source.limits, settings.limits

    def pick(mine, default):
        return default if mine is None else mine

    return RateLimits(
        pick(own.source_rate_per_second, host.source_rate_per_second),
        pick(own.source_rate_burst, host.source_rate_burst),
        pick(own.source_max_concurrent, host.source_max_concurrent),
    )
