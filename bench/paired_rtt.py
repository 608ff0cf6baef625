#!/usr/bin/env python3
"""Round trips of ssh and pairtund measured side by side, in alternating rounds.

    python3 bench/paired_rtt.py [--rounds 20] [--size 1] [--messages 500] [--binary target/release/pairtund]

`run.py` measures each tool in turn with a new tunnel per run, so a round-trip median carries
whatever the machine was doing during that tool's half of the run; on a small VM round trips
move 3-4x between back-to-back runs. Here both tools hold a `-L` and a `-R` forward to the
same echo server through the same private sshd at once, and each round measures `--messages`
echoes through every forward, the tools' order alternating round by round. Printed per
direction: both medians of the per-round medians, their ratio, the median of the per-round
ratios, and in how many rounds pairtund was faster. Loopback only; aes128-gcm for both.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pairbench import measure  # noqa: E402
from pairbench.procs import free_port, start_server  # noqa: E402
from pairbench.sshd import Sshd  # noqa: E402
from pairbench.tools import OpenSsh, Pairtund, Tunnel, in_turn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CIPHER = "aes128-gcm@openssh.com"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--size", type=int, default=1, help="message size in bytes")
    ap.add_argument("--messages", type=int, default=500, help="echoes per forward per round")
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "target", "release", "pairtund"))
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary}: no pairtund there (cargo build --release)")
    workdir = tempfile.mkdtemp(prefix="paired-rtt-")
    sshd = Sshd(workdir)
    sshd.start()
    echo, echo_port = start_server([sys.executable, os.path.join(HERE, "echo.py")], os.path.join(workdir, "echo.log"))
    running, entries = [], {}
    try:
        for name in ("ssh", "pairtund"):
            tool = OpenSsh(sshd, workdir) if name == "ssh" else Pairtund(sshd, workdir, os.path.abspath(args.binary))
            local, remote = free_port(), free_port()
            tunnel = Tunnel([("L", local, echo_port), ("R", remote, echo_port)], cipher=CIPHER,
                            ssh_port=sshd.port, echo_entry=local)
            running.append(tool.start(tunnel).wait_ready(tunnel))
            entries[name] = {"L": local, "R": remote}
        medians = {(name, way): [] for name in entries for way in "LR"}
        for i in range(args.rounds):
            for name in in_turn(("ssh", "pairtund"), i):
                for way in "LR":
                    median, _ = measure.pingpong(entries[name][way], args.size, args.messages)
                    medians[(name, way)].append(median)
        for way in "LR":
            ssh, ours = medians[("ssh", way)], medians[("pairtund", way)]
            ratios = [p / s for s, p in zip(ssh, ours)]
            print(f"-{way} {args.size} B: ssh {statistics.median(ssh):.0f} us, pairtund {statistics.median(ours):.0f} us, "
                  f"ratio of medians {statistics.median(ours) / statistics.median(ssh):.2f}x; per round: median "
                  f"{statistics.median(ratios):.2f}x, pairtund faster in {sum(r < 1 for r in ratios)}/{len(ratios)}")
    finally:
        for r in running:
            r.stop()
        echo.stop()
        sshd.stop()
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
