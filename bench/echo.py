#!/usr/bin/env python3
"""Loopback TCP echo server (asyncio, TCP_NODELAY). Binds port 0 and prints the port."""
import asyncio
import socket
import sys


async def echo(reader, writer):
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    # Ends when the parent closes our stdin (or stops us by PID).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
