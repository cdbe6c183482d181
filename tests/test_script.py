"""The scene script parser: speakers, dropped player lines, and streaming in any chunks."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.turns.script import (
    PostStarted,
    ScriptEvent,
    ScriptParser,
    ScriptPost,
    Speaker,
    TextAdded,
    parse_script,
)

NPCS = {"mira": "Mira", "bram": "Bram", "old_tom": "Old Tom"}
PLAYERS = {"alice": "Alice", "pc_bob": "Bob"}
NARRATOR = Speaker("Narrator", None)
MIRA = Speaker("Mira", "mira")
BRAM = Speaker("Bram", "bram")


def parse(text: str) -> tuple[list[ScriptPost], list[str]]:
    return parse_script(text, NPCS, PLAYERS)


def stream(text: str, cuts: list[int]) -> tuple[ScriptParser, list[ScriptEvent]]:
    parser = ScriptParser(NPCS, PLAYERS)
    events: list[ScriptEvent] = []
    bounds = [0, *sorted(set(cuts)), len(text)]
    for start, end in pairwise(bounds):
        events += parser.feed(text[start:end])
    events += parser.close()
    return parser, events


def texts_by_index(events: list[ScriptEvent]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for event in events:
        if isinstance(event, PostStarted):
            assert event.index not in texts, "a post is started once"
            assert event.index == len(texts), "posts are numbered in order"
            texts[event.index] = ""
        else:
            assert event.index in texts, "text comes after its post started"
            texts[event.index] += event.text
    return texts


def test_three_speakers() -> None:
    posts, dropped = parse(
        "Narrator: Rain drums on the glass roof.\n"
        'Mira: "You\'re late," she says, not looking up.\n'
        "Bram: *grunts* Late is a kind word.\n"
    )
    assert posts == [
        ScriptPost(NARRATOR, "Rain drums on the glass roof."),
        ScriptPost(MIRA, '"You\'re late," she says, not looking up.'),
        ScriptPost(BRAM, "*grunts* Late is a kind word."),
    ]
    assert dropped == []


def test_text_before_any_label_is_narration() -> None:
    posts, _ = parse("The door creaks open.\n\nMira: Who's there?")
    assert posts == [
        ScriptPost(NARRATOR, "The door creaks open."),
        ScriptPost(MIRA, "Who's there?"),
    ]


def test_labels_in_markdown_keys_and_any_case() -> None:
    posts, _ = parse(
        "**Mira:** One.\n**Bram**: Two.\n*Mira*: Three.\n__old_tom__: Four.\n"
        "BRAM: Five.\nold tom: Six.\n  narrator  : Seven."
    )
    assert [(p.speaker.character_key, p.text) for p in posts] == [
        ("mira", "One."),
        ("bram", "Two."),
        ("mira", "Three."),
        ("old_tom", "Four."),
        ("bram", "Five."),
        ("old_tom", "Six."),
        (None, "Seven."),
    ]
    assert posts[3].speaker == Speaker("Old Tom", "old_tom")


def test_markup_after_a_plain_label_is_text() -> None:
    posts, _ = parse("Bram: *grunts*\n*Mira*: _sighs_ Fine.")
    assert [p.text for p in posts] == ["*grunts*", "_sighs_ Fine."]


def test_player_lines_and_their_continuation_are_dropped() -> None:
    posts, dropped = parse(
        "Mira: Draw, if you dare.\n"
        "Alice: I draw my sword\n"
        "and lunge at her.\n"
        "\n"
        "**pc_bob:** I hide.\n"
        "Narrator: The candles gutter.\n"
    )
    assert posts == [
        ScriptPost(MIRA, "Draw, if you dare."),
        ScriptPost(NARRATOR, "The candles gutter."),
    ]
    assert dropped == ["Alice: I draw my sword and lunge at her.", "Bob: I hide."]
    assert all(p.speaker.character_key not in PLAYERS for p in posts)


def test_unknown_label_stays_text_of_the_current_post() -> None:
    posts, dropped = parse("Mira: Stop him!\nGuard: Halt!\nMira, softly: Please.")
    assert posts == [ScriptPost(MIRA, "Stop him!\nGuard: Halt!\nMira, softly: Please.")]
    assert dropped == []


def test_labels_with_stage_directions_but_lists_are_narration() -> None:
    posts, dropped = parse(
        "Narrator: The ledger reads:\n- Bram: room 3, paid\n### Mira: keeper\n> Bram: a rhyme\n"
        "* Bram: scared\n"
        "Mira (whispering): Hush.\n**Old Tom (coldly):** No.\nAlice (angrily): I refuse."
    )
    assert posts == [
        ScriptPost(
            NARRATOR,
            "The ledger reads:\n- Bram: room 3, paid\n### Mira: keeper\n> Bram: a rhyme\n"
            "* Bram: scared",
        ),
        ScriptPost(MIRA, "(whispering) Hush."),
        ScriptPost(Speaker("Old Tom", "old_tom"), "(coldly) No."),
    ]
    assert dropped == ["Alice: (angrily) I refuse."]


def test_paragraphs_whitespace_and_merging() -> None:
    posts, _ = parse(
        "\n\n  Narrator:   \n\n   Fog rolls in.   \n\n\n\nIt thickens.  \n\n"
        "Mira: One.\r\nMira: Two.\r\n\r\n"
    )
    assert posts == [
        ScriptPost(NARRATOR, "Fog rolls in.\n\nIt thickens."),
        ScriptPost(MIRA, "One.\n\nTwo."),
    ]


def test_no_empty_posts() -> None:
    posts, dropped = parse("Narrator:\n\nMira:   \nBram: \n\n   \nAlice: hi\n")
    assert posts == []
    assert dropped == ["Alice: hi"]
    assert parse("") == ([], [])


def test_events_stream_line_by_line() -> None:
    parser = ScriptParser(NPCS, PLAYERS)
    assert parser.feed("Narrator: Rain dr") == []
    assert parser.feed("ums.\nMi") == [PostStarted(0, NARRATOR), TextAdded(0, "Rain drums.")]
    assert parser.feed("ra: Late") == []
    assert parser.posts == [ScriptPost(NARRATOR, "Rain drums.")]
    assert parser.close() == [PostStarted(1, MIRA), TextAdded(1, "Late")]
    assert parser.close() == []


def test_reasoning_blocks_are_not_posted() -> None:
    posts, _ = parse(
        "<think>\nThe players want the key.\nMira: should she lie?\n</think>\n"
        "Mira: It is gone. <THINK>she lies</think>Truly.\n"
        "Narrator: The fire <think>unfinished thought"
    )
    assert posts == [
        ScriptPost(MIRA, "It is gone. Truly."),
        ScriptPost(NARRATOR, "The fire"),
    ]


def test_reasoning_without_its_opening_tag_is_not_posted() -> None:
    # DeepSeek-R1 style: the server's chat template opened the block, the reply closes it.
    reply = (
        "Okay, the players knock. Maybe Mira shouts:\nMira: Hide the key!\nNo, too early.\n"
        "Yes.</think>\n\nNarrator: The door creaks.\nMira: Who's there?\n"
    )
    posts, dropped = parse(reply)
    assert posts == [ScriptPost(NARRATOR, "The door creaks."), ScriptPost(MIRA, "Who's there?")]
    assert dropped == []
    # The same, streamed one character at a time: nothing of the reasoning is ever shown.
    parser, events = stream(reply, list(range(len(reply))))
    assert parser.posts == posts
    shown = "".join(e.text for e in events if isinstance(e, TextAdded))
    assert "hide the key" not in shown.lower() and "too early" not in shown
    # A draft with a narrator line in it goes too.
    posts, _ = parse("Draft:\nNarrator: draft line\nFinal below.\n</think>\nNarrator: real line.")
    assert posts == [ScriptPost(NARRATOR, "real line.")]


def test_thinking_tags_and_stray_closing_tags_are_not_posted() -> None:
    posts, _ = parse(
        "<thinking>plan the scene</thinking>\nMira: Hello.</thinking> Sit.\n"
        "Narrator: Unlabelled <THINKING>hmm</Thinking>rain."
    )
    assert posts == [ScriptPost(MIRA, "Hello. Sit."), ScriptPost(NARRATOR, "Unlabelled rain.")]


def test_control_characters_are_never_posted() -> None:
    posts, _ = parse("\x07Mira: Run\x1b[2J now.\x00\r\nNarrator: The bell\x9b rings.\tTwice.")
    assert posts == [
        ScriptPost(MIRA, "Run[2J now."),
        ScriptPost(NARRATOR, "The bell rings.\tTwice."),
    ]


def test_labels_hidden_by_invisible_characters_or_odd_line_ends_are_found() -> None:
    posts, dropped = parse(
        "\ufeffNarrator: Rain.\rMira：Hi.\u2028\u00a0Alice: I attack\r\n\u200bBram: Quiet."
    )
    assert posts == [
        ScriptPost(NARRATOR, "Rain."),
        ScriptPost(MIRA, "Hi."),
        ScriptPost(BRAM, "Quiet."),
    ]
    assert dropped == ["Alice: I attack"]  # never posted for the player
    # A lone \r at a chunk's end, then \n: one line end, not a blank line between.
    parser, _ = stream("Mira: One.\r\nMira: Two.", [10, 11])
    assert parser.posts == [ScriptPost(MIRA, "One.\n\nTwo.")]


def test_long_stage_directions_and_bold_lines() -> None:
    aside = "stepping forward, eyes on the stranger by the fire, sword half drawn, muttering"
    posts, dropped = parse(
        f"Alice ({aside}): I attack.\n**Mira: Not here.**\n*Bram: hm*\n"
        "**Mira (softly)** (sadly): Go."
    )
    assert dropped == [f"Alice: ({aside}) I attack."]
    assert posts == [
        ScriptPost(MIRA, "Not here."),
        ScriptPost(BRAM, "hm"),
        ScriptPost(MIRA, "(softly) (sadly) Go."),
    ]


def test_reasoning_tags_of_other_names() -> None:
    posts, _ = parse("<reasoning>\nBram: Help!\n</reasoning>\nNarrator: Rain.")
    assert posts == [ScriptPost(NARRATOR, "Rain.")]
    posts, _ = parse("Mira: Hi. < think>she lies</ think >Truly.\n<Thinking >Bram: x</thinking>")
    assert posts == [ScriptPost(MIRA, "Hi. Truly.")]


def test_narration_without_labels_is_kept_whole() -> None:
    parser, events = stream("The rain stops.\n\nA bell rings.", [5, 17])
    assert parser.posts == [ScriptPost(NARRATOR, "The rain stops.\n\nA bell rings.")]
    assert texts_by_index(events) == {0: "The rain stops.\n\nA bell rings."}


def test_a_custom_narrator_name() -> None:
    posts, _ = parse_script("Storyteller: Once.\nNarrator: Twice.", NPCS, PLAYERS, "Storyteller")
    assert posts == [ScriptPost(Speaker("Storyteller", None), "Once.\nNarrator: Twice.")]


def test_bracketed_labels() -> None:
    # Some fine-tunes write `[Name]:` or IRC-style `[Name] text`.
    posts, dropped = parse(
        "[Mira]: Hello.\n[ Bram ] Quiet.\n**[Old Tom]**: No.\n[Mira (softly)]: Go.\n"
        "<b>[Bram]</b> Hm.\n"
        "[Alice] I attack.\n[Narrator]\nRain.\n[Guard]: Halt!\n[Bram]none\n"
    )
    assert posts == [
        ScriptPost(MIRA, "Hello."),
        ScriptPost(BRAM, "Quiet."),
        ScriptPost(Speaker("Old Tom", "old_tom"), "No."),
        ScriptPost(MIRA, "(softly) Go."),
        ScriptPost(BRAM, "Hm."),
        ScriptPost(NARRATOR, "Rain.\n[Guard]: Halt!\n[Bram]none"),
    ]
    assert dropped == ["Alice: I attack."]
    # A bracketed label decides the reply's first line like a plain one: it streams.
    parser = ScriptParser(NPCS, PLAYERS)
    assert parser.feed("[Mira]: Hi.\n") == [PostStarted(0, MIRA), TextAdded(0, "Hi.")]


def test_html_bold_labels() -> None:
    posts, dropped = parse(
        "<b>Bram</b>: One.\n<strong>Mira</strong>: Two.\n<B>Old Tom:</B> Three.\n"
        "<i>Bram</i> (quietly): Four.\n<b>Mira: Five.</b>\n<strong>Alice</strong>: Six.\n"
        "<b>Guard</b>: Seven.\nNarrator: <b>Eight.</b>"
    )
    assert [(p.speaker.character_key, p.text) for p in posts] == [
        ("bram", "One."),
        ("mira", "Two."),
        ("old_tom", "Three."),
        ("bram", "(quietly) Four."),
        ("mira", "Five."),
        (None, "<b>Eight.</b>"),
    ]
    assert dropped == ["Alice: Six. <b>Guard</b>: Seven."]


def test_rule_and_emphasis_lines_do_not_start_or_end_a_post() -> None:
    posts, _ = parse(
        "---\n**\n\nThe inn is quiet.\n***\nMira: **\nHello.\n\n___\n\n"
        "Bram: One.\n\n---\n\nTwo.\n- - -\n"
    )
    assert posts == [
        ScriptPost(NARRATOR, "The inn is quiet."),
        ScriptPost(MIRA, "Hello."),
        ScriptPost(BRAM, "One.\n\n---\n\nTwo."),  # a rule inside a post stays
    ]
    # Streamed: the rule that may end a post waits for the post's next line.
    parser, events = stream("Bram: One.\n---\nTwo.\n***", [12, 15])
    assert parser.posts == [ScriptPost(BRAM, "One.\n---\nTwo.")]
    assert texts_by_index(events) == {0: "One.\n---\nTwo."}
    assert parse("---\n***\n") == ([], [])


LABELS = [
    "Narrator:",
    "Mira:",
    "mira:",
    "**Mira:**",
    "**Bram**:",
    "*old tom*:",
    "Alice:",
    "pc_bob:",
    "Guard:",
    "Mira",
    "**",
    "[Mira]:",
    "[Alice]",
    "[bram]",
    "<b>Bram</b>:",
    "<strong>Mira:</strong>",
]
WORDS = st.sampled_from(
    [
        "rain",
        "*grunts*",
        '"Late."',
        "Mira",
        ":",
        "  ",
        "é",
        "Bob:",
        "__",
        "<think>",
        "</THINK>",
        "<thinking>",
        "</Thinking>",
    ]
)
LINES = st.one_of(
    st.just(""),
    st.just("   "),
    st.sampled_from(["---", "**", " * * *", "___"]),
    st.builds(
        lambda label, words: " ".join([label, *words]),
        st.sampled_from(LABELS),
        st.lists(WORDS, max_size=5),
    ),
    st.lists(WORDS, min_size=1, max_size=6).map(" ".join),
    st.text(max_size=20),
)
SCRIPTS = st.builds(
    lambda lines, newline, tail: newline.join(lines) + tail,
    st.lists(LINES, max_size=12),
    st.sampled_from(["\n", "\r\n", "\r", "\u2028"]),
    st.sampled_from(["", "\n", "\r\n"]),
)


@settings(max_examples=200, deadline=None)
@given(text=SCRIPTS, data=st.data())
def test_any_chunking_gives_the_same_posts(text: str, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=20), label="cuts")
    whole_posts, whole_dropped = parse(text)
    parser, events = stream(text, cuts)
    assert parser.posts == whole_posts
    assert parser.dropped == whole_dropped
    texts = texts_by_index(events)
    assert [texts[i] for i in range(len(texts))] == [p.text for p in whole_posts]
    for post in whole_posts:
        assert post.text.strip(), "no empty posts"
        assert post.text == post.text.strip()
        assert post.text.splitlines()[0].strip("-*_ ") and post.text.splitlines()[-1].strip("-*_ ")
        assert post.speaker.character_key not in PLAYERS
        assert "<think" not in post.text.lower(), "reasoning is never posted"
        assert "</think" not in post.text.lower()


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("Mira:*_ \r\nAlice\tBob"), max_size=60))
def test_arbitrary_text_streams_consistently(text: str) -> None:
    one_shot, events = stream(text, [])
    per_char, char_events = stream(text, list(range(len(text))))
    assert per_char.posts == one_shot.posts
    assert texts_by_index(char_events) == texts_by_index(events)
    assert all(p.text.strip() for p in one_shot.posts)


def test_one_word_of_a_longer_name_calls_that_character() -> None:
    npcs = {"corvin": "Corvin Hale", "odile": "Odile Marrowgate", "ada": "Ada Hale", "tom": "Tom"}
    players = {"vera": "Verity Coyle", "user_5": "Odile"}
    text = "Corvin: Late.\nMarrowgate: Hush.\nHale: Which of us?\nOdile: Mine.\nThe: x\n"
    posts, dropped = parse_script(text, npcs, players)
    corvin = Speaker("Corvin Hale", "corvin")
    assert posts == [
        ScriptPost(corvin, "Late."),
        ScriptPost(Speaker("Odile Marrowgate", "odile"), "Hush.\nHale: Which of us?"),
    ]
    # "Hale" is in two names; "Odile" is also a player's name, which always wins.
    assert dropped == ["Odile: Mine. The: x"]
    # A user (not their character) called Odile or Corvin: the model, which knows players by
    # their characters, means the story's Odile; a user name nobody else has still never speaks.
    users = {"user_5": "Odile", "user_6": "Corvin Hale", "user_7": "Zed"}
    parser = ScriptParser(npcs, {"vera": "Verity Coyle"}, user_names=users)
    parser.feed("Odile: Mine.\nCorvin Hale: And mine.\nZed: I attack.\n")
    parser.close()
    assert [p.speaker.name for p in parser.posts] == ["Odile Marrowgate", "Corvin Hale"]
    assert parser.dropped == ["Zed: I attack."]
    # A word also in a player character's name may be that player's line: it calls no one.
    parser = ScriptParser({"corvin_hale": "Corvin Hale"}, {"black": "Corvin Black"})
    parser.feed("Narrator: The door opens.\nCorvin: I draw my blade.\n")
    parser.close()
    assert parser.posts == [ScriptPost(NARRATOR, "The door opens.\nCorvin: I draw my blade.")]
