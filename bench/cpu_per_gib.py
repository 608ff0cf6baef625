#!/usr/bin/env python3
"""CPU cost per GiB moved through one forward: the tunnel client's and the relay sshd's.

    python3 bench/cpu_per_gib.py --case L-download old=/tmp/pairtund-old new=target/release/pairtund ssh

Throughput through loopback spreads by up to 1.5x between runs of the same build; CPU seconds
per GiB of a fixed-size transfer spread far less, so this is how two builds are compared (the
tuning log in BENCHMARKS.md). Each round runs every tool once, in turn, on the same private
sshd: `iperf3 -n` moves `--gib` GiB through a fresh tunnel and the CPU time (user + system, from
/proc) of the client's processes and of sshd's session processes is divided by the bytes moved.
Also printed: context switches of the client per MiB (how often it slept). The tools' order
rotates from round to round. Loopback only.

Cases: `L-download` (iperf3 server -> sshd -> client: the client decrypts), `L-upload`,
`R-upload` (sshd listens; iperf3 client -> sshd -> client -> iperf3 server: the client
decrypts), `R-download`. Tools: `ssh` (OpenSSH) or `NAME=PATH` of a pairtund binary.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pairbench import measure  # noqa: E402
from pairbench.procs import LOOPBACK, Proc, cpu_seconds, ctx_switches, free_port, listening, until  # noqa: E402
from pairbench.sshd import Sshd  # noqa: E402
from pairbench.tools import OpenSsh, Pairtund, Tunnel, builds, in_turn  # noqa: E402

CASES = ("L-download", "L-upload", "R-download", "R-upload")
FIELDS = (("gbps", "Gbit/s"), ("client", "client CPU s/GiB"), ("relay", "sshd CPU s/GiB"),
          ("sleeps", "client ctx switches/MiB"))


def transfer(sshd, workdir, tool, case, gib, cipher, window, iperf_port):
    entry = free_port()
    tunnel = Tunnel([(case[0], entry, iperf_port)], cipher=cipher, ssh_port=sshd.port, window_size=window)
    running = tool.start(tunnel).wait_ready(tunnel)
    try:
        client, relay = running.pids(), sshd.session_pids()
        c0, r0, s0 = cpu_seconds(client), cpu_seconds(relay), ctx_switches(client)
        run = measure.iperf3_run(entry, None, case.endswith("download"), mib=int(gib * 1024))
        if not run or not run["bytes"]:
            raise RuntimeError(f"iperf3 through {tool.name} moved nothing")
        moved = run["bytes"] / (1 << 30)
        return {"gbps": run["gbps"],
                "client": (cpu_seconds(client) - c0) / moved,
                "relay": (cpu_seconds(relay) - r0) / moved,
                "sleeps": (ctx_switches(client) - s0) / (moved * 1024)}
    finally:
        running.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tools", nargs="+", help="`ssh` or NAME=PATH to a pairtund binary")
    ap.add_argument("--case", choices=CASES, default="L-download")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--gib", type=float, default=4.0, help="GiB per transfer")
    ap.add_argument("--cipher", default="aes128-gcm@openssh.com")
    ap.add_argument("--window", type=int, default=0, help="pairtund window_size (0: its default)")
    args = ap.parse_args()

    specs = builds(args.tools, ssh_allowed=True)
    workdir = tempfile.mkdtemp(prefix="cpu-per-gib-")
    sshd = Sshd(workdir)
    tools = [(name, OpenSsh(sshd, workdir) if path is None else Pairtund(sshd, workdir, path, name))
             for name, path in specs]
    results = {name: [] for name, _ in tools}
    iperf = None
    try:
        sshd.start()
        iperf_port = free_port()
        iperf = Proc(["iperf3", "-s", "-B", LOOPBACK, "-p", str(iperf_port)], os.path.join(workdir, "iperf3.log"))
        if not until(lambda: listening(iperf_port), 10):
            sys.exit("iperf3 -s did not start")
        for r in range(args.rounds):
            for name, tool in in_turn(tools, r):
                time.sleep(1)  # let the previous transfer's tail drain out of the kernel
                row = transfer(sshd, workdir, tool, args.case, args.gib, args.cipher, args.window, iperf_port)
                results[name].append(row)
                print(f"round {r + 1} {name:>10}: " + "  ".join(f"{row[k]:.3f} {unit}" for k, unit in FIELDS),
                      flush=True)
    finally:
        if iperf:
            iperf.stop()
        sshd.stop()
    shutil.rmtree(workdir)  # kept (with every log) when a transfer failed
    print(f"medians of {args.rounds} ({args.case}, {args.cipher}, {args.gib} GiB each):")
    for name, rows in results.items():
        print(f"  {name:>10}: " + "  ".join(f"{statistics.median(x[k] for x in rows):.3f} {unit}"
                                            for k, unit in FIELDS))


if __name__ == "__main__":
    main()
