"""The scene script, parsed while it streams.

The scene call answers with a script: paragraphs that start with a speaker label, for example

    Narrator: Rain drums on the glass roof.
    Mira: "You're late," she says, not looking up.
    Bram: *grunts* Late is a kind word.

`ScriptParser` turns the streamed text into posts, one per speaker turn, and reports them as
events while the text arrives: `PostStarted` when a post has its first visible text, then
`TextAdded` deltas. The rules:

- A line starts a new post when it begins with a known speaker label: the narrator's name, or
  a non-player character's display name or key, case-insensitive, followed by a colon (or a
  fullwidth one). One word of a longer name will do (`Corvin:` or `Hale:` for Corvin Hale)
  when it is capitalised, of three letters or more, not an article, and no other
  character's name has it. Spaces of any kind and invisible characters before it are ignored. The
  name may be wrapped in markdown bold or italics: `**Mira:**`, `**Mira**:`, `*Mira*:`,
  `__Mira__:`, or in their HTML tags: `<b>Mira</b>:`, `<strong>Mira:</strong>`, `<i>`, `<em>`
  (a whole bold line, `**Mira: Hi.**`, loses its closing `**`); it may be in square brackets,
  `[Mira]:`, where the colon may be left out (`[Mira] Hi.`); and it may carry a stage
  direction (`Mira (whispering):`, kept as the text's start: "(whispering) ..."). A list,
  quote or heading line (`- Bram: room 3`, `### Bram:`) is narration: a ledger or a carving,
  not Bram speaking. Text after the label on the same line is the post's first text.
- Text before any label belongs to the narrator.
- Reasoning blocks (`<think>...</think>`, `<thinking>` or `<reasoning>`, which reasoning
  models may write into the reply) are never posted; a line holding only reasoning is
  skipped. Some servers send the reply of a reasoning model without its opening tag (the
  chat template already holds it), so the reply starts with reasoning and a lone `</think>`
  ends it. The first visible line (outside tagged blocks) decides: if it starts with a
  speaker label, the script streams from there. Otherwise it may be such reasoning, so every
  line is held back until a lone closing tag, which discards them all (reasoning often
  drafts lines like `Mira: ...`), or the end of the reply, which releases them as the
  script (a reply that does not start with a label is then shown at its end, not streamed).
  A lone closing tag once the script streams is removed; what came before it stays.
- A label naming a *player* character (display name or key) is never posted: the model must
  not speak for a player. That line and its continuation lines up to the next label are
  dropped and listed in `dropped` as "Name: text". When a name is both a player's and a
  non-player's, it is treated as the player's.
- A label with an unknown name (`Guard: halt!`) is not a label; the line is text of the
  current post.
- Consecutive labels of the same speaker are merged into one post, separated by a paragraph
  break. (A dropped player line in between ends the post, so the next label starts a new one.)
- Control characters (but tab) are removed: a terminal would run them. Inside a post,
  trailing whitespace of each line is removed, runs of blank lines become one
  paragraph break ("\\n\\n"), and leading and trailing blank lines are not kept. A post is only
  started once it has visible text, so there are no empty posts. Lines of only markdown rule
  or emphasis markers (`---`, `***`, `**`, `___`) do not start a post and are not its last
  lines: one is shown only when more text of its post follows.

Lines end at \\n, \\r\\n, a lone \\r, U+2028 or U+2029.

Streaming: chunks may split anywhere (mid-word, mid-label, between "\\r" and "\\n"). Only the
current incomplete line (and, before the first label, the lines held back) is buffered; a
line's text is emitted when the line completes, and `close()` flushes the last line.
Concatenating the `TextAdded` texts of a post always gives exactly that post's text in
`posts`, and the result does not depend on how the text was split. Work is
linear in the length of the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from engine.llm import REASONING_TAG
from engine.text import name_words, without_controls

NARRATOR = "Narrator"  # the narrator's label and name
# Bold or italics around a label: markdown, or the HTML tags some models write.
_OPEN = r"(?:\*{1,3}|_{1,3}|<(?:b|strong|i|em)>)"
_CLOSE = r"(?:\*{1,3}|_{1,3}|</(?:b|strong|i|em)>)"
_ASIDE = r"(?:\((?P<{}>[^()\n]{{1,200}})\))"  # `Mira (whispering):`
# Before a label: spaces of any kind and invisible characters (a byte-order mark, a
# zero-width space) that would hide it.
_LEAD = r"[\s\u200b-\u200d\u2060\ufeff]*"
# Line ends: \r\n, a lone \r (old Mac style, some servers) and the Unicode separators.
_LINE_ENDS = re.compile("\r\n?|\u2028|\u2029")
# A line with nothing to see but markdown rule or emphasis markers (`---`, `***`, `**`).
_BARE_MARKERS = re.compile(
    r"[\s\u200b-\u200d\u2060\ufeff]*[-*_~=][-*_~=\s\u200b-\u200d\u2060\ufeff]*"
)
_BARE_MARKERS_END = frozenset("-*_~=\u200b\u200c\u200d\u2060\ufeff")


def _after_tags(line: str, thinking: bool) -> tuple[bool, int | None, str]:
    """Whether `line` ends inside a reasoning block (it starts inside one if `thinking`),
    where the text after its first lone closing tag starts (None if it has none), and its
    text outside reasoning blocks up to there."""
    outside, pos = [], 0
    for tag in REASONING_TAG.finditer(line):
        if not thinking:
            outside.append(line[pos : tag.start()])
        pos = tag.end()
        if not tag.group("close"):
            thinking = True
        elif thinking:
            thinking = False
        else:
            return False, tag.end(), "".join(outside)
    if not thinking:
        outside.append(line[pos:])
    return thinking, None, "".join(outside)


@dataclass(frozen=True)
class Speaker:
    name: str  # display name ("Narrator" for narration)
    character_key: str | None  # None for the narrator


@dataclass(frozen=True)
class PostStarted:
    index: int
    speaker: Speaker


@dataclass(frozen=True)
class TextAdded:
    index: int
    text: str  # a delta of post `index`


ScriptEvent = PostStarted | TextAdded


@dataclass(frozen=True)
class ScriptPost:
    speaker: Speaker
    text: str


@dataclass
class _Current:
    """The post being written (index None until it has visible text)."""

    speaker: Speaker
    index: int | None = None
    blank_pending: bool = False
    # Lines of only markdown markers (`---`), with their line breaks: shown only if more
    # text of the post follows them.
    markers_pending: str = ""


_ARTICLES = frozenset({"the", "les", "der", "die", "das", "los", "las", "del"})


def _name_words(npcs: Mapping[str, str], players: Mapping[str, str]) -> dict[str, Speaker | None]:
    """The words of longer names that may call their character alone (None: the word is in
    more than one name, a player character's included)."""
    found: dict[str, Speaker | None] = {}
    for name in players.values():
        for word in name_words(name):
            found[word.lower()] = None  # maybe the player's line: never a story character's
    for key, name in npcs.items():
        words = name_words(name)
        if len(words) < 2:
            continue
        for word in words:
            lowered = word.lower()
            if len(word) < 3 or not word[0].isupper() or lowered in _ARTICLES:
                continue
            speaker = Speaker(name, key)
            found[lowered] = speaker if found.get(lowered, speaker) == speaker else None
    return found


class ScriptParser:
    def __init__(
        self,
        npcs: Mapping[str, str],
        players: Mapping[str, str],
        narrator: str = NARRATOR,
        *,
        user_names: Mapping[str, str] | None = None,
    ) -> None:
        """`npcs` and `players` map character keys to display names; `user_names` are the
        players' own names (by a key of their own), labels only where no story character
        is called so: the prompt names players by their characters, so a model writing
        `Corvin:` means Corvin Hale, not a user called Corvin."""
        narrator_speaker = Speaker(narrator, None)
        # Later entries win, so a name shared with a player character counts as the player's.
        labels: dict[str, tuple[Speaker, bool]] = {}
        for key, name in npcs.items():
            speaker = Speaker(name, key)
            labels[name.strip().lower()] = (speaker, False)
            labels[key.strip().lower()] = (speaker, False)
        for word, only in _name_words(npcs, players).items():
            if only is not None and word not in labels:
                labels[word] = (only, False)
        for key, name in players.items():
            speaker = Speaker(name, key)
            labels[name.strip().lower()] = (speaker, True)
            labels[key.strip().lower()] = (speaker, True)
        for key, name in (user_names or {}).items():
            speaker = Speaker(name, key)
            for label in (name.strip().lower(), key.strip().lower()):
                if label not in labels or labels[label][1]:
                    labels[label] = (speaker, True)
        labels[narrator.strip().lower()] = (narrator_speaker, False)
        labels.pop("", None)
        self._labels = labels
        names = sorted(labels, key=len, reverse=True)
        alternatives = "|".join(re.escape(n) for n in names)
        self._label_re = (
            re.compile(
                # (no space after opening markup: `* Bram: scared` is a list item, not italics)
                rf"{_LEAD}(?P<open>{_OPEN})?(?P<bracket>\[[ \t]*)?(?P<name>{alternatives})"
                rf"[ \t]*{_ASIDE.format('aside')}?[ \t]*(?(bracket)\])[ \t]*(?P<close>{_CLOSE})?"
                rf"[ \t]*{_ASIDE.format('aside2')}?[ \t]*"
                # a colon; `[Mira] Hello` and `**[Mira]** Hello` need none
                rf"(?:[:：]|(?(bracket)(?<=[\]\s>*_])(?=\s|$)|(?!)))[ \t]*(?P<after>{_CLOSE})?",
                re.IGNORECASE,
            )
            if names
            else None
        )
        self._narrator = narrator_speaker
        self._partial: list[str] = []
        self._current: _Current | None = _Current(narrator_speaker)
        self._texts: list[list[str]] = []
        self._speakers: list[Speaker] = []
        self._dropped: list[list[str]] = []
        self._dropping = False
        self._thinking = False
        # Lines before the first label, held back in case a lone `</think>` follows (None
        # once released), and whether they end inside a reasoning block.
        self._held: list[str] | None = []
        self._held_thinking = False
        self._unsure = False  # the first visible line was no label: hold on to the end
        self._cr = False  # the last chunk ended with \r
        self._closed = False

    # --- public ------------------------------------------------------------------------

    def feed(self, chunk: str) -> list[ScriptEvent]:
        """Take the next piece of the stream; returns the events of the lines it completed."""
        events: list[ScriptEvent] = []
        if self._cr:  # a \r that ended the last chunk: with a \n now, it is one line end
            chunk, self._cr = "\r" + chunk, False
        if chunk.endswith("\r"):
            chunk, self._cr = chunk[:-1], True
        if "\r" in chunk or "\u2028" in chunk or "\u2029" in chunk:
            chunk = _LINE_ENDS.sub("\n", chunk)
        start = 0
        while True:
            end = chunk.find("\n", start)
            if end < 0:
                break
            self._partial.append(chunk[start:end])
            line = "".join(self._partial)
            self._partial.clear()
            self._line(line, events)
            start = end + 1
        if start < len(chunk):
            self._partial.append(chunk[start:])
        return events

    def close(self) -> list[ScriptEvent]:
        """End of the stream: flush the last line. Calling it again does nothing."""
        events: list[ScriptEvent] = []
        if self._closed:
            return events
        self._closed = True
        if self._partial:
            line = "".join(self._partial)
            self._partial.clear()
            self._line(line, events)
        self._release(events)
        return events

    @property
    def posts(self) -> list[ScriptPost]:
        """The posts so far (after `close()`, all of them), text stripped."""
        return [
            ScriptPost(speaker, "".join(parts))
            for speaker, parts in zip(self._speakers, self._texts, strict=True)
        ]

    @property
    def dropped(self) -> list[str]:
        """Lines the model attributed to a player character, as "Name: text"."""
        return [" ".join(p for p in parts if p) for parts in self._dropped]

    # --- internals ---------------------------------------------------------------------

    def _release(self, events: list[ScriptEvent]) -> None:
        """Stop holding lines back; the held ones are parsed now, in order."""
        held, self._held = self._held, None
        for line in held or ():
            self._parse(line, events)

    def _is_label(self, line: str) -> bool:
        match = self._label_re.match(line.rstrip()) if self._label_re is not None else None
        return match is not None and match.group("name").lower() in self._labels

    def _line(self, raw: str, events: list[ScriptEvent]) -> None:
        raw = without_controls(raw)
        if self._held is None:
            self._parse(raw, events)
            return
        self._held_thinking, lone_close, outside = _after_tags(raw, self._held_thinking)
        if not self._unsure and any(c.isalnum() for c in outside):  # (not a `---` or `**`)
            # The first visible line decides: a label starts a script, streamed from here on;
            # anything else may be reasoning whose opening tag the server swallowed.
            if self._is_label(outside):
                self._release(events)
                self._parse(raw, events)
                return
            self._unsure = True
        if lone_close is not None:  # everything so far was reasoning
            self._held = None
            self._parse(raw[lone_close:], events)
            return
        self._held.append(raw)

    def _visible(self, line: str) -> str | None:
        """`line` without what is inside reasoning blocks and without lone closing tags;
        None when the line had only reasoning (or tags) in it."""
        if not self._thinking and "<" not in line:
            return line
        out: list[str] = []
        pos, tagged = 0, self._thinking
        for tag in REASONING_TAG.finditer(line):
            if not self._thinking:
                out.append(line[pos : tag.start()])
            self._thinking = not tag.group("close")
            pos, tagged = tag.end(), True
        if not self._thinking:
            out.append(line[pos:])
        visible = "".join(out)
        return None if tagged and not visible.strip() else visible

    def _parse(self, raw: str, events: list[ScriptEvent]) -> None:
        visible = self._visible(raw)
        if visible is None:
            return
        line = visible.rstrip()
        match = self._label_re.match(line) if self._label_re is not None else None
        label = None if match is None else self._labels.get(match.group("name").lower())
        if match is not None and label is not None:
            rest_at = match.end()
            opening = match.group("open")
            after = match.group("after")
            # `**Mira:** text` closes the bold after the colon; otherwise that markup is text.
            if after is not None and (opening is None or match.group("close") is not None):
                rest_at = match.start("after")
            speaker, is_player = label
            rest = line[rest_at:].lstrip()
            if opening and not match.group("close") and not after:
                # `**Mira: Hello.**`, `<b>Mira: Hello.</b>`: a bold line loses its closing markup
                closing = f"</{opening[1:]}" if opening[0] == "<" else opening
                if rest[-len(closing) :].lower() == closing.lower():
                    rest = rest[: -len(closing)].rstrip()
            asides = [a.strip() for a in match.group("aside", "aside2") if a]
            if asides:  # kept as the post's stage directions
                rest = " ".join([*(f"({a})" for a in asides), rest]).rstrip()
            if is_player:
                self._current = None
                self._dropping = True
                self._dropped.append([f"{speaker.name}:", rest])
                return
            self._dropping = False
            current = self._current
            if current is not None and current.speaker == speaker and current.index is not None:
                current.blank_pending = True  # merged: the new label is a paragraph break
            else:
                self._current = _Current(speaker)
            line = rest
        elif self._dropping:
            if line:
                self._dropped[-1].append(line.strip())
            return
        current = self._current
        if current is None:  # only after a dropped line, which sets `_dropping`
            current = self._current = _Current(self._narrator)
        if not line.strip():
            if current.index is not None:
                current.blank_pending = True
            return
        # A `---` line waits: it must not start a post, nor end one. (`line` is not blank and
        # ends in no space, so a marker line ends in a marker or an invisible character.)
        if line[-1] in _BARE_MARKERS_END and _BARE_MARKERS.fullmatch(line):
            if current.index is not None:
                current.markers_pending += ("\n\n" if current.blank_pending else "\n") + line
                current.blank_pending = False
            return
        if current.index is None:
            current.index = len(self._texts)
            self._texts.append([])
            self._speakers.append(current.speaker)
            events.append(PostStarted(current.index, current.speaker))
            text = line.lstrip()
        else:
            text = current.markers_pending + ("\n\n" if current.blank_pending else "\n") + line
            current.markers_pending = ""
        current.blank_pending = False
        self._texts[current.index].append(text)
        events.append(TextAdded(current.index, text))


def parse_script(
    text: str, npcs: Mapping[str, str], players: Mapping[str, str], narrator: str = NARRATOR
) -> tuple[list[ScriptPost], list[str]]:
    """Parse a whole script at once: the posts and the dropped player lines."""
    parser = ScriptParser(npcs, players, narrator)
    parser.feed(text)
    parser.close()
    return parser.posts, parser.dropped
