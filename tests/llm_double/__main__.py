"""Serve the LLM double until killed: `python -m tests.llm_double --port N --latency-ms M`."""

from __future__ import annotations

import argparse
import asyncio

from tests.llm_double.server import LLMDouble


async def serve(port: int, latency_ms: float, chunk_delay_ms: float) -> None:
    server = LLMDouble(port=port, latency=latency_ms / 1000, chunk_delay=chunk_delay_ms / 1000)
    await server.start()
    print(f"listening on {server.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency_ms, args.chunk_delay_ms))


if __name__ == "__main__":
    main()
