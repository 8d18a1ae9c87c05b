"""The SCIM filter and PATCH path grammar (RFC 7644 §3.4.2.2, §3.5.2) parsed into a syntax tree.

A hand-written tokenizer and recursive-descent parser (docs/decisions.md says why not a
library). Attribute names and operators are case-insensitive; `and` binds tighter than `or`;
`not` needs parentheses in the RFC and is accepted without them. Microsoft Entra's
`emails[type eq "work"].value eq "x"` reads as `emails[type eq "work" and value eq "x"]`.
Limits on length and nesting are checked while parsing, so a hostile filter costs little.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from scimhost.scim.errors import ErrorFactory, ScimError

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le"})
MAX_FILTER_LENGTH = 4096
MAX_FILTER_DEPTH = 16
MAX_FILTER_TERMS = 200


@dataclass(frozen=True, slots=True)
class AttrPath:
    """`[urn:]attr[.sub]`; `raw` keeps the text so a whole-schema URN path can be recognised."""

    urn: str | None
    attr: str
    sub: str | None = None
    raw: str = ""

    def __str__(self) -> str:
        return self.raw or ((self.urn + ":" if self.urn else "") + self.attr + ("." + self.sub if self.sub else ""))


@dataclass(frozen=True, slots=True)
class Compare:
    path: AttrPath
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class Present:
    path: AttrPath


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    expr: Node


@dataclass(frozen=True, slots=True)
class ValuePath:
    """`attr[filter]` in a filter: true when some value of the multi-valued `attr` matches."""

    path: AttrPath
    filter: Node


Node = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True, slots=True)
class PatchPath:
    """A PATCH `path`: an attribute, optionally narrowed by a value filter, then a sub-attribute."""

    attr: AttrPath
    filter: Node | None = None
    sub: str | None = None


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


# --- tokens ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<punct>[()\[\]])
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![^\s()\[\]]))
  | (?P<word>[^\s()\[\]"]+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # punct, string, number, word, end
    text: str
    pos: int


def _tokenize(text: str, error: ErrorFactory) -> list[Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise error(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


_ATTR = r"[A-Za-z$][A-Za-z0-9_$-]*"
_ATTR_PATH = re.compile(rf"^(?:(?P<urn>urn:[^\s\[\]()\"]+):)?(?P<attr>{_ATTR})(?:\.(?P<sub>{_ATTR}))?$", re.I)
_SUB_ATTR = re.compile(rf"^\.({_ATTR})$")


def parse_attr_path(text: str, error: ErrorFactory = invalid_filter) -> AttrPath:
    """`name`, `name.givenName`, `urn:...:User:name.givenName` (URN split at its last colon)."""
    match = _ATTR_PATH.match(text)
    if match is None:
        raise error(f"{text!r} is not an attribute path")
    return AttrPath(match["urn"], match["attr"], match["sub"], text)


# --- parser ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, error: ErrorFactory, max_depth: int) -> None:
        self.error = error
        self.tokens = _tokenize(text, error)
        self.index = 0
        self.depth = 0
        self.max_depth = max_depth
        self.terms = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.token
        if token.kind == "word" and token.text.lower() in words:
            return token.text.lower()
        return None

    def expect(self, text: str) -> None:
        token = self.advance()
        if token.text != text:
            raise self.error(f"expected {text!r} at position {token.pos + 1}, found {_describe(token)}")

    def fail(self, expected: str) -> ScimError:
        token = self.token
        return self.error(f"expected {expected} at position {token.pos + 1}, found {_describe(token)}")

    def nested(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise self.error(f"filter is nested deeper than {self.max_depth} levels")

    # filter := or
    def parse_or(self, in_value: bool) -> Node:
        terms = [self.parse_and(in_value)]
        while self.keyword("or"):
            self.advance()
            terms.append(self.parse_and(in_value))
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def parse_and(self, in_value: bool) -> Node:
        terms = [self.parse_unary(in_value)]
        while self.keyword("and"):
            self.advance()
            terms.append(self.parse_unary(in_value))
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def parse_unary(self, in_value: bool) -> Node:
        self.terms += 1
        if self.terms > MAX_FILTER_TERMS:
            raise self.error(f"filter has more than {MAX_FILTER_TERMS} terms")
        if self.keyword("not") and self.tokens[self.index + 1].kind in ("punct", "word"):
            self.advance()
            self.nested()
            expr = self.parse_unary(in_value)
            self.depth -= 1
            return Not(expr)
        if self.token.text == "(":
            self.advance()
            self.nested()
            expr = self.parse_or(in_value)
            self.depth -= 1
            self.expect(")")
            return expr
        if self.token.kind != "word":
            raise self.fail("an attribute name")
        path = parse_attr_path(self.advance().text, self.error)
        if self.token.text == "[":
            if in_value:
                raise self.error(f"a value filter cannot hold another at position {self.token.pos + 1}")
            self.advance()
            self.nested()
            inner = self.parse_or(True)
            self.depth -= 1
            self.expect("]")
            sub = _SUB_ATTR.match(self.token.text) if self.token.kind == "word" else None
            if sub:  # Entra: emails[type eq "work"].value eq "x"
                self.advance()
                sub_path = AttrPath(None, sub[1], None, sub[1])
                inner = And((inner, self.parse_comparison(sub_path)))
            return ValuePath(path, inner)
        return self.parse_comparison(path)

    def parse_comparison(self, path: AttrPath) -> Node:
        op = self.keyword("pr", *COMPARE_OPS)
        if op is None:
            raise self.fail("an operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)")
        self.advance()
        if op == "pr":
            return Present(path)
        return Compare(path, op, self.parse_value())

    def parse_value(self) -> Any:
        token = self.advance()
        if token.kind == "string":
            value = json.loads(token.text)
            if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value if c >= "\ud800"):
                # A NUL or a lone surrogate (\ud800) is no text any store can hold or compare.
                raise self.error(f"the string at position {token.pos + 1} holds a NUL or a lone surrogate")
            return value
        if token.kind == "number":
            number = json.loads(token.text)
            if isinstance(number, float) and number in (float("inf"), float("-inf")):
                raise self.error(f"number out of range at position {token.pos + 1}")
            return number
        if token.kind == "word":
            literal = {"true": True, "false": False, "null": None}.get(token.text.lower(), token)
            if literal is not token:
                return literal
        raise self.error(
            f"expected a value (a quoted string, number, true, false or null) at position {token.pos + 1}, "
            f"found {_describe(token)}"
        )

    def finish(self) -> None:
        if self.token.kind != "end":
            raise self.fail("the end of the filter, 'and' or 'or'")


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end"
    text = token.text if len(token.text) <= 40 else token.text[:40] + "..."
    return repr(text)


def parse_filter(text: str, *, max_length: int = MAX_FILTER_LENGTH, max_depth: int = MAX_FILTER_DEPTH) -> Node:
    """The syntax tree of a filter; raises ScimError 400 invalidFilter saying where it fails."""
    if not isinstance(text, str) or not text.strip():
        raise invalid_filter("filter is empty")
    if len(text) > max_length:
        raise invalid_filter(f"filter is longer than {max_length} characters")
    if "\x00" in text:
        raise invalid_filter("filter holds a NUL character")
    parser = _Parser(text, invalid_filter, max_depth)
    node = parser.parse_or(False)
    parser.finish()
    return node


def parse_path(text: str, *, max_length: int = MAX_FILTER_LENGTH) -> PatchPath:
    """The PATCH path `attrPath`, `attrPath[valFilter]` or `attrPath[valFilter].subAttr`.

    Raises ScimError 400 invalidPath (invalidFilter for a broken value filter).
    """
    if not isinstance(text, str) or not text.strip():
        raise invalid_path("path is empty")
    if len(text) > max_length:
        raise invalid_path(f"path is longer than {max_length} characters")
    text = text.strip()
    bracket = text.find("[")
    if bracket < 0:
        return PatchPath(parse_attr_path(text, invalid_path))
    close = text.rfind("]")
    if close < bracket:
        raise invalid_path(f"path {text!r} has an unclosed '['")
    attr = parse_attr_path(text[:bracket], invalid_path)
    if attr.sub is not None:
        raise invalid_path(f"path {text!r}: a value filter applies to a multi-valued attribute, not a sub-attribute")
    parser = _Parser(text[bracket + 1 : close], invalid_filter, MAX_FILTER_DEPTH)  # paths are short
    value_filter = parser.parse_or(True)
    parser.finish()
    rest = text[close + 1 :]
    sub = None
    if rest:
        match = _SUB_ATTR.match(rest)
        if match is None:
            raise invalid_path(f"path {text!r}: expected '.subAttribute' after ']'")
        sub = match[1]
    return PatchPath(attr, value_filter, sub)


def filter_attributes(text: str) -> list[str]:
    """The attribute paths a filter names, in order, without its values (for logs); empty when
    it does not parse."""
    try:
        node = parse_filter(text)
    except ScimError:
        return []
    names: list[str] = []

    def walk(node: Node, prefix: str = "") -> None:
        if isinstance(node, (Compare, Present)):
            names.append(prefix + str(node.path))
        elif isinstance(node, (And, Or)):
            for term in node.terms:
                walk(term, prefix)
        elif isinstance(node, Not):
            walk(node.expr, prefix)
        elif isinstance(node, ValuePath):
            walk(node.filter, f"{node.path}.")

    walk(node)
    return list(dict.fromkeys(names))
