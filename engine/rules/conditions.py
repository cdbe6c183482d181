"""The condition language of arcs and episodes (`starts_when`, `completes_when`).

Grammar (lowest precedence first):

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand    := NUMBER | STRING | "true" | "false" | "location" | "turn"
                | "flag" "." NAME
                | ("trust" | "affection" | "familiarity") "(" STRING "," STRING ")"
                | "present" "(" STRING ")"
                | "(" expr ")"

Text is tokenized by hand and parsed by recursive descent into an immutable tree; nothing is
ever passed to `eval`, `exec` or Python's parser. Length, nesting and token count are bounded
so hostile text fails fast with a `ConditionError`.

Evaluation never raises: an unset flag is None (false); comparing values of different types
(None or text against a number) is false, except `!=`, which is true; numbers compare as
floats; `and`, `or` and `not` use truthiness.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

FlagValue = bool | int | float | str | None

MAX_LENGTH = 1_000
MAX_DEPTH = 32
MAX_TOKENS = 300
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
RELATION_FUNCTIONS = ("trust", "affection", "familiarity")
KEYWORDS = {"and", "or", "not", "true", "false"}
COMPARATORS = ("==", "!=", "<=", ">=", "<", ">")


class ConditionError(ValueError):
    """Bad condition text; `str()` is one line that is safe to show."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(f"{message} at column {column}" if column is not None else message)


class ConditionState(Protocol):
    def flag(self, name: str) -> FlagValue: ...
    def trust(self, source: str, target: str) -> float: ...
    def affection(self, source: str, target: str) -> float: ...
    def familiarity(self, source: str, target: str) -> float: ...
    def present(self, character: str) -> bool: ...
    @property
    def location(self) -> str: ...
    @property
    def turn(self) -> int: ...


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "str", "name", "op", "end"
    text: str
    column: int
    value: FlagValue = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        column = i + 1
        if char in " \t":
            i += 1
            continue
        if len(tokens) >= MAX_TOKENS:
            raise ConditionError(f"condition is too long (over {MAX_TOKENS} tokens)", column)
        if char in "\"'":
            end, string = _read_string(text, i)
            tokens.append(_Token("str", text[i:end], column, string))
            i = end
            continue
        number = NUMBER.match(text, i)
        if number and (char != "-" or not tokens or tokens[-1].kind == "op"):
            raw = number.group()
            value: FlagValue = float(raw) if "." in raw else int(raw)
            tokens.append(_Token("num", raw, column, value))
            i = number.end()
            continue
        name = NAME.match(text, i)
        if name:
            tokens.append(_Token("name", name.group(), column))
            i = name.end()
            continue
        two = text[i : i + 2]
        if two in ("&&", "||"):
            word = "and" if two == "&&" else "or"
            raise ConditionError(f'use "{word}" instead of "{two}"', column)
        if two in COMPARATORS:
            tokens.append(_Token("op", two, column))
            i += 2
            continue
        if char in "<>(),.":
            tokens.append(_Token("op", char, column))
            i += 1
            continue
        if char == "=":
            raise ConditionError('use "==" to compare', column)
        if char == "!":
            raise ConditionError('use "not" instead of "!"', column)
        shown = char if char.isprintable() else repr(char)
        raise ConditionError(f'unexpected character "{shown}"', column)
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _read_string(text: str, start: int) -> tuple[int, str]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
            continue
        if char == quote:
            return i + 1, "".join(out)
        if char in "\r\n":
            break
        out.append(char)
        i += 1
    raise ConditionError("unterminated string", start + 1)


# The tree: each node evaluates itself against a state.
Evaluator = Callable[[ConditionState], FlagValue]


@dataclass(frozen=True)
class Condition:
    source: str
    flags: frozenset[str]
    characters: frozenset[str]
    locations: frozenset[str]
    _root: Evaluator

    def evaluate(self, state: ConditionState) -> bool:
        return bool(self._root(state))


def _compare(op: str, left: FlagValue, right: FlagValue) -> bool:
    numeric = (int, float)
    if isinstance(left, numeric) and isinstance(right, numeric):
        a, b = float(left), float(right)
    elif isinstance(left, str) and isinstance(right, str):
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        return False
    else:
        return op == "!="
    return {
        "==": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


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
        self.pos += 1
        return token

    def expect(self, text: str) -> None:
        token = self.current
        if token.text != text or token.kind not in ("op", "name"):
            found = f'"{token.text}"' if token.text else "the end"
            raise ConditionError(f'expected "{text}" but found {found}', token.column)
        self.pos += 1

    def is_word(self, word: str) -> bool:
        return self.current.kind == "name" and self.current.text == word

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(
                f"condition nests deeper than {MAX_DEPTH} levels", self.current.column
            )

    def parse(self) -> Evaluator:
        root = self.expr()
        if self.current.kind != "end":
            raise ConditionError(f'unexpected "{self.current.text}"', self.current.column)
        return root

    def expr(self) -> Evaluator:
        self.nest()
        parts = [self.and_expr()]
        while self.is_word("or"):
            self.take()
            parts.append(self.and_expr())
        self.depth -= 1
        if len(parts) == 1:
            return parts[0]
        return lambda state: any(part(state) for part in parts)

    def and_expr(self) -> Evaluator:
        parts = [self.not_expr()]
        while self.is_word("and"):
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda state: all(part(state) for part in parts)

    def not_expr(self) -> Evaluator:
        if self.is_word("not"):
            self.take()
            self.nest()
            inner = self.not_expr()
            self.depth -= 1
            return lambda state: not inner(state)
        return self.comparison()

    def comparison(self) -> Evaluator:
        left_token = self.current
        left = self.operand()
        if self.current.kind == "op" and self.current.text in COMPARATORS:
            op = self.take().text
            right_token = self.current
            right = self.operand()
            if self.current.kind == "op" and self.current.text in COMPARATORS:
                raise ConditionError(
                    'comparisons cannot be chained; use "and"', self.current.column
                )
            self._note_location(left_token, right_token)
            return lambda state: _compare(op, left(state), right(state))
        return left

    def _note_location(self, left: _Token, right: _Token) -> None:
        for a, b in ((left, right), (right, left)):
            if a.kind == "name" and a.text == "location" and b.kind == "str":
                assert isinstance(b.value, str)
                self.locations.add(b.value)

    def operand(self) -> Evaluator:
        token = self.take()
        if token.kind in ("num", "str"):
            value = token.value
            return lambda state: value
        if token.kind == "op" and token.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if token.kind != "name":
            found = f'"{token.text}"' if token.text else "the end"
            raise ConditionError(f"expected a value but found {found}", token.column)
        word = token.text
        if word in ("true", "false"):
            truth = word == "true"
            return lambda state: truth
        if word == "location":
            return lambda state: state.location
        if word == "turn":
            return lambda state: state.turn
        if word == "flag":
            self.expect(".")
            name = self.take()
            if name.kind != "name" or name.text.startswith("__"):
                raise ConditionError('expected a flag name after "flag."', name.column)
            if self.current.kind == "op" and self.current.text in ".(":
                raise ConditionError(
                    f'"flag.{name.text}" takes no "{self.current.text}"', self.current.column
                )
            self.flags.add(name.text)
            flag_name = name.text
            return lambda state: state.flag(flag_name)
        if word in RELATION_FUNCTIONS:
            source, target = self.arguments(word, 2)
            read = getattr
            return lambda state: float(read(state, word)(source, target))
        if word == "present":
            (character,) = self.arguments(word, 1)
            return lambda state: bool(state.present(character))
        if word in KEYWORDS:
            raise ConditionError(f'"{word}" needs something before it', token.column)
        raise ConditionError(
            f'unknown name "{word}" (use flag.NAME, trust(), affection(), familiarity(), '
            "present(), location or turn)",
            token.column,
        )

    def arguments(self, function: str, count: int) -> list[str]:
        self.expect("(")
        values: list[str] = []
        while True:
            token = self.take()
            if (
                token.kind != "str"
                or not isinstance(token.value, str)
                or not NAME.fullmatch(token.value)
            ):
                example = '"mira", "bram"' if count > 1 else '"mira"'
                raise ConditionError(
                    f"{function}() takes {count} quoted character key(s), like "
                    f"{function}({example})",
                    token.column,
                )
            values.append(token.value)
            self.characters.add(token.value)
            if self.current.text == "," and self.current.kind == "op":
                self.take()
                continue
            break
        self.expect(")")
        if len(values) != count:
            raise ConditionError(
                f"{function}() takes {count} argument(s), not {len(values)}", token.column
            )
        return values


def parse_condition(text: str) -> Condition:
    """Parse condition text, or raise `ConditionError` naming the problem and its column."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("the condition is empty")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is longer than {MAX_LENGTH} characters")
    parser = _Parser(text)
    root = parser.parse()
    return Condition(
        source=text,
        flags=frozenset(parser.flags),
        characters=frozenset(parser.characters),
        locations=frozenset(parser.locations),
        _root=root,
    )
