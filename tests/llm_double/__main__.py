"""Serve the LLM double until killed: `python -m tests.llm_double --port N --latency-ms M`.

Prints `listening on <base_url>` once ready (so `--port 0` can be used and read back), then
answers every call with the default replies (or `--scene` / `--director` / `--summary`). `--fault
PURPOSE:KIND[:OPTION=VALUE...]` (repeatable) fails calls of a purpose (scene, director,
summary), for instance `--fault scene:500:skip=1` (the second scene call gets HTTP 500) or
`--fault director:malformed:times=2`; kinds and options are those of `server.Fault`.
SIGTERM and Ctrl-C stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from tests.llm_double.server import Fault, LLMDouble


def parse_fault(spec: str) -> tuple[str, Fault]:
    """`scene:500:skip=1` -> ("scene", Fault("500", skip=1)); ValueError names the problem."""
    purpose, _, rest = spec.partition(":")
    kind, *options = rest.split(":")
    if not purpose or not kind:
        raise ValueError(f"{spec!r}: write PURPOSE:KIND[:OPTION=VALUE...], e.g. scene:500")
    values: dict[str, Any] = {}
    for option in options:
        name, equals, value = option.partition("=")
        if not equals or name not in Fault.__dataclass_fields__ or name == "kind":
            raise ValueError(f"{spec!r}: unknown option {option!r}")
        values[name] = float(value) if "." in value else int(value)
    return purpose, Fault(kind, **values)


async def serve(args: argparse.Namespace) -> None:
    server = LLMDouble(
        host=args.host,
        port=args.port,
        latency=args.latency_ms / 1000,
        chunk_delay=args.chunk_delay_ms / 1000,
    )
    if args.scene:
        server.set_default("scene", args.scene)
        server.set_default("default", args.scene)
    if args.director:
        server.set_default("director", args.director)
    if args.summary:
        server.set_default("summary", args.summary)
    for purpose, fault in args.fault:
        server.faults[purpose].append(fault)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await server.start()
    print(f"listening on {server.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--scene", help="the reply to every scene call")
    parser.add_argument("--director", help="the reply (JSON) to every director call")
    parser.add_argument("--summary", help="the reply to every summary (chapter) call")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="PURPOSE:KIND[:OPTION=VALUE...]",
        help="fail calls of a purpose, e.g. scene:500:skip=1 (repeatable)",
    )
    args = parser.parse_args()
    try:
        args.fault = [parse_fault(spec) for spec in args.fault]
    except ValueError as error:
        parser.error(str(error))
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
