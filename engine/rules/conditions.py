"""The condition language of arcs and episodes (`starts_when`, `completes_when`).

Grammar (lowest precedence first; keywords are lowercase and case-sensitive):

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand    := NUMBER | STRING | "true" | "false" | "location" | "turn"
                | "flag" "." NAME
                | ("trust" | "affection" | "familiarity") "(" STRING "," STRING ")"
                | "present" "(" STRING ")"
                | "(" expr ")"

As in Python, `not turn > 3` means `not (turn > 3)`. Comparisons do not chain. NUMBER is
`-?[0-9]+(.[0-9]+)?`; STRING is single- or double-quoted on one line, with `\\"`, `\\'` and
`\\\\` as the only escapes; NAME and character keys are `[A-Za-z_][A-Za-z0-9_]*`.

Text is tokenized by hand and parsed by recursive descent into an immutable tree of frozen
dataclasses; nothing is ever given to `eval`, `exec` or Python's parser. Length, nesting and
token count are bounded, so hostile text fails fast with a one-line `ConditionError`.

Evaluation never raises, whatever the state holds:
- an unset flag is None, which is false; values of other types from the state count as None;
- values have four kinds: none, boolean, number, text. Values of the same kind can be equal or
  unequal; only numbers are ordered (`<` on text or booleans is false). Numbers compare by
  value, so `3 == 3.0`; booleans are not numbers, so `true == 1` is false;
- a comparison between different kinds is false, except `!=`, which is true;
- `and`, `or` and `not` use truthiness (0, "" and none are false) and the result is a bool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

FlagValue = bool | int | float | str | None

MAX_LENGTH = 1_000
MAX_DEPTH = 32  # parentheses and `not`s; keeps the parser's recursion far from Python's limit
MAX_TOKENS = 300
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # ASCII only: `\d` would accept other scripts
RELATIONS = ("trust", "affection", "familiarity")
FUNCTIONS = (*RELATIONS, "present")
KEYWORDS = ("and", "or", "not", "true", "false")
NAMES = ("flag", "location", "turn")
COMPARATORS = ("==", "!=", "<=", ">=", "<", ">")


class ConditionError(ValueError):
    """Bad condition text; `str()` is one line that is safe to show to users."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column  # 1-based position in the source, when known
        super().__init__(f"{message} at column {column}" if column is not None else message)


class ConditionState(Protocol):
    def flag(self, name: str) -> FlagValue: ...  # None when unset
    def trust(self, source: str, target: str) -> float: ...
    def affection(self, source: str, target: str) -> float: ...
    def familiarity(self, source: str, target: str) -> float: ...
    def present(self, character: str) -> bool: ...
    @property
    def location(self) -> str: ...
    @property
    def turn(self) -> int: ...


# The tree.
@dataclass(frozen=True)
class Literal:
    value: FlagValue


@dataclass(frozen=True)
class Flag:
    name: str


@dataclass(frozen=True)
class Name:
    name: str  # "location" or "turn"


@dataclass(frozen=True)
class Call:
    function: str  # one of FUNCTIONS
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Logic:
    op: str  # "and" or "or"
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Compare:
    op: str  # one of COMPARATORS
    left: Node
    right: Node


Node = Literal | Flag | Name | Call | Not | Logic | Compare


@dataclass(frozen=True)
class Condition:
    source: str
    flags: frozenset[str]  # every flag name used
    characters: frozenset[str]  # every character key given to a function
    locations: frozenset[str]  # every string compared with `location` by == or !=
    tree: Node

    def evaluate(self, state: ConditionState) -> bool:
        return bool(_value(self.tree, state))


def _clean(value: object) -> FlagValue:
    # States are not ours to trust (flags come from JSON): anything unexpected is none.
    return value if isinstance(value, bool | int | float | str) else None


def _value(node: Node, state: ConditionState) -> FlagValue:
    # Recursion is bounded by MAX_DEPTH: `and`/`or` chains are flat tuples.
    match node:
        case Literal(value):
            return value
        case Flag(name):
            return _clean(state.flag(name))
        case Name("location"):
            return _clean(state.location)
        case Name(_):
            return _clean(state.turn)
        case Call("present", keys):
            return bool(_clean(state.present(keys[0])))
        case Call("trust", (source, target)):
            return _number(_clean(state.trust(source, target)))
        case Call("affection", (source, target)):
            return _number(_clean(state.affection(source, target)))
        case Call("familiarity", (source, target)):
            return _number(_clean(state.familiarity(source, target)))
        case Not(operand):
            return not _value(operand, state)
        case Logic("and", operands):
            return all(_value(part, state) for part in operands)
        case Logic(_, operands):
            return any(_value(part, state) for part in operands)
        case Compare(op, left, right):
            return _compare(op, _value(left, state), _value(right, state))
    return None  # not reached: the parser only builds the shapes matched above


def _kind(value: FlagValue) -> str:
    if value is None or isinstance(value, bool | str):
        return type(value).__name__
    return "number"


def _number(value: FlagValue) -> int | float | None:
    return None if isinstance(value, bool) or not isinstance(value, int | float) else value


def _compare(op: str, a: FlagValue, b: FlagValue) -> bool:
    if _kind(a) != _kind(b):
        return op == "!="
    if op in ("==", "!="):
        return (a == b) == (op == "==")
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return False  # none, booleans and text are not ordered
    # int and float compare exactly in Python, with no overflow for huge ints.
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "str", "name", "op", "end"
    text: str
    column: int
    value: FlagValue = None

    def shown(self) -> str:
        if self.kind == "end":
            return "the end"
        text = self.text if len(self.text) <= 24 else self.text[:24] + "…"
        text = "".join(c if c.isprintable() else "?" for c in text)
        return text if self.kind == "str" else f'"{text}"'  # strings keep their own quotes


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char, column = text[i], i + 1
        if char in " \t\r\n":  # TOML multi-line strings may wrap a long condition
            i += 1
            continue
        if len(tokens) >= MAX_TOKENS:
            raise ConditionError(f"the condition has more than {MAX_TOKENS} parts", column)
        two = text[i : i + 2]
        if char in "\"'":
            end, string = _read_string(text, i)
            tokens.append(_Token("str", text[i:end], column, string))
        elif number := NUMBER.match(text, i):
            raw = number.group()
            value: FlagValue = float(raw) if "." in raw else int(raw)
            tokens.append(_Token("num", raw, column, value))
        elif name := NAME.match(text, i):
            tokens.append(_Token("name", name.group(), column))
        elif two in COMPARATORS or char in "<>(),.":
            op = two if two in COMPARATORS else char
            tokens.append(_Token("op", op, column))
        elif char in "&|":
            word, symbol = ("and", "&&") if char == "&" else ("or", "||")
            raise ConditionError(f'use "{word}" instead of "{symbol}"', column)
        elif char == "=":
            raise ConditionError('use "==" to compare', column)
        elif char == "!":
            raise ConditionError('use "not" instead of "!"', column)
        elif char in "+-*/%":
            raise ConditionError(f'arithmetic ("{char}") is not supported', column)
        else:
            shown = char if char.isprintable() else repr(char)[1:-1]
            raise ConditionError(f'unexpected character "{shown}"', column)
        i = column - 1 + len(tokens[-1].text)
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _read_string(text: str, start: int) -> tuple[int, str]:
    quote, out, i = text[start], [], start + 1
    while i < len(text) and text[i] not in "\r\n":
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "\"'\\":
            out.append(text[i + 1])
            i += 2
        elif char == quote:
            return i + 1, "".join(out)
        else:
            out.append(char)
            i += 1
    raise ConditionError("unterminated string", start + 1)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0
        self.flags: set[str] = set()
        self.characters: set[str] = set()
        self.locations: set[str] = set()

    @property
    def current(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":  # never step past the end
            self.pos += 1
        return token

    def at(self, *texts: str) -> bool:
        return self.current.kind in ("op", "name") and self.current.text in texts

    def expect(self, text: str, where: str = "") -> _Token:
        if not self.at(text):
            found = self.current.shown()
            raise ConditionError(f'expected "{text}"{where} but found {found}', self.current.column)
        return self.take()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"nested more than {MAX_DEPTH} levels deep", self.current.column)

    def parse(self) -> Node:
        tree = self.expr()
        if self.current.kind != "end":
            hint = '; join tests with "and" or "or"' if self.current.kind != "op" else ""
            raise ConditionError(f"unexpected {self.current.shown()}{hint}", self.current.column)
        return tree

    def expr(self) -> Node:
        parts = [self.and_expr()]
        while self.at("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Logic("or", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self.at("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else Logic("and", tuple(parts))

    def not_expr(self) -> Node:
        if not self.at("not"):
            return self.comparison()
        self.take()
        self.enter()
        inner = self.not_expr()
        self.depth -= 1
        return Not(inner)

    def comparison(self) -> Node:
        left = self.operand()
        if not (self.current.kind == "op" and self.current.text in COMPARATORS):
            return left
        op = self.take().text
        right = self.operand()
        if self.current.kind == "op" and self.current.text in COMPARATORS:
            message = 'comparisons cannot be chained; join them with "and"'
            raise ConditionError(message, self.current.column)
        if op in ("==", "!="):
            for a, b in ((left, right), (right, left)):
                if a == Name("location") and isinstance(b, Literal) and isinstance(b.value, str):
                    self.locations.add(b.value)
        return Compare(op, left, right)

    def operand(self) -> Node:
        token = self.take()
        if token.kind in ("num", "str"):
            return Literal(token.value)
        if token.kind == "op" and token.text == "(":
            self.enter()
            inner = self.expr()
            self.expect(")")
            self.depth -= 1
            return inner
        if token.kind != "name":
            raise ConditionError(f"expected a value but found {token.shown()}", token.column)
        word, column = token.text, token.column
        if word in FUNCTIONS:
            keys = self.arguments(word, column)
            self.characters.update(keys)
            return Call(word, keys)
        if self.at("("):
            known = word in NAMES or word in KEYWORDS
            message = f'"{word}" is not a function' if known else f'unknown function "{word}"'
            message += "" if known else _hint(word)
            raise ConditionError(message, column)
        if word in ("true", "false"):
            return Literal(word == "true")
        if word in ("location", "turn"):
            return Name(word)
        if word == "flag":
            self.expect(".", ' after "flag"')
            name = self.take()
            if name.kind != "name":
                raise ConditionError('expected a flag name after "flag."', name.column)
            if self.at(".", "("):
                message = f'"flag.{name.text}" cannot be followed by "{self.current.text}"'
                raise ConditionError(message, self.current.column)
            self.flags.add(name.text)
            return Flag(name.text)
        if word in KEYWORDS:
            raise ConditionError(f'expected a value before "{word}"', column)
        raise ConditionError(f'unknown name "{word}"{_hint(word)}', column)

    def arguments(self, function: str, column: int) -> tuple[str, ...]:
        count = 1 if function == "present" else 2
        example = f'{function}("mira", "bram")' if count == 2 else f'{function}("mira")'
        wanted = "two quoted character keys" if count == 2 else "one quoted character key"
        usage = f"{function}() takes {wanted}, like {example}"
        self.expect("(", f" after {function}")
        keys: list[str] = []
        while not self.at(")"):
            if keys:
                self.expect(",", f' or ")" in {function}()')
            token = self.take()
            if token.kind != "str" or not NAME.fullmatch(str(token.value)):
                raise ConditionError(usage, token.column)
            keys.append(str(token.value))
        self.take()
        if len(keys) != count:
            raise ConditionError(f"{usage}, not {len(keys)}", column)
        return tuple(keys)


def _hint(word: str) -> str:
    if word.lower() in KEYWORDS + NAMES + FUNCTIONS:
        return f' (did you mean "{word.lower()}"?)'
    return " (use flag.NAME, trust, affection, familiarity, present, location or turn)"


def parse_condition(text: str) -> Condition:
    """Parse condition text, or raise `ConditionError` naming the problem and its column."""
    if not isinstance(text, str):
        raise ConditionError("the condition must be text")
    if not text.strip():
        raise ConditionError("the condition is empty")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is longer than {MAX_LENGTH} characters")
    parser = _Parser(text)
    tree = parser.parse()
    return Condition(
        source=text,
        flags=frozenset(parser.flags),
        characters=frozenset(parser.characters),
        locations=frozenset(parser.locations),
        tree=tree,
    )
