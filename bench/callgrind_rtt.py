#!/usr/bin/env python3
"""Instructions pairtund executes per echoed round trip, counted by callgrind.

    python3 bench/callgrind_rtt.py old=/tmp/pairtund-old new=target/release/pairtund --kind R

Round-trip times through loopback spread by ±20 % between runs; an instruction count does not,
so this tells whether a change made the per-message path cheaper or dearer (BENCHMARKS.md).
Each pairtund runs under `valgrind --tool=callgrind` holding one forward (`--kind L` or `R`) to
an echo server on a private sshd; after a warm-up the counters are zeroed
(`callgrind_control -z`), `--count` messages of `--size` bytes are echoed one at a time, the
counters are dumped, and the total is divided by the round trips. Needs valgrind. Loopback only.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pairbench import measure  # noqa: E402
from pairbench.procs import free_port, start_server, until  # noqa: E402
from pairbench.sshd import Sshd  # noqa: E402
from pairbench.tools import Pairtund, Tunnel, builds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WARM_UP = 20  # measure.pingpong's own warm-up round trips, counted too


def dumped_total(prefix):
    """The instruction total of the newest callgrind dump starting with `prefix`."""
    files = sorted(glob.glob(prefix + "*"), key=os.path.getmtime)
    for path in reversed(files):
        with open(path) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    return None


def instructions_per_round_trip(binary, kind, size, count, workdir, sshd, echo_port):
    out = os.path.join(workdir, f"callgrind.{os.getpid()}.{os.path.basename(binary)}.out")
    wrapper = os.path.join(workdir, "under-callgrind.sh")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out} "{binary}" "$@"\n')
    os.chmod(wrapper, 0o755)
    entry = free_port()
    tunnel = Tunnel([(kind, entry, echo_port)], ssh_port=sshd.port, echo_entry=entry)
    running = Pairtund(sshd, workdir, wrapper).start(tunnel).wait_ready(tunnel, timeout=120)
    try:
        pid = str(running.procs[0].pid)  # valgrind runs pairtund in this process (exec)
        measure.pingpong(entry, size, 50)
        subprocess.run(["callgrind_control", "-z", pid], capture_output=True, check=True)
        measure.pingpong(entry, size, count)
        subprocess.run(["callgrind_control", "-d", pid], capture_output=True, check=True)
        dumped = until(lambda: dumped_total(out + ".") is not None, 30)
        return dumped_total(out + ".") / (count + WARM_UP) if dumped else None
    finally:
        running.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", help="NAME=PATH to a pairtund binary")
    ap.add_argument("--kind", choices=("L", "R"), default="R")
    ap.add_argument("--size", type=int, default=1, help="bytes per message")
    ap.add_argument("--count", type=int, default=500, help="round trips counted")
    args = ap.parse_args()
    measured = builds(args.builds)

    workdir = tempfile.mkdtemp(prefix="callgrind-rtt-")
    sshd = Sshd(workdir)
    echo = None
    try:
        sshd.start()
        echo, echo_port = start_server([sys.executable, os.path.join(HERE, "echo.py")],
                                       os.path.join(workdir, "echo.log"))
        for name, path in measured:
            ir = instructions_per_round_trip(path, args.kind, args.size, args.count, workdir, sshd, echo_port)
            shown = f"{ir:,.0f}" if ir is not None else "no dump"
            print(f"{name:>10}: {shown} instructions per {args.size}-byte round trip through -{args.kind}",
                  flush=True)
    finally:
        if echo:
            echo.stop()
        sshd.stop()
    shutil.rmtree(workdir)  # kept (with every log) when a measurement failed


if __name__ == "__main__":
    main()
