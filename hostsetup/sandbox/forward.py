"""A TCP forwarder (standard library only: it runs in each host's SSH gateway container).

Sandbox hosts sit on an internal docker network, where the engine publishes no ports.
Each host's gateway joins that network and a publishing one, and relays its port 22
to the host's port 22; the engine publishes the gateway's port on 127.0.0.1 only.

    python3 forward.py TARGET_ADDRESS [PORT]
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def _relay(target: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        target_reader, target_writer = await asyncio.open_connection(target, port)
    except OSError as exc:
        sys.stderr.write(f"cannot reach {target}:{port}: {exc}\n")
        writer.close()
        return
    await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))
    target_writer.close()
    writer.close()


async def main(target: str, port: int) -> None:
    server = await asyncio.start_server(lambda r, w: _relay(target, port, r, w), "0.0.0.0", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 22))
