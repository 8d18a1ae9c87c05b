"""TOML configuration read into typed, frozen settings; every mistake names its key."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scimhost.first_party import install_hint
from scimhost.mapping.runtime import MappingError
from scimhost.profiles import PROFILES, profile_defaults
from scimhost.scim.names import is_attribute_name, is_schema_urn

CONFIG_ENV = "SCIMHOST_CONFIG"
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


NO_CONFIG_FILE = "no config file given: use -c FILE or $SCIMHOST_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per mistake."""

    def __init__(self, problems: list[str], path: Path | None = None) -> None:
        self.problems = problems
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__("\n".join(where + p for p in problems))


class InvalidSettings(ValueError):
    """Raised by a settings table's `__post_init__` with every mistake it found at once, each a
    `key: why` line (a plain ValueError gives one)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def refuse(problems: list[str]) -> None:
    """End a `__post_init__` that collected `problems`: raise them together, if any."""
    if problems:
        raise InvalidSettings(problems)


@dataclass(frozen=True)
class ServerSettings:
    """The `[server]` table: where the host listens and how it presents itself."""

    host: str = "127.0.0.1"
    port: int = 8080
    # Base of meta.location and of the printed base URLs; defaults to http://host:port.
    public_url: str = ""
    max_body_bytes: int = 1_048_576
    workers: int = 1
    shutdown_timeout: float = 30.0
    # Seconds a connection may go without a complete request head: from connecting, and from
    # the end of each response (idle keep-alive). Slow or stalled headers are cut off with it.
    idle_timeout: float = 60.0
    # Seconds a request's body may take to arrive once its head is in; then 408 and close.
    body_timeout: float = 60.0
    access_log: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port: must be between 0 and 65535")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes: must be at least 1024")
        if self.workers < 1:
            raise ValueError("workers: must be at least 1")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout: must not be negative")
        for name in ("idle_timeout", "body_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ValueError(f"{name}: must be more than 0 and at most 3600 seconds")
        if self.public_url:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("public_url: must be an absolute http:// or https:// URL")
            if parts.query or parts.fragment:
                raise ValueError("public_url: must not have a query or fragment")

    @property
    def base_url(self) -> str:
        """The public URL with no trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class LimitSettings:
    """The `[limits]` table: what one request may ask of the server."""

    # The largest page (ServiceProviderConfig filter.maxResults) and the page without `count`.
    max_results: int = 1000
    default_page_size: int = 100
    # Filters longer or nested deeper are refused before any SQL is built (400 invalidFilter).
    max_filter_length: int = 4096
    max_filter_depth: int = 16
    # PATCH requests with more operations are refused (413).
    max_patch_operations: int = 1000
    # Bulk requests with more operations are refused (413); ServiceProviderConfig bulk.maxOperations.
    max_bulk_operations: int = 1000
    # Each source's requests, per host: a token bucket (per second, and the burst it allows)
    # and a cap on those in progress at once; over either, 429 with Retry-After. 0: no limit.
    # A source's `[sources.limits]` table overrides them.
    source_rate_per_second: float = 100.0
    source_rate_burst: int = 200
    source_max_concurrent: int = 32

    def __post_init__(self) -> None:
        for name in (
            "max_results",
            "default_page_size",
            "max_filter_length",
            "max_filter_depth",
            "max_patch_operations",
            "max_bulk_operations",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        check_rate_limits(self.source_rate_per_second, self.source_rate_burst, self.source_max_concurrent, "source_")
        if self.default_page_size > self.max_results:
            raise ValueError("default_page_size: must not exceed max_results")


def check_rate_limits(rate: float | None, burst: int | None, concurrent: int | None, prefix: str) -> None:
    if rate is not None and rate < 0:
        raise ValueError(f"{prefix}rate_per_second: must not be negative (0: no limit)")
    if burst is not None and burst < 0:
        raise ValueError(f"{prefix}rate_burst: must not be negative")
    if rate and burst == 0:
        raise ValueError(f"{prefix}rate_burst: must be at least 1 when a rate is set")
    if concurrent is not None and concurrent < 0:
        raise ValueError(f"{prefix}max_concurrent: must not be negative (0: no limit)")


@dataclass(frozen=True)
class SourceLimitSettings:
    """A source's `[sources.limits]` table: its own rate limits, else `[limits]`'s."""

    source_rate_per_second: float | None = None
    source_rate_burst: int | None = None
    source_max_concurrent: int | None = None

    def __post_init__(self) -> None:
        check_rate_limits(self.source_rate_per_second, self.source_rate_burst, self.source_max_concurrent, "source_")


@dataclass(frozen=True)
class PluginSettings:
    """The `[plugins]` table."""

    disable: tuple[str, ...] = ()


@dataclass(frozen=True)
class MappingSettings:
    """One `[[sources.mappings]]` entry: a property mapping expression of a source."""

    name: str
    expression: str
    resource_type: str = "User"
    # Top-level attributes the client sends that no schema declares (a custom extension's URN,
    # a SCIM 1.1-style URN), by their JSON names: their variables are no typos.
    undeclared_attributes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [n for n in self.undeclared_attributes if not (is_attribute_name(n) or is_schema_urn(n))]
        if bad:
            raise ValueError(
                f"undeclared_attributes: {', '.join(map(repr, bad))} is neither an attribute name nor a schema URN"
            )


@dataclass(frozen=True)
class MappingPoolSettings:
    """The `[mappings]` table: how mapping expressions are evaluated."""

    # "process": a pool of worker processes; "inline": in the server process, for tests only.
    mode: str = "process"
    workers: int = 2
    timeout_seconds: float = 2.0
    # How long a new worker may take to start (interpreter and runtime imported); not counted
    # in any evaluation's timeout.
    startup_timeout_seconds: float = 60.0
    memory_mb: int = 512
    max_evaluations: int = 10_000
    max_queue: int = 64
    max_iterations: int = 100_000
    max_result_bytes: int = 65_536

    def __post_init__(self) -> None:
        if self.mode not in ("process", "inline"):
            raise ValueError("mode: must be process or inline")
        for name in ("workers", "max_evaluations", "max_queue", "max_iterations", "max_result_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds: must be positive")
        if self.startup_timeout_seconds <= 0:
            raise ValueError("startup_timeout_seconds: must be positive")
        if self.memory_mb < 64:
            raise ValueError("memory_mb: must be at least 64")


UNKNOWN_ATTRIBUTE_POLICIES = ("keep", "reject", "drop")
PASSWORD_POLICIES = ("hash", "refuse", "drop")
DELETE_POLICIES = ("delete", "soft")
RESTORE_KEYS = ("externalId", "userName", "displayName")


@dataclass(frozen=True)
class SourceSettings:
    """One `[[sources]]` entry: a provisioning connection with its own URL and token."""

    slug: str
    name: str
    # Read the source's token from this environment variable instead of issuing one.
    token_env: str | None = None
    auth: tuple[str, ...] = ("bearer",)
    # Schema extension URNs this source accepts; without the key, every registered or declared one.
    extensions: tuple[str, ...] | None = None
    mapping_runtime: str = "restrictedpython"
    mappings: tuple[MappingSettings, ...] = ()
    # Top-level attributes no schema of the resource type declares (custom extensions of Entra
    # and Okta, SCIM 1.1-style URNs): "keep" stores and returns them as sent, "reject" answers
    # 400, "drop" ignores them (logged at INFO).
    unknown_attributes: str = "keep"
    # The User's `password`: "hash" keeps a one-way hash (never returned); "refuse" answers
    # 400 invalidValue to any write carrying one (the IPSIE rule); "drop" ignores it.
    passwords: str = "hash"
    # A DELETE: "delete" forgets the resource; "soft" keeps it aside, invisible, for
    # `soft_delete_days`, and a POST matching it by a `restore_by` key brings it back.
    on_delete: str = "delete"
    restore_by: tuple[str, ...] = ("externalId",)
    soft_delete_days: int = 30
    # A provisioning profile ("ipsie-al1") choosing the defaults above its own way, and whose
    # unmet rules `check` reports (scimhost/profiles.py).
    profile: str | None = None
    limits: SourceLimitSettings = field(default_factory=SourceLimitSettings)
    # Each listed auth scheme's own table (`[sources.<scheme>]`), typed by the scheme; not a
    # TOML key of its own.
    auth_options: dict[str, Any] = field(default_factory=dict, metadata={"toml": False})

    def __post_init__(self) -> None:
        problems = []
        if not SLUG_PATTERN.match(self.slug):
            problems.append("slug: must be 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit")
        if not self.name.strip():
            problems.append("name: must not be empty")
        if self.token_env is not None and not ENV_NAME_PATTERN.match(self.token_env):
            problems.append("token_env: must be an environment variable name")
        if not self.auth:
            problems.append("auth: must name at least one auth scheme")
        if self.profile is not None and self.profile not in PROFILES:
            problems.append(f"profile: must be one of {', '.join(PROFILES)}")
        if self.on_delete not in DELETE_POLICIES:
            problems.append(f"on_delete: must be one of {', '.join(DELETE_POLICIES)}")
        unknown_keys = [key for key in self.restore_by if key not in RESTORE_KEYS]
        if unknown_keys:
            problems.append(f"restore_by: {unknown_keys[0]!r} is not one of {', '.join(RESTORE_KEYS)}")
        if not 1 <= self.soft_delete_days <= 36500:
            problems.append("soft_delete_days: must be between 1 and 36500")
        if self.passwords not in PASSWORD_POLICIES:
            problems.append(f"passwords: must be one of {', '.join(PASSWORD_POLICIES)}")
        if self.unknown_attributes not in UNKNOWN_ATTRIBUTE_POLICIES:
            problems.append(f"unknown_attributes: must be one of {', '.join(UNKNOWN_ATTRIBUTE_POLICIES)}")
        names = [m.name for m in self.mappings]
        if len(names) != len(set(names)):
            problems.append("mappings: mapping names must be unique within a source")
        refuse(problems)


@dataclass(frozen=True)
class SchemaExtensionSettings:
    """One `[[schema_extensions]]` entry: an operator's extension schema, inline or from a file."""

    resource_type: str
    required: bool = False
    # A SCIM Schema resource as JSON, relative to the config file's folder...
    file: str | None = None
    # ...or the same document inline.
    schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.schema is None):
            raise ValueError("file: give exactly one of file and schema")


@dataclass(frozen=True)
class IndexSettings:
    """One `[[indexes]]` entry: the attributes of a resource type that get index rows."""

    resource_type: str
    # Attribute paths as a filter names them ("userName", "emails.value", "name", an extension
    # attribute with its URN); a complex attribute covers its sub-attributes. `id`, `meta`,
    # members and groups are always filterable. Filters and sortBy on any other attribute of
    # the type answer 400 invalidFilter.
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageSettings:
    """The `[storage]` table: the chosen backend and its own typed settings table, and which
    backend holds each storage role (`resources`, `accounts`, `outbox`)."""

    backend: str
    options: Any
    # Role -> backend name: `backend` for the roles it implements, a `[storage] <role> = "..."`
    # override, else the built-in store.
    roles: Mapping[str, str] = field(default_factory=dict)
    # Backend name -> its typed `[storage.<name>]` table, for every backend a role names.
    tables: Mapping[str, Any] = field(default_factory=dict)
    # Where resources and events live in two stores: an intent older than this belongs to a
    # process that died, and recovery decides it (a write is given up after a third of it).
    intent_timeout_seconds: float = 60.0


@dataclass(frozen=True)
class SinkSettings:
    """One `[[events.sinks]]` entry: where events go, through which sink type."""

    name: str
    type: str
    # Only these sources' events (default: every source's).
    sources: tuple[str, ...] | None = None
    # Deliveries of this sink in flight at once (each of a different resource).
    concurrency: int = 4
    # The sink type's own keys, typed by its `settings_type`.
    options: Any = None


@dataclass(frozen=True)
class EventSettings:
    """The `[events]` table: the event log every committed write adds to, and its sinks."""

    # `scimhost events prune` deletes events older than this many days.
    retention_days: int = 90
    # Whether this serve process may run the dispatcher (one runs per database, by lease).
    dispatcher: bool = True
    # How often the dispatcher looks for work written by other processes.
    poll_seconds: float = 0.5
    sinks: tuple[SinkSettings, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.retention_days <= 36500:
            raise ValueError("retention_days: must be between 1 and 36500")
        if not 0.01 <= self.poll_seconds <= 60:
            raise ValueError("poll_seconds: must be between 0.01 and 60")

    def sinks_for(self, source: str) -> tuple[str, ...]:
        """The names of the sinks that take this source's events."""
        return tuple(s.name for s in self.sinks if s.sources is None or source in s.sources)


@dataclass(frozen=True)
class AdminSettings:
    """The `[admin]` table: the operators' listener (metrics, read-only pages, JSON API)."""

    enabled: bool = True
    # host:port, apart from the SCIM port so that it is never exposed with it by accident.
    listen: str = "127.0.0.1:8081"
    # When set, the environment variable holding the token every admin request must present
    # (as a bearer header, or through the login form's session cookie).
    token_env: str | None = None
    # Without a token the pages show everyone's data to whoever reaches them: `serve` refuses
    # that on an address other hosts can reach unless this says it is meant.
    allow_anonymous: bool = False

    def __post_init__(self) -> None:
        host, port = split_listen(self.listen)
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("listen: must be host:port (for example 127.0.0.1:8081)")
        if self.token_env is not None and not self.token_env:
            raise ValueError("token_env: must name an environment variable")

    @property
    def address(self) -> tuple[str, int]:
        host, port = split_listen(self.listen)
        return host, int(port)


def split_listen(listen: str) -> tuple[str, str]:
    """`host:port` (or `[v6]:port`) as its two parts."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), port


@dataclass(frozen=True)
class LoggingSettings:
    """The `[logging]` table."""

    level: str = "INFO"
    # text: one readable line per message; json: one JSON object per line.
    format: str = "text"
    # Whether access lines carry query strings. Filters hold user names and emails, so by
    # default only the attribute names a filter uses are logged.
    query_strings: bool = False
    # Whether /healthz and the admin listener's requests are access-logged.
    log_health_and_metrics: bool = False

    def __post_init__(self) -> None:
        if self.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("level: must be DEBUG, INFO, WARNING or ERROR")
        if self.format not in ("text", "json"):
            raise ValueError("format: must be text or json")


@dataclass(frozen=True)
class Settings:
    """Everything the host was configured with."""

    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    mappings: MappingPoolSettings = field(default_factory=MappingPoolSettings)
    events: EventSettings = field(default_factory=EventSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    storage: StorageSettings | None = None
    plugins: PluginSettings = field(default_factory=PluginSettings)
    sources: tuple[SourceSettings, ...] = ()
    schema_extensions: tuple[SchemaExtensionSettings, ...] = ()
    indexes: tuple[IndexSettings, ...] = ()
    # Tables owned by plugins through `register_settings`, keyed by table name.
    plugin_tables: Mapping[str, Any] = field(default_factory=dict)
    # The config file, and the folder relative paths in it are resolved against.
    path: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)

    def command(self, words: str) -> str:
        """A `scimhost` command line for this host, to copy: it names the config file the host
        was read from, so that it reaches the same sources and store from any shell."""
        config = f" -c {shlex.quote(str(self.path))}" if self.path is not None else ""
        return f"scimhost{config} {words}"


@dataclass(frozen=True)
class SettingsTable:
    """A top-level TOML table a plugin owns (returned by `register_settings`)."""

    name: str
    type: type
    description: str = ""


DEFAULT_STORAGE_BACKEND = "tortoise"
# The storage roles a backend may take (scimhost.storage.backend.ROLES).
STORAGE_ROLES = ("resources", "accounts", "outbox")
CORE_TABLES = (
    "server",
    "limits",
    "mappings",
    "events",
    "admin",
    "logging",
    "storage",
    "plugins",
    "sources",
    "schema_extensions",
    "indexes",
)


def config_path_from(cli_value: str | None) -> Path | None:
    """The config file named on the command line, else by SCIMHOST_CONFIG, else none."""
    value = cli_value or os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def read_config_file(path: Path | None) -> dict:
    """The raw TOML document (empty without a file)."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(["config file not found"], path) from None
    except OSError as exc:
        raise ConfigError([f"cannot read config file: {exc.strerror}"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], path) from None


def read_plugin_settings(raw: dict, path: Path | None = None) -> PluginSettings:
    """The `[plugins]` table alone: needed before plugins load, to honour `disable`."""
    problems: list[str] = []
    settings = load_table(PluginSettings, raw.get("plugins", {}), "plugins", problems)
    if problems:
        raise ConfigError(problems, path)
    return settings


def build_settings(
    raw: dict,
    *,
    path: Path | None,
    storage_backends: Mapping[str, type],
    auth_schemes: Mapping[str, Any],
    plugin_tables: Mapping[str, SettingsTable],
    event_sinks: Mapping[str, type] | None = None,
    mapping_runtimes: Mapping[str, Any] | None = None,
    resource_types: Collection[str] | None = None,
    storage_roles: Mapping[str, Collection[str]] | None = None,
) -> Settings:
    """Validate the whole document against the core tables and those plugins registered,
    reporting every mistake at once.

    `storage_backends` maps backend names to their settings types, `storage_roles` to the roles
    each implements (all of them when not given); `mapping_runtimes` (runtime
    classes) and `resource_types` (names), when given, are what sources and mappings may name.
    """
    problems: list[str] = []
    for key in raw:
        if key not in CORE_TABLES and key not in plugin_tables:
            problems.append(f"{key}: unknown key")

    server = load_table(ServerSettings, raw.get("server", {}), "server", problems)
    limits = load_table(LimitSettings, raw.get("limits", {}), "limits", problems)
    mapping_pool = load_table(MappingPoolSettings, raw.get("mappings", {}), "mappings", problems)
    events = _load_events(raw.get("events", {}), event_sinks, problems)
    plugins = load_table(PluginSettings, raw.get("plugins", {}), "plugins", problems)
    admin = load_table(AdminSettings, raw.get("admin", {}), "admin", problems)
    logging_settings = load_table(LoggingSettings, raw.get("logging", {}), "logging", problems)
    storage = _load_storage(raw.get("storage", {}), storage_backends, problems, storage_roles)
    sources = _load_sources(raw.get("sources", []), auth_schemes, problems, mapping_runtimes, resource_types)
    extensions = _load_list(SchemaExtensionSettings, raw.get("schema_extensions", []), "schema_extensions", problems)
    for index, extension in enumerate(extensions):
        if extension is not None and resource_types is not None and extension.resource_type not in resource_types:
            problems.append(
                f"schema_extensions[{index}].resource_type: no resource type {extension.resource_type!r} "
                f"(resource types: {', '.join(resource_types)})"
            )
    indexes = _load_list(IndexSettings, raw.get("indexes", []), "indexes", problems)
    seen_types: set[str] = set()
    for index, entry in enumerate(indexes):
        if entry is None:
            continue
        if resource_types is not None and entry.resource_type not in resource_types:
            problems.append(
                f"indexes[{index}].resource_type: no resource type {entry.resource_type!r} "
                f"(resource types: {', '.join(resource_types)})"
            )
        if entry.resource_type in seen_types:
            problems.append(f"indexes[{index}].resource_type: {entry.resource_type!r} is listed twice")
        seen_types.add(entry.resource_type)
    tables = {name: load_table(table.type, raw.get(name, {}), name, problems) for name, table in plugin_tables.items()}
    slugs = {s.slug for s in sources}
    for index, sink in enumerate(events.sinks if events else ()):
        for slug in sink.sources or ():
            if slug not in slugs:
                known = ", ".join(sorted(slugs)) or "none"
                problems.append(f"events.sinks[{index}].sources: no source {slug!r} is configured (sources: {known})")
    if problems:
        raise ConfigError(problems, path)
    return Settings(
        server=server,
        limits=limits,
        mappings=mapping_pool,
        events=events,
        admin=admin,
        logging=logging_settings,
        storage=storage,
        plugins=plugins,
        sources=tuple(sources),
        schema_extensions=tuple(extensions),
        indexes=tuple(i for i in indexes if i is not None),
        plugin_tables=tables,
        path=path,
        base_dir=path.parent.resolve() if path else Path.cwd(),
    )


SINK_KEYS = ("name", "type", "sources", "concurrency")


def _load_events(raw: Any, sink_types: Mapping[str, type] | None, problems: list[str]) -> EventSettings:
    """`[events]` and its `[[events.sinks]]`, each entry's own keys typed by its sink type."""
    if not isinstance(raw, dict):
        problems.append("events: must be a table")
        return EventSettings()
    entries = raw.get("sinks", [])
    events = load_table(EventSettings, {k: v for k, v in raw.items() if k != "sinks"}, "events", problems)
    if not isinstance(entries, list):
        problems.append("events.sinks: must be an array of tables ([[events.sinks]])")
        return events or EventSettings()
    sinks, names = [], set()
    for index, entry in enumerate(entries):
        where = f"events.sinks[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        sink_type = entry.get("type")
        known = sink_types or {}
        if not isinstance(sink_type, str) or sink_type not in known:
            problems.append(
                f"{where}.type: no event sink type {sink_type!r} (installed: {', '.join(sorted(known)) or 'none'})"
                + install_hint("event sink type", sink_type)
            )
            continue
        core = load_table(SinkSettings, {k: v for k, v in entry.items() if k in SINK_KEYS}, where, problems)
        options = load_table(known[sink_type], {k: v for k, v in entry.items() if k not in SINK_KEYS}, where, problems)
        if core is None or options is None:
            continue
        if core.name in names:
            problems.append(f"{where}.name: the sink name {core.name!r} is used twice")
        names.add(core.name)
        if not SLUG_PATTERN.match(core.name):
            problems.append(f"{where}.name: must be 1-63 characters of a-z, 0-9, '-' and '_'")
        if core.concurrency < 1:
            problems.append(f"{where}.concurrency: must be at least 1")
        sinks.append(dataclasses.replace(core, options=options))
    return dataclasses.replace(events or EventSettings(), sinks=tuple(sinks))


def _load_storage(
    raw: Any, backends: Mapping[str, type], problems: list[str], roles: Mapping[str, Collection[str]] | None
) -> StorageSettings | None:
    if not isinstance(raw, dict):
        problems.append("storage: expected a table")
        return None
    backend = raw.get("backend", DEFAULT_STORAGE_BACKEND)
    if not isinstance(backend, str):
        problems.append(f"storage.backend: expected a string, got {_type_name(backend)}")
        return None
    registered = ", ".join(sorted(backends)) or "none"
    for key in raw:
        if key not in ("backend", "intent_timeout_seconds") and key not in STORAGE_ROLES and key not in backends:
            problems.append(
                f"storage.{key}: unknown key (storage backends: {registered})" + install_hint("storage backend", key)
            )
    if backend not in backends:
        problems.append(
            f"storage.backend: no storage backend named {backend!r} (registered: {registered})"
            + install_hint("storage backend", backend)
        )
        return None
    chosen: dict[str, str] = {}
    for role in STORAGE_ROLES:
        named = raw.get(role)
        if named is None:
            implements = roles is None or role in roles.get(backend, STORAGE_ROLES)
            chosen[role] = backend if implements else DEFAULT_STORAGE_BACKEND
        elif not isinstance(named, str) or named not in backends:
            problems.append(f"storage.{role}: no storage backend named {named!r} (registered: {registered})")
        elif roles is not None and role not in roles.get(named, STORAGE_ROLES):
            problems.append(f"storage.{role}: the storage backend {named!r} does not implement the {role} role")
        else:
            chosen[role] = named
    if len(chosen) < len(STORAGE_ROLES):
        return None
    tables = {
        name: load_table(backends[name], raw.get(name, {}), f"storage.{name}", problems)
        for name in dict.fromkeys([backend, *chosen.values()])
    }
    timeout = raw.get("intent_timeout_seconds", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        problems.append("storage.intent_timeout_seconds: expected a positive number of seconds")
        timeout = 60.0
    return StorageSettings(
        backend=backend, options=tables[backend], roles=chosen, tables=tables, intent_timeout_seconds=float(timeout)
    )


def _load_sources(
    raw: Any,
    auth_schemes: Mapping[str, Any],
    problems: list[str],
    mapping_runtimes: Mapping[str, Any] | None,
    resource_types: Collection[str] | None,
) -> list[SourceSettings]:
    if not isinstance(raw, list):
        problems.append("sources: expected an array of tables ([[sources]])")
        return []
    sources = []
    seen: dict[str, int] = {}
    runtimes: dict[str, Any] = {}
    for index, item in enumerate(raw):
        where = f"sources[{index}]"
        item, options = _auth_tables(item, auth_schemes, where, problems)
        source = load_table(SourceSettings, item, where, problems)
        if source is not None and source.profile is not None:
            chosen = profile_defaults(source.profile, auth_schemes)
            source = dataclasses.replace(source, **{key: value for key, value in chosen.items() if key not in item})
        if source is not None:
            for scheme in options:
                if scheme not in source.auth:
                    problems.append(f"{where}.{scheme}: the source's auth does not list {scheme!r}")
            for scheme in source.auth:
                scheme_type = getattr(auth_schemes.get(scheme), "source_settings_type", None)
                if scheme_type is not None and scheme not in options:
                    defaults = load_table(scheme_type, {}, f"{where}.{scheme}", problems)
                    if defaults is not None:
                        options[scheme] = defaults
            source = dataclasses.replace(source, auth_options=options)
        if source is not None:
            if source.slug in seen:
                problems.append(f"{where}.slug: {source.slug!r} is already used by sources[{seen[source.slug]}]")
            seen.setdefault(source.slug, index)
            sources.append(source)
        # What the source names must exist, checked even when its own keys were wrong, so that
        # one run reports every mistake of the table.
        auth, runtime, mappings = _source_references(source, item)
        for scheme in auth:
            if scheme not in auth_schemes:
                known = ", ".join(sorted(auth_schemes)) or "none"
                problems.append(
                    f"{where}.auth: no auth scheme named {scheme!r} (registered: {known})"
                    + install_hint("auth scheme", scheme)
                )
        if mapping_runtimes is not None and runtime not in mapping_runtimes:
            known = ", ".join(sorted(mapping_runtimes)) or "none"
            problems.append(f"{where}.mapping_runtime: no mapping runtime named {runtime!r} (registered: {known})")
        for number, mapping in enumerate(mappings):
            at = f"{where}.mappings[{number}]"
            if resource_types is not None and mapping.resource_type not in resource_types:
                # A mapping for no resource type would never run: a mistake, whatever the command.
                problems.append(
                    f"{at}.resource_type: no resource type {mapping.resource_type!r} "
                    f"(resource types: {', '.join(resource_types)})"
                )
            if mapping_runtimes is not None and runtime in mapping_runtimes:
                if runtime not in runtimes:
                    runtimes[runtime] = mapping_runtimes[runtime]()
                label = f"source {item.get('slug')!r} mapping {mapping.name!r}"
                try:
                    runtimes[runtime].compile(mapping.expression, label=label)
                except MappingError as exc:
                    problems.append(f"{at}.expression: {exc}")
    return sources


def _auth_tables(
    item: Any, auth_schemes: Mapping[str, Any], where: str, problems: list[str]
) -> tuple[Any, dict[str, Any]]:
    """The source table without the tables of auth schemes that have per-source settings, and
    those tables read by their types."""
    if not isinstance(item, dict):
        return item, {}
    rest, options = dict(item), {}
    for key in item:
        scheme_type = getattr(auth_schemes.get(key), "source_settings_type", None)
        if scheme_type is not None:
            loaded = load_table(scheme_type, rest.pop(key), f"{where}.{key}", problems)
            if loaded is not None:
                options[key] = loaded
    return rest, options


def _source_references(source: SourceSettings | None, item: Any) -> tuple[tuple[str, ...], str, list[MappingSettings]]:
    """The auth schemes, mapping runtime and mappings a source table names: from the built
    settings, or from the raw table when its own checks failed (as far as they are well typed)."""
    if source is not None:
        return source.auth, source.mapping_runtime, list(source.mappings)
    if not isinstance(item, dict):
        return (), "", []
    defaults = SourceSettings.__dataclass_fields__
    auth = item.get("auth", defaults["auth"].default)
    runtime = item.get("mapping_runtime", defaults["mapping_runtime"].default)
    reported: list[str] = []  # the first pass reported these already
    mappings = item.get("mappings", [])
    built = [load_table(MappingSettings, m, "", reported) for m in mappings] if isinstance(mappings, list) else []
    return (
        tuple(a for a in auth if isinstance(a, str)) if isinstance(auth, list) else (),
        runtime if isinstance(runtime, str) else "",
        [m for m in built if m is not None],
    )


def _load_list(cls: type, raw: Any, where: str, problems: list[str]) -> list:
    if not isinstance(raw, list):
        problems.append(f"{where}: expected an array of tables ([[{where}]])")
        return []
    return [load_table(cls, item, f"{where}[{i}]", problems) for i, item in enumerate(raw)]


# --- the typed loader -------------------------------------------------------------------------


def load_table(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """Build dataclass `cls` from a TOML table, appending one line per mistake to `problems`.

    Returns None when the table cannot be built.
    """
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a table, got {_type_name(data)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.metadata.get("toml", True)}
    unknown = [f"{where}.{key}: unknown key" for key in data if key not in fields]
    before = len(problems)
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{where}.{name}", problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{where}.{name}: required key is missing")
    problems[before:before] = unknown
    if len(problems) > before + len(unknown):
        return None
    # Unknown keys do not stop the table's own checks, so that one run reports every mistake.
    try:
        built = cls(**kwargs)
    except InvalidSettings as exc:
        problems.extend(f"{where}.{line}" for line in exc.problems)
        return None
    except ValueError as exc:
        problems.append(f"{where}.{exc}")
        return None
    return None if unknown else built


def _convert(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, where, problems)
        for option in options:
            trial: list[str] = []
            converted = _convert(option, value, where, trial)
            if not trial:
                return converted
        problems.append(f"{where}: expected {' or '.join(_describe(o) for o in options)}, got {_type_name(value)}")
        return None
    if origin in (tuple, list):
        if not isinstance(value, list):
            problems.append(f"{where}: expected an array, got {_type_name(value)}")
            return None
        item_type = args[0] if args else Any
        items = [_convert(item_type, v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a table, got {_type_name(value)}")
            return None
        value_type = args[1] if args else Any
        return {k: _convert(value_type, v, f"{where}.{k}", problems) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return load_table(tp, value, where, problems)
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: expected a boolean, got {_type_name(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: expected an integer, got {_type_name(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: expected a number, got {_type_name(value)}")
            return value
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {_type_name(value)}")
        return value
    raise TypeError(f"settings field {where} has unsupported type {tp!r}")


def _describe(tp: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}.get(tp, repr(tp))


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return type(value).__name__
