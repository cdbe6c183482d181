"""The condition language: what story authors write, and what hostile text cannot do."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rules.conditions import ConditionError, parse_condition


@dataclass
class State:
    flags: dict[str, object] = field(default_factory=dict)
    relations: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)
    here: set[str] = field(default_factory=set)
    location: str = "hall"
    turn: int = 0

    def flag(self, name: str):  # type: ignore[no-untyped-def]
        return self.flags.get(name)

    def trust(self, a: str, b: str) -> float:
        return self.relations.get((a, b), (0.0, 0.0, 0.0))[0]

    def affection(self, a: str, b: str) -> float:
        return self.relations.get((a, b), (0.0, 0.0, 0.0))[1]

    def familiarity(self, a: str, b: str) -> float:
        return self.relations.get((a, b), (0.0, 0.0, 0.0))[2]

    def present(self, key: str) -> bool:
        return key in self.here


@pytest.mark.parametrize(
    ("text", "state", "expected"),
    [
        ('flag.met_bram and trust("mira", "bram") >= 0.3', State(), False),
        (
            'flag.met_bram and trust("mira", "bram") >= 0.3',
            State(flags={"met_bram": True}, relations={("mira", "bram"): (0.3, 0, 0)}),
            True,
        ),
        ('present("vesna") and location == "cellar"', State(here={"vesna"}), False),
        (
            'present("vesna") and location == "cellar"',
            State(here={"vesna"}, location="cellar"),
            True,
        ),
        ("turn >= 5 or not flag.gate_open", State(turn=2, flags={"gate_open": True}), False),
        ("turn >= 5 or not flag.gate_open", State(turn=2), True),
        ("flag.bell_count == 3", State(flags={"bell_count": 3}), True),
        ("flag.bell_count == 3.0", State(flags={"bell_count": 3}), True),
        ('affection("a", "b") < -0.2', State(relations={("a", "b"): (0, -0.5, 0)}), True),
        ("flag.fate == 'burned'", State(flags={"fate": "burned"}), True),
        # Unset flags and mismatched types are false, except for !=.
        ("flag.missing > 3", State(), False),
        ("flag.missing != 3", State(), True),
        ("flag.name > 3", State(flags={"name": "x"}), False),
        # Precedence: not binds tighter than and, and tighter than or.
        ("not flag.a and flag.b", State(flags={"b": True}), True),
        ("flag.a or flag.b and flag.c", State(flags={"a": True}), True),
        ("(flag.a or flag.b) and flag.c", State(flags={"a": True}), False),
    ],
)
def test_conditions_evaluate_as_authors_expect(text: str, state: State, expected: bool) -> None:
    assert parse_condition(text).evaluate(state) is expected


def test_names_used_are_collected_for_validation() -> None:
    condition = parse_condition(
        'flag.a and (trust("mira", "bram") > 0 or present("ida")) and location == "cellar"'
    )
    assert condition.flags == {"a"}
    assert condition.characters == {"mira", "bram", "ida"}
    assert condition.locations == {"cellar"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("turn >", "expected a value but found the end at column 7"),
        ('frob("x")', 'unknown name "frob"'),
        ("flag.a && flag.b", 'use "and" instead of "&&"'),
        ("turn = 3", 'use "==" to compare'),
        ("turn < 1 < 2", "cannot be chained"),
        ('trust("a")', "trust() takes 2 argument(s)"),
        ("present(mira)", "quoted character key"),
        ('"open', "unterminated string"),
        ("(turn > 1", 'expected ")"'),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo pwned')",
        "flag.x.__class__",
        "flag.__class__",
        "lambda: 1",
        "[x for x in y]",
        "1 if 2 else 3",
        "open('/etc/passwd').read()",
        "().__class__.__bases__[0]",
        "(" * 10_000 + "turn" + ")" * 10_000,
        "(" * 100 + "turn" + ")" * 100,
        "not " * 200 + "turn",
        "turn > 1 and " * 200 + "turn",
        "\x00",
    ],
)
def test_hostile_text_is_refused(text: str) -> None:
    with pytest.raises(ConditionError):
        parse_condition(text)


TOKENS = [
    "flag.a",
    "flag.b",
    "turn",
    "location",
    "and",
    "or",
    "not",
    "(",
    ")",
    "==",
    "!=",
    "<",
    ">=",
    "1",
    "-2.5",
    '"hall"',
    "'x'",
    'trust("a", "b")',
    'present("a")',
    "true",
    ",",
    ".",
    "__import__",
    "=",
    "!",
    "&&",
    "[",
    "lambda",
    ":",
]


@settings(max_examples=300)
@given(
    st.one_of(st.text(max_size=200), st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join))
)
def test_any_text_parses_or_raises_condition_error(text: str) -> None:
    try:
        condition = parse_condition(text)
    except ConditionError:
        return
    assert isinstance(condition.evaluate(State()), bool)


def _expressions() -> st.SearchStrategy[str]:
    leaves = st.one_of(
        st.from_regex(r"flag\.[a-z]{1,6}", fullmatch=True),
        st.builds(lambda n: f"turn >= {n}", st.integers(-5, 50)),
        st.builds(lambda loc: f'location == "{loc}"', st.sampled_from(["hall", "cellar"])),
        st.builds(
            lambda f, v: f'{f}("a", "b") > {v}',
            st.sampled_from(["trust", "affection", "familiarity"]),
            st.floats(-1, 1).map(lambda x: round(x, 2)),
        ),
        st.just('present("a")'),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"{a} and {b}", inner, inner),
            st.builds(lambda a, b: f"{a} or {b}", inner, inner),
            st.builds(lambda a: f"not {a}", inner),
            st.builds(lambda a: f"({a})", inner),
        ),
        max_leaves=12,
    )


states = st.builds(
    State,
    flags=st.dictionaries(
        st.from_regex(r"[a-z]{1,6}", fullmatch=True),
        st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5)),
        max_size=5,
    ),
    relations=st.dictionaries(
        st.just(("a", "b")), st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(0, 1))
    ),
    here=st.sets(st.sampled_from(["a", "b"])),
    location=st.sampled_from(["hall", "cellar", ""]),
    turn=st.integers(0, 100),
)


@settings(max_examples=300)
@given(_expressions(), states)
def test_valid_expressions_always_evaluate_to_a_bool(text: str, state: State) -> None:
    assert isinstance(parse_condition(text).evaluate(state), bool)


def test_parsing_and_evaluating_never_run_python(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the condition language must not run Python code")

    samples = [
        "__import__('os').system('true')",
        'flag.a and trust("a", "b") > 0.5 or not present("a")',
        "eval('1')",
        "exec('x = 1')",
    ]
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", forbidden)
    results = []
    for text in samples:
        try:
            results.append(parse_condition(text).evaluate(State(flags={"a": True})))
        except ConditionError:
            results.append(None)
    assert results == [None, True, None, None]
