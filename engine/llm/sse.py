"""Server-sent events decoded incrementally from bytes: what a chat completion stream needs.

Feed the bytes of a `text/event-stream` as they arrive; get back the `data` of every event
completed so far, as bytes (`json.loads` takes bytes). Lines end with LF, CRLF or CR; a CR
at the very end of a chunk waits for the next chunk, in case an LF follows it. A blank line
ends an event; several `data:` lines of one event are joined with LF; comment lines (a ':'
first, e.g. keep-alives) and the other fields (`event:`, `id:`, `retry:`) are ignored.

At the end of the stream `finish()` also returns an event that was not closed by a blank line
(the standard drops it; a truncated reply is better reported than silently cut).
"""

from __future__ import annotations

CR, LF = b"\r", b"\n"


class SSEDecoder:
    __slots__ = ("_data", "_pending")

    def __init__(self) -> None:
        self._pending = b""  # the start of a line whose end has not arrived yet
        self._data: list[bytes] = []  # the data lines of the event being read

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of the events that `chunk` completes."""
        text = self._pending + chunk if self._pending else chunk
        if CR in text:
            held = text.endswith(CR)
            if held:
                text = text[:-1]
            lines = text.replace(b"\r\n", LF).replace(CR, LF).split(LF)
            self._pending = lines.pop() + CR if held else lines.pop()
        else:
            lines = text.split(LF)
            self._pending = lines.pop()
        return self._events(lines)

    def finish(self) -> list[bytes]:
        """The data of the last event, at the end of the stream (if it has any)."""
        lines = [self._pending.rstrip(CR), b""] if self._pending else [b""]
        self._pending = b""
        return self._events(lines)

    def _events(self, lines: list[bytes]) -> list[bytes]:
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:  # the end of an event
                if data:
                    events.append(data[0] if len(data) == 1 else LF.join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif line == b"data":
                data.append(b"")
        return events
