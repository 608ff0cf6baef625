"""Processes (started and stopped by PID, never by name), free loopback ports, /proc readings
and statistics."""
import os
import signal
import socket
import statistics
import subprocess
import time

LOOPBACK = "127.0.0.1"


def free_port():
    """A loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def free_ports(n):
    """`n` distinct free loopback ports (held open together while picking)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def children_of(pid):
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def tree(pid):
    """`pid` and all its descendants."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack += children_of(p)
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def kill_pids(pids, grace=3.0):
    """SIGTERM the given PIDs, then SIGKILL whatever is still alive after `grace` seconds."""
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    end = time.monotonic() + grace
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.02)
    for p in pids:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


class Proc:
    """A started command; `stop()` ends it and its descendants (collected first, by PID)."""

    def __init__(self, argv, log, env=None, stdin=subprocess.DEVNULL, stdout=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.log = log
        self.logf = open(log, "ab")
        self.p = subprocess.Popen(argv, stdout=stdout or self.logf, stderr=self.logf,
                                  stdin=stdin, env=full_env)
        self.pid = self.p.pid

    def stop(self):
        kill_pids(tree(self.pid))
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_server(argv, log):
    """Starts a server that binds port 0 and prints it (bench/echo.py, bench/proxy.py); returns
    (its Proc, the port)."""
    proc = Proc(argv, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return proc, int(proc.p.stdout.readline())


def listening(port):
    """True when something listens on TCP `port` (any address), read from /proc."""
    suffix = ":%04X" % port
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(suffix) and parts[3] == "0A":
                        return True
        except OSError:
            pass
    return False


def until(check, timeout, interval=0.02):
    """Polls `check()` until it is truthy or `timeout` seconds pass; returns the last value."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


def echo_once(port, timeout=1.0, payload=None):
    """One connection, one token echoed back: True/False, never raises."""
    payload = payload or os.urandom(8)
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                data = s.recv(len(payload) - len(got))
                if not data:
                    return False
                got += data
            return got == payload
    except OSError:
        return False


def mem_kib(pids):
    """Summed (VmRSS, Pss, Anonymous) in KiB of `pids`. Anonymous is the memory only swap could
    free (heap, stacks, written data pages); RSS and PSS also count clean code pages, which the
    kernel drops and re-reads from the binary as it needs."""
    totals = {"VmRSS:": 0, "Pss:": 0, "Anonymous:": 0}
    for pid in pids:
        for path in (f"/proc/{pid}/status", f"/proc/{pid}/smaps_rollup"):
            try:
                with open(path) as f:
                    for line in f:
                        key = line.split(":", 1)[0] + ":"
                        if key in totals and (key == "VmRSS:") == path.endswith("status"):
                            totals[key] += int(line.split()[1])
            except OSError:
                pass
    return totals["VmRSS:"], totals["Pss:"], totals["Anonymous:"]


def ctx_switches(pids):
    """Context switches (voluntary + involuntary) of every thread of `pids`, summed."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                            total += int(line.split()[1])
            except OSError:
                pass
    return total


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[-1].split()
            total += int(parts[11]) + int(parts[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def summary(values):
    """median, min, max, n of the non-None values (None when there are none)."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}


def percentile(sorted_values, q):
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]
