#!/usr/bin/env python3
"""Loopback TCP relay in front of sshd: adds a one-way delay and can blackhole the path.

    proxy.py --target PORT [--delay-ms MS]

Binds port 0 and prints it. Commands, one per line on stdin, each answered "ok" on stdout:
  blackhole  freeze every connection and park new ones: no bytes, no FIN, no RST - a silently
             dead path (only SSH-level keepalives can notice; the kernel still ACKs).
  heal       resume everything frozen or parked.
With --delay-ms each chunk is delivered MS milliseconds after it was read, in each direction
(so the path's round trip grows by 2 x MS), with unbounded buffering: a long fat pipe.
"""
import argparse
import asyncio
import socket
import sys
import time

CHUNK = 256 * 1024


class Path:
    def __init__(self, delay):
        self.delay = delay
        self.open = asyncio.Event()
        self.open.set()


async def pipe(reader, writer, path):
    queue = asyncio.Queue()

    async def read_side():
        while True:
            await path.open.wait()
            try:
                data = await reader.read(CHUNK)
            except OSError:
                data = b""
            await queue.put((time.monotonic() + path.delay, data))
            if not data:
                return

    async def write_side():
        while True:
            due, data = await queue.get()
            pause = due - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            await path.open.wait()
            try:
                if not data:
                    writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
            except OSError:
                return

    await asyncio.gather(read_side(), write_side())


async def relay(client_reader, client_writer, target, path):
    await path.open.wait()  # parked while blackholed
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    for w in (client_writer, up_writer):
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await asyncio.gather(pipe(client_reader, up_writer, path), pipe(up_reader, client_writer, path))
    finally:
        client_writer.close()
        up_writer.close()


async def commands(path):
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        cmd = line.strip()
        if cmd == "blackhole":
            path.open.clear()
        elif cmd == "heal":
            path.open.set()
        print("ok" if cmd in ("blackhole", "heal") else f"unknown command {cmd!r}", flush=True)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    path = Path(args.delay_ms / 1000)
    server = await asyncio.start_server(
        lambda r, w: relay(r, w, args.target, path), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await commands(path)  # ends when stdin closes


asyncio.run(main())
