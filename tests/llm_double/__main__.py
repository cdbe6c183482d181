"""Serve the LLM double until killed: `python -m tests.llm_double --port N --latency-ms M`.

Prints `listening on <base_url>` once ready (so `--port 0` can be used and read back), then
answers every call with the default replies (or `--scene` / `--director`). SIGTERM and Ctrl-C
stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from tests.llm_double.server import LLMDouble


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
    args = parser.parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
