"""Property mappings: sanitized variables, the RestrictedPython sandbox against a hostile
corpus, the worker pool's limits, records stored on every write, and the CLI."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import time

import pytest
from helpers import ScimClient, make_config, patch_op

from scimhost.app import create_app
from scimhost.builtin.restrictedpython_runtime import RestrictedPythonRuntime
from scimhost.cli import main
from scimhost.config import ConfigError, MappingPoolSettings
from scimhost.host import load_host
from scimhost.http.keys import HOST
from scimhost.mapping.pool import EvaluationTimeout, WorkerPool
from scimhost.mapping.runtime import EvaluationLimits, MappingError
from scimhost.mapping.variables import bind, sanitize, variable_table

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
RUNTIME = RestrictedPythonRuntime()
LIMITS = EvaluationLimits(max_iterations=10_000, max_result_bytes=10_000)


def test_restrictedpython_is_at_least_the_pinned_version():
    major = int(importlib.metadata.version("RestrictedPython").split(".")[0])
    assert major >= 9


@pytest.mark.parametrize(
    "key, name",
    [
        (ENT, "urn_ietf_params_scim_schemas_extension_enterprise_2_0_User"),
        ("urn:scim:schemas:extension:enterprise:2.0", "urn_scim_schemas_extension_enterprise_2_0"),
        ("userName", "userName"),
        ("class", "v_class"),
        ("None", "v_None"),
        ("_private", "v__private"),
        ("2fa", "v_2fa"),
        ("$ref", "v__ref"),
    ],
)
def test_sanitizing(key, name):
    assert sanitize(key, RUNTIME.is_valid_name) == name


def test_colliding_keys_shadow_nothing():
    table = {v.key: v for v in variable_table(["a-b", "a.b", "data", "c"], RUNTIME.is_valid_name)}
    assert not table["a-b"].bound and not table["a.b"].bound and "a_b" in table["a-b"].unbound_because
    assert not table["data"].bound and table["c"].bound
    document = {"a-b": 1, "a.b": 2, "data": 3, "c": 4}
    variables = bind(document, variable_table(document, RUNTIME.is_valid_name), data={"whole": True})
    assert variables == {"data": {"whole": True}, "c": 4}


def pool_settings(**overrides) -> MappingPoolSettings:
    return MappingPoolSettings(**{"workers": 1, "max_iterations": 10_000, "max_result_bytes": 10_000, **overrides})


def evaluate(expression, **variables):
    RUNTIME.compile(expression, label="test")
    return RUNTIME.evaluate(expression, variables, LIMITS)


def test_benign_expressions():
    assert evaluate("{'u': userName.lower(), 'n': len(emails)}", userName="BJ", emails=[1, 2]) == {"u": "bj", "n": 2}
    assert evaluate(
        "{'e': [e['value'] for e in emails if e.get('primary')]}", emails=[{"value": "a", "primary": True}]
    ) == {"e": ["a"]}
    assert evaluate("{'x': f'{a}-{b}'}", a=1, b="z") == {"x": "1-z"}
    assert evaluate("dict(sorted({'b': 1, 'a': 2}.items()))") == {"a": 2, "b": 1}


# Each is refused when compiled.
COMPILE_TIME = [
    "().__class__.__bases__[0].__subclasses__()",
    "x.__dict__",
    "(lambda _getattr_=None: 1)()",
    "(lambda x, /, _getiter_=None: 1)(1)",
    "(_getattr_ := 1)",
    "import os",
    "__import__('os')",
    "x = 1",
    "def f(): pass",
    "a; b",
    "[x for x in y if (__builtins__ := 1)]",
    "(" * 5000 + "1" + ")" * 5000,
    "1 + " * 6000 + "1",
    "x" * 20_000,
]

# Each raises when evaluated (and nothing escapes).
RUN_TIME = [
    ("getattr(x, '__class__')", {"x": 1}),
    ("type(x)", {"x": 1}),
    ("id(x)", {"x": 1}),
    ("vars()", {}),
    ("eval('1')", {}),
    ("exec('x=1')", {}),
    ("compile('1', 'f', 'eval')", {}),
    ("open('/etc/passwd')", {}),
    ("globals()", {}),
    ("'{0.__class__}'.format(x)", {"x": 1}),
    ("'{x.__class__}'.format_map({'x': 1})", {}),
    ("(i for i in x).gi_frame", {"x": [1]}),
    ("(lambda: 1).func_globals", {}),
    ("(lambda f: f(f))(lambda f: f(f))", {}),
    ("x.append(1)", {"x": []}),
    ("x.update({'a': 1})", {"x": {}}),
    ("x.pop()", {"x": [1]}),
    ("[i for i in range(10**9)]", {}),
    ("sum(range(10**9))", {}),
    ("list(x)", {"x": list(range(20_000))}),
    ("{1, 2}", {}),
    ("b'bytes'", {}),
    ("'x' * 20000", {}),
    ("[1] * 20000", {}),
    ("str.mro()", {}),
    ("isinstance.__self__", {}),
    ("x.__class__", {"x": 1}),
]


@pytest.mark.parametrize("expression", COMPILE_TIME)
def test_hostile_expressions_rejected_at_compile_time(expression):
    with pytest.raises(MappingError):
        RUNTIME.compile(expression, label="hostile")


@pytest.mark.parametrize("expression, variables", RUN_TIME)
def test_hostile_expressions_raise_at_run_time(expression, variables):
    before = json.dumps(variables, default=str)
    try:
        RUNTIME.compile(expression, label="hostile")
    except MappingError:
        return  # refused even earlier: fine
    with pytest.raises(MappingError):
        RUNTIME.evaluate(expression, variables, LIMITS)
    assert json.dumps(variables, default=str) == before  # inputs untouched


# Burn CPU in C or exhaust memory: only the worker's limits stop them.
LIMIT_BOMBS = [
    "10 ** 10 ** 8",
    "'x' * (2 ** 34)",
    "f'{1:>9999999999}'",
    "'%9999999999d' % 1",
    "[0] * (2 ** 32)",
]


async def test_worker_limits_stop_bombs_and_the_pool_keeps_serving():
    pool = WorkerPool(RestrictedPythonRuntime, pool_settings(timeout_seconds=1.0, memory_mb=256))
    await pool.start()
    try:
        for bomb in LIMIT_BOMBS:
            started = time.monotonic()
            try:
                results = await pool.evaluate([("bomb", bomb)], {})
            except (EvaluationTimeout, MappingError):
                pass
            else:
                assert results[0][0] == "error", (bomb, results)
            assert time.monotonic() - started < 10
            started = time.monotonic()
            assert await pool.evaluate([("ok", "{'a': 1}")], {}) == [("ok", {"a": 1})]
            assert time.monotonic() - started < 5, "a benign mapping was not answered promptly"
    finally:
        await pool.close()


async def test_workers_are_recycled_without_a_gap(tmp_path):
    pool = WorkerPool(RestrictedPythonRuntime, pool_settings(max_evaluations=3))
    await pool.start()
    try:
        first = pool._workers[0]
        served = 0
        while pool._workers[0] is first:
            assert await pool.evaluate([("ok", "{'a': 1}")], {}) == [("ok", {"a": 1})]
            served += 1
            assert served < 100_000, "the worker was never replaced"
        # The old worker went on answering while its successor started (a spawn takes far
        # longer than these evaluations), so nobody waited for the spawn.
        assert served > 3
        assert await pool.evaluate([("ok", "{'b': 2}")], {}) == [("ok", {"b": 2})]
        for _ in range(100):
            if not first.process.is_alive():
                break
            await asyncio.sleep(0.05)
        assert not first.process.is_alive()
        assert pool._workers[0].process.is_alive()
    finally:
        await pool.close()


async def test_a_full_queue_is_refused_at_once():
    from scimhost.mapping.pool import PoolSaturated

    pool = WorkerPool(RestrictedPythonRuntime, pool_settings(timeout_seconds=1.0, max_queue=1))
    await pool.start()
    try:
        slow = [asyncio.create_task(pool.evaluate([("slow", "10 ** 10 ** 8")], {})) for _ in range(2)]
        await asyncio.sleep(0.1)
        with pytest.raises(PoolSaturated):
            await pool.evaluate([("ok", "{}")], {})
        await asyncio.gather(*slow, return_exceptions=True)
        assert await pool.evaluate([("ok", "{'a': 1}")], {}) == [("ok", {"a": 1})]
    finally:
        await pool.close()


def mapping_config(storage_url, mappings, mode="process"):
    config = make_config(storage_url, [{"slug": "demo", "name": "Demo", "mappings": mappings}])
    config["mappings"] = {"mode": mode, "workers": 1, "timeout_seconds": 1.0, "memory_mb": 256}
    return config


async def test_records_are_stored_with_every_write(aiohttp_client, storage_url):
    mappings = [
        {"name": "department", "expression": f"{{'department': {sanitize(ENT, RUNTIME.is_valid_name)}['department']}}"},
        {"name": "mail", "expression": "{'email': userName + '@corp.example', 'attributes': {'note': source['slug']}}"},
        {"name": "group", "resource_type": "Group", "expression": "{'name': displayName.upper()}"},
    ]
    events = []
    import types

    from scimhost.hookspecs import hookimpl

    plugin = types.SimpleNamespace(resource_event=hookimpl(lambda event: events.append(event.record)))
    app = create_app(mapping_config(storage_url, mappings), plugins=[("listener", plugin)])
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    storage = app[HOST].storage
    user = await scim.create_user("bjensen", displayName="Barbara", **{ENT: {"department": "R&D"}})
    record = await storage.get_record("demo", "User", user["id"])
    assert record["username"] == "bjensen" and record["name"] == "Barbara"
    assert record["department"] == "R&D" and record["email"] == "bjensen@corp.example"
    assert record["is_active"] is True and record["attributes"]["note"] == "demo"
    assert record["attributes"]["userName"] == "bjensen"  # nested dicts merged onto the default
    assert events[-1] == record
    await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": f"{ENT}:department", "value": "Ops"})
    )
    assert (await storage.get_record("demo", "User", user["id"]))["department"] == "Ops"
    group = await scim.create_group("eng")
    assert (await storage.get_record("demo", "Group", group["id"]))["name"] == "ENG"


@pytest.mark.parametrize(
    "expression",
    ["1 / 0", "[1, 2]", "missing['x']", "10 ** 10 ** 8", "{'a': {1, 2}}"],
)
async def test_failing_mapping_refuses_the_write_and_stores_nothing(aiohttp_client, storage_url, expression, caplog):
    app = create_app(mapping_config(storage_url, [{"name": "broken", "expression": expression}]))
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    error = await scim.json("POST", "/Users", {"userName": "x"}, expect=400)
    assert error["scimType"] == "invalidValue"
    assert "'broken'" in error["detail"] and "'demo'" in error["detail"]
    assert "ZeroDivision" not in error["detail"]
    assert (await scim.json("GET", "/Users"))["totalResults"] == 0
    assert "source 'demo'" in caplog.text


async def test_a_slow_mapping_does_not_block_other_requests(aiohttp_client, storage_url):
    config = mapping_config(storage_url, [{"name": "slow", "expression": "10 ** 10 ** 8"}])
    config["mappings"]["timeout_seconds"] = 5.0  # far longer than any GET, even on a loaded machine
    app = create_app(config)
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    write = asyncio.create_task(scim.json("POST", "/Users", {"userName": "x"}, expect=400))
    await asyncio.sleep(0.2)
    await scim.json("GET", "/ServiceProviderConfig")
    # Answered while the slow mapping still runs in its worker (not a timing bound, which a
    # loaded machine breaks: the order of the two answers).
    assert not write.done()
    await write


def test_broken_expressions_stop_the_host_naming_source_and_mapping(tmp_path, capsys):
    config = mapping_config(f"sqlite://{tmp_path}/db.sqlite3", [{"name": "stmt", "expression": "x = 1"}])
    with pytest.raises(ConfigError) as excinfo:
        load_host(config)
    assert "sources[0].mappings[0].expression" in str(excinfo.value)
    assert "source 'demo' mapping 'stmt'" in str(excinfo.value)
    config["sources"][0]["mappings"] = [{"name": "m", "expression": "1"}]
    config["sources"][0]["mapping_runtime"] = "lua"
    with pytest.raises(ConfigError, match="no mapping runtime named 'lua'"):
        load_host(config)


def test_mappings_cli(tmp_path, capsys, monkeypatch):
    config = tmp_path / "scimhost.toml"
    config.write_text(
        '[mappings]\nworkers = 1\n[storage.tortoise]\nurl = "sqlite://./db.sqlite3"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n'
        '[[sources.mappings]]\nname = "upper"\nexpression = "{\'shout\': userName.upper()}"\n'
    )
    document = tmp_path / "user.json"
    document.write_text(json.dumps({"userName": "bjensen", "a-b": 1}))
    assert main(["-c", str(config), "mappings", "test", "demo", "--input", str(document), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["shout"] == "BJENSEN" and record["username"] == "bjensen"
    assert (
        main(["-c", str(config), "mappings", "test", "demo", "--input", str(document), "--expression", "{'n': name}"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n"] is None
    assert main(["-c", str(config), "mappings", "test", "demo", "--input", str(document), "--expression", "1 / 0"]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
    assert (
        main(["-c", str(config), "mappings", "test", "demo", "--input", str(document), "--expression", "x.__class__"])
        == 1
    )
    assert main(["-c", str(config), "mappings", "variables", "demo"]) == 0
    out = capsys.readouterr().out
    assert "urn_ietf_params_scim_schemas_extension_enterprise_2_0_User" in out and "userName" in out


async def test_a_workers_start_up_is_not_counted_in_the_evaluation_timeout():
    """The first evaluation after a (slow) start, and after a timeout replaced the worker,
    gets its whole timeout."""
    from slow_runtime import START_SECONDS, SlowStartingRuntime

    settings = MappingPoolSettings(workers=1, timeout_seconds=1.0, memory_mb=256, startup_timeout_seconds=30)
    pool = WorkerPool(SlowStartingRuntime, settings)
    await pool.start()
    try:
        assert await pool.evaluate([("up", "userName.upper()")], {"userName": "a"}) == [("ok", "A")]
        with pytest.raises(EvaluationTimeout):
            await pool.evaluate([("slow", "10 ** 10 ** 8")], {})
        started = time.monotonic()
        assert await pool.evaluate([("again", "userName.upper()")], {"userName": "b"}) == [("ok", "B")]
        assert time.monotonic() - started < START_SECONDS  # the replacement was started already
    finally:
        await pool.close()


async def test_a_worker_that_cannot_start_is_reported():
    from slow_runtime import SlowStartingRuntime

    pool = WorkerPool(SlowStartingRuntime, MappingPoolSettings(workers=1, startup_timeout_seconds=0.5))
    with pytest.raises(MappingError, match="did not start within 0.5s"):
        await pool.start()
    await pool.close()


def test_an_evaluation_is_sent_only_the_variables_its_expressions_read():
    """`data` is the whole document again: copying it to the worker for an expression that
    never reads it doubled what every write pickled."""
    from scimhost.mapping.service import _used

    variables = {"userName": "a", "name": {"givenName": "G"}, "data": {"userName": "a"}, "title": None}
    runtime = RestrictedPythonRuntime()
    batch = [("display", "{'display': (name or {}).get('givenName', '') + ' ' + userName}")]
    assert _used(variables, runtime, batch) == {"userName": "a", "name": {"givenName": "G"}}
    both = [*batch, ("raw", "{'raw': data['userName']}")]
    assert set(_used(variables, runtime, both)) == {"userName", "name", "data"}


def test_a_name_bound_in_a_comprehension_is_still_read_outside_it():
    """`variable_names` decides what a worker is sent: a comprehension's target shadows a
    variable only inside the comprehension."""
    runtime = RestrictedPythonRuntime()
    assert runtime.variable_names("[e for e in emails] + [e]") == {"e", "emails"}
    assert runtime.variable_names("(lambda x: x + y)(z)") == {"y", "z"}
    assert runtime.variable_names("[a for a in xs for b in a]") == {"xs"}
    limits = EvaluationLimits()
    assert runtime.evaluate("[e for e in emails] + [e]", {"e": 3, "emails": [1]}, limits) == [1, 3]
