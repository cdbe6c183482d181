"""How engine results read on every front end."""

from __future__ import annotations

from engine.results import ChangeView, FlagView, RelationshipView


def test_numbers_read_as_written() -> None:
    assert FlagView("big", 1e15, "director", 3).describe() == (
        "big = 1e+15 (set by the director on turn 3)"
    )
    assert FlagView("gold", 12, "story", 0).describe() == (
        "gold = 12 (set by the story before the first turn)"
    )
    assert ChangeView("flag", "ratio", 0.1, 0.1 + 0.2, "", "director").describe() == (
        "flag ratio: 0.1 -> 0.3"
    )


def test_small_changes_do_not_read_as_zero() -> None:
    nudge = ChangeView("trust", "mira->ash", 0.1, 0.104, "a tiny nudge", "director", "Mira -> Ash")
    assert nudge.describe() == "trust Mira -> Ash +0.004: a tiny nudge"
    step = ChangeView("affection", "mira->ash", 0.0, -0.1, "", "director", "Mira -> Ash")
    assert step.describe() == "affection Mira -> Ash -0.10"
    rel = RelationshipView("mira", "Mira", "ash", "Ash", "friend", 0.4, -0.004, -0.0)
    assert rel.describe() == (
        "Mira -> Ash (friend): trust +0.40, affection -0.004, familiarity 0.00"
    )
