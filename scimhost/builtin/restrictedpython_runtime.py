"""Built-in plugin: the `restrictedpython` mapping runtime, expressions in a guarded subset of
Python (RestrictedPython >= 9.0, eval mode only).

Defence in depth, inside the worker process that evaluates (scimhost.mapping.pool adds the
process limits: memory, wall-clock time, recycling):

- compile: expressions only; names starting with `_` are refused by RestrictedPython, so guard
  names cannot be shadowed (lambda defaults, walrus) and dunders cannot be named;
- attribute access only on JSON-shaped values (dict, list, str, numbers), never underscored
  names, never `format` / `format_map` (attribute traversal through format strings), never
  methods that mutate;
- item access only on JSON-shaped values; iteration counted against a budget;
- builtins: a vetted list of pure functions; no `type`, `id`, `vars`, `getattr`, `eval`,
  `exec`, `compile`, `open`, `__import__`, no modules;
- results must be JSON values under a size cap.
"""

from __future__ import annotations

import ast
import keyword
from typing import Any

import orjson
from RestrictedPython import compile_restricted_eval
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from scimhost.hookspecs import hookimpl
from scimhost.mapping.runtime import EvaluationLimits, MappingError, MappingRuntime

MAX_SOURCE_LENGTH = 10_000
JSON_TYPES = (dict, list, tuple, str, int, float, bool, type(None))
BLOCKED_ATTRIBUTES = frozenset(
    {
        "format",
        "format_map",
        "mro",
        # mutation of inputs through methods
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "update",
        "setdefault",
        "popitem",
        "sort",
        "reverse",
        # frames and code of generators and functions, in case one is reached
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "f_globals",
        "f_locals",
        "f_back",
        "func_globals",
    }
)


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise MappingError("the expression iterates more than its budget allows")


def _guarded_getattr(obj: Any, name: str, default: Any = None) -> Any:
    if not isinstance(name, str) or name.startswith("_") or name in BLOCKED_ATTRIBUTES:
        raise MappingError(f"access to the attribute {name!r} is not allowed")
    if type(obj) not in JSON_TYPES:
        raise MappingError(f"attributes of {type(obj).__name__} values are not available")
    return getattr(obj, name)


def _guarded_getitem(obj: Any, key: Any) -> Any:
    if type(obj) not in JSON_TYPES or isinstance(obj, (bool, int, float)) or obj is None:
        raise MappingError(f"{type(obj).__name__} values cannot be indexed")
    return obj[key]


def _refuse_write(obj: Any) -> Any:
    raise MappingError("expressions cannot modify values")


def _apply(function: Any, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def _builtins(budget: _Budget) -> dict[str, Any]:
    def limited_range(*args: int) -> range:
        result = range(*args)
        budget.spend(len(result))
        return result

    def counted(function):
        def wrapper(iterable=(), *args, **kwargs):
            if isinstance(iterable, (list, tuple, dict, str, range)):
                budget.spend(len(iterable))
            return function(iterable, *args, **kwargs)

        return wrapper

    names = {
        "len": len,
        "str": str,
        "int": int,
        "float": float,
        "bool": bool,
        "abs": abs,
        "round": round,
        "min": min,
        "max": max,
        "isinstance": isinstance,
        "enumerate": enumerate,
        "zip": zip,
        "dict": dict,
        "list": counted(list),
        "tuple": counted(tuple),
        "sorted": counted(sorted),
        "sum": counted(sum),
        "any": counted(any),
        "all": counted(all),
        "range": limited_range,
        "None": None,
        "True": True,
        "False": False,
    }
    return names


BUILTIN_NAMES = frozenset(_builtins(_Budget(0)))


class RestrictedPythonRuntime(MappingRuntime):
    """Expressions in RestrictedPython, evaluated with guards and an iteration budget."""

    name = "restrictedpython"

    def __init__(self) -> None:
        self._codes: dict[str, Any] = {}
        self._names: dict[str, frozenset[str]] = {}

    def is_valid_name(self, name: str) -> bool:
        return name.isidentifier() and not name.startswith("_") and not keyword.iskeyword(name)

    def _code(self, expression: str, label: str) -> Any:
        code = self._codes.get(expression)
        if code is not None:
            return code
        if not isinstance(expression, str) or not expression.strip():
            raise MappingError(f"{label}: the expression is empty")
        if len(expression) > MAX_SOURCE_LENGTH:
            raise MappingError(f"{label}: the expression is longer than {MAX_SOURCE_LENGTH} characters")
        try:
            result = compile_restricted_eval(expression.strip(), filename=f"<{label}>")
        except (RecursionError, MemoryError):
            raise MappingError(f"{label}: the expression is nested too deeply") from None
        except SyntaxError as exc:
            raise MappingError(f"{label}: not an expression ({exc.msg})") from None
        if result.errors or result.code is None:
            detail = "; ".join(result.errors) or "it does not compile"
            raise MappingError(f"{label}: {detail}")
        if len(self._codes) < 1024:
            self._codes[expression] = result.code
        return result.code

    def compile(self, expression: str, *, label: str) -> None:
        self._code(expression, label)

    def variable_names(self, expression: str) -> frozenset[str]:
        names = self._names.get(expression)
        if names is None:
            self._code(expression, "mapping")  # refuses what does not compile
            tree = ast.parse(expression.strip(), mode="eval")
            names = frozenset(_free_names(tree.body, frozenset()) - BUILTIN_NAMES)
            if len(self._names) < 1024:
                self._names[expression] = names
        return names

    def evaluate(self, expression: str, variables: dict[str, Any], limits: EvaluationLimits) -> Any:
        code = self._code(expression, "mapping")
        budget = _Budget(limits.max_iterations)

        def getiter(obj: Any):
            if type(obj) not in JSON_TYPES and not isinstance(obj, (range, enumerate, zip)):
                raise MappingError(f"{type(obj).__name__} values cannot be iterated")
            for item in obj:
                budget.spend()
                yield item

        env = {
            "__builtins__": _builtins(budget),
            "_getattr_": _guarded_getattr,
            "_getitem_": _guarded_getitem,
            "_getiter_": getiter,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_write_": _refuse_write,
            "_apply_": _apply,
        }
        env.update(variables)
        for name in self.variable_names(expression):
            env.setdefault(name, None)  # a name the document lacks, declared or not, is None
        try:
            result = eval(code, env)  # noqa: S307 - RestrictedPython bytecode with guarded globals
        except MappingError:
            raise
        except RecursionError:
            raise MappingError("the expression recursed too deeply") from None
        except MemoryError:
            raise MappingError("the expression used more memory than allowed") from None
        except Exception as exc:
            raise MappingError(f"{type(exc).__name__}: {_short(exc)}") from None
        try:
            encoded = orjson.dumps(result)
        except (TypeError, orjson.JSONEncodeError):
            raise MappingError(f"the result is not a JSON value ({type(result).__name__})") from None
        if len(encoded) > limits.max_result_bytes:
            raise MappingError(f"the result is larger than {limits.max_result_bytes} bytes")
        return orjson.loads(encoded)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


@hookimpl
def register_mapping_runtimes():
    return [RestrictedPythonRuntime]


def _free_names(node: ast.AST, bound: frozenset[str]) -> set[str]:
    """The names `node` reads that are not bound around it: a comprehension's targets and a
    lambda's arguments are bound only inside them, so `[e for e in emails] + [e]` reads the
    outer `e` once."""
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load) and node.id not in bound else set()
    if isinstance(node, ast.Lambda):
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        defaults = [d for d in (*arguments.defaults, *arguments.kw_defaults) if d is not None]
        read = set().union(*(_free_names(d, bound) for d in defaults))
        return read | _free_names(node.body, bound | {a.arg for a in every})
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        found: set[str] = set()
        inner = bound
        for generator in node.generators:
            # The first iterable is read outside the comprehension; later ones see earlier targets.
            found |= _free_names(generator.iter, inner)
            inner = inner | {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
            for condition in generator.ifs:
                found |= _free_names(condition, inner)
        results = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        return found.union(*(_free_names(r, inner) for r in results))
    return set().union(*(_free_names(child, bound) for child in ast.iter_child_nodes(node)))
