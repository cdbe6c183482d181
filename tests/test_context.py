"""Pieces of the scene prompt (engine/turns/context.py) that need no engine to check."""

from __future__ import annotations

from engine.turns.context import SCRIPT_RULES
from engine.turns.prompt_parts import Line


def test_a_post_of_several_paragraphs_stays_one_transcript_entry() -> None:
    # An opening of several paragraphs: a blank line would read as the section's end.
    line = Line("Narrator", "The glasshouse hums.\n\nRain on the panes.\n\n\nA bell.", None)
    assert line.render() == "Narrator: The glasshouse hums.\nRain on the panes.\nA bell."
    assert "\n\n" not in Line("Narrator", "One.\n\nTwo.").render()


def test_the_rules_example_gives_no_character_a_pronoun() -> None:
    example = SCRIPT_RULES.format(example="Tobiah Wren", players="Ash", words=200)
    assert 'Tobiah Wren: "You\'re late."\n' in example
