"""Single measurements through a forward's entry port on 127.0.0.1."""
import asyncio
import json
import os
import socket
import subprocess
import time

from .procs import LOOPBACK, echo_once, percentile


def iperf3(entry, seconds, download):
    """Bulk TCP throughput in Gbit/s through `entry` (one stream); `download` = iperf3 -R, the
    server sends toward the client."""
    run = iperf3_run(entry, seconds, download)
    return run["gbps"] if run else None


def iperf3_run(entry, seconds, download, mib=None):
    """One iperf3 test for `seconds`, or until `mib` MiB have moved when given: {"gbps",
    "bytes"} received, or None when it failed."""
    amount, timeout = (["-n", f"{mib}M"], 600) if mib else (["-t", str(seconds)], seconds + 60)
    argv = ["iperf3", "-c", LOOPBACK, "-p", str(entry), *amount, "-J",
            "--connect-timeout", "5000"] + (["-R"] if download else [])
    # The server may still be draining the previous test's tail out of a big window: retry.
    for _ in range(20):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        try:
            result = json.loads(r.stdout)
        except ValueError:
            return None
        if "busy" not in result.get("error", ""):
            break
        time.sleep(0.5)
    try:
        received = result["end"]["sum_received"]
        return {"gbps": received["bits_per_second"] / 1e9, "bytes": received["bytes"]}
    except KeyError:
        return None


def _recv_exactly(s, n):
    got = 0
    while got < n:
        data = s.recv(n - got)
        if not data:
            raise ConnectionError("closed early")
        got += len(data)


def pingpong(entry, size, count):
    """Median and p99 round trip in microseconds of `count` `size`-byte messages on one
    connection (echoed back)."""
    payload = os.urandom(size)
    rtts = []
    with socket.create_connection((LOOPBACK, entry), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(20):  # warm-up
            s.sendall(payload)
            _recv_exactly(s, size)
        for _ in range(count):
            t0 = time.perf_counter()
            s.sendall(payload)
            _recv_exactly(s, size)
            rtts.append((time.perf_counter() - t0) * 1e6)
    rtts.sort()
    return percentile(rtts, 0.5), percentile(rtts, 0.99)


def connsetup(entry, count):
    """Median microseconds from connect() to the first echoed byte on a new connection."""
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        with socket.create_connection((LOOPBACK, entry), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"x")
            _recv_exactly(s, 1)
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return percentile(times, 0.5)


def concurrency(entry, conns, rounds=10, size=1024, timeout=60.0):
    """`conns` connections opened at once, each doing `rounds` echo round trips of `size`
    bytes. Returns (wall seconds, failed connections)."""

    async def one(payload):
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, entry)
        except OSError:
            return False
        try:
            for _ in range(rounds):
                writer.write(payload)
                await writer.drain()
                if await reader.readexactly(size) != payload:
                    return False
            return True
        except (OSError, asyncio.IncompleteReadError):
            return False
        finally:
            writer.close()

    async def everyone():
        payload = os.urandom(size)
        tasks = [asyncio.create_task(one(payload)) for _ in range(conns)]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        return sum(1 for t in done if not t.result()) + len(pending)

    t0 = time.perf_counter()
    failures = asyncio.run(everyone())
    return time.perf_counter() - t0, failures


def pending_backoff(control, timeout=5.0):
    """Seconds pairtund still waits before its next connection attempt (0 when it is not
    backing off), asked over its control socket (`{"op":"status"}`); None when unanswered."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(control)
            f = s.makefile("rwb")
            f.readline()  # the daemon's greeting
            f.write(b'{"op":"status"}\n')
            f.flush()
            tunnels = json.loads(f.readline())["tunnels"]
    except (OSError, ValueError, KeyError):
        return None
    return max((t.get("retry_in_ms") or 0) / 1000 for t in tunnels) if tunnels else None


def probe_until_ok(entry, timeout, interval=0.05):
    """Seconds until a fresh connection through `entry` echoes, probing every `interval`;
    None when it never did within `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if echo_once(entry, timeout=0.5):
            return time.monotonic() - t0
        time.sleep(interval)
    return None
