"""The tunnel programs under test, each started the same way: `start(tunnel)` returns a running
process holding `tunnel.forwards` (forwards are (kind, entry_port, target_port), kind "L" or
"R"; every address is 127.0.0.1)."""
import os
import sys
from dataclasses import dataclass

from .procs import Proc, echo_once, listening, tree, until


def builds(specs, ssh_allowed=False):
    """Command-line `NAME=PATH` pairtund builds (and, when allowed, `ssh`) as (name, absolute
    path or None for ssh); exits naming a spec that is neither."""
    out = []
    for spec in specs:
        name, _, path = spec.partition("=")
        if ssh_allowed and spec == "ssh":
            out.append((name, None))
        elif path and os.access(path, os.X_OK):
            out.append((name, os.path.abspath(path)))
        else:
            sys.exit(f"{spec}: expected {'`ssh` or ' if ssh_allowed else ''}NAME=PATH to an executable pairtund")
    return out


def in_turn(items, run):
    """`items` rotated by `run`: each run starts with the next one. Whichever tool goes first in
    a round does measurably better (BENCHMARKS.md, "Order matters"), so no side may always go
    first."""
    k = run % len(items)
    return tuple(items[k:]) + tuple(items[:k])


@dataclass
class Tunnel:
    forwards: list
    cipher: str = "chacha20-poly1305@openssh.com"
    ssh_port: int = 0  # sshd's port, or a proxy's in front of it
    keepalive: tuple = (15, 3)  # (interval s, count) = ServerAliveInterval / CountMax
    window_size: int = 0  # pairtund only; 0 = its default
    echo_entry: int = 0  # an entry that reaches the echo server, for the readiness probe


class Running:
    def __init__(self, name, procs, control=None):
        self.name = name
        self.procs = procs
        self.control = control  # pairtund's control socket

    def pids(self):
        return [p for proc in self.procs for p in tree(proc.pid)]

    def stop(self):
        for proc in self.procs:
            proc.stop()

    def wait_ready(self, tunnel, timeout=20):
        """Every entry listens and the echo entry echoes (for -R, sshd listens on the entries)."""
        ok = until(lambda: all(listening(e) for _, e, _ in tunnel.forwards), timeout)
        if ok and tunnel.echo_entry:
            ok = until(lambda: echo_once(tunnel.echo_entry, timeout=1), timeout, interval=0.05)
        if not ok:
            self.stop()
            raise RuntimeError(f"{self.name} did not bring its forwards up; see {self.procs[0].log}")
        return self


class OpenSsh:
    """`ssh -N -L/-R ...`; with `per_forward`, one ssh process per forward."""

    def __init__(self, sshd, workdir, per_forward=False):
        self.sshd, self.workdir, self.per_forward = sshd, workdir, per_forward
        self.name = "50 x ssh" if per_forward else "ssh"

    def argv(self, tunnel, forwards):
        interval, count = tunnel.keepalive
        argv = ["ssh", "-N", *self.sshd.ssh_opts(tunnel.ssh_port), "-o", "ExitOnForwardFailure=yes",
                "-o", f"Ciphers={tunnel.cipher}", "-o", f"ServerAliveInterval={interval}",
                "-o", f"ServerAliveCountMax={count}", "-o", "ConnectTimeout=20"]
        for kind, entry, target in forwards:
            argv += [f"-{kind}", f"127.0.0.1:{entry}:127.0.0.1:{target}"]
        return argv + ["127.0.0.1"]

    def start(self, tunnel):
        log = os.path.join(self.workdir, "ssh.log")
        groups = [[f] for f in tunnel.forwards] if self.per_forward else [tunnel.forwards]
        return Running(self.name, [Proc(self.argv(tunnel, g), log) for g in groups])


class AutoSsh(OpenSsh):
    """autossh -M 0 around the same ssh command: restarts ssh at once when it exits
    (AUTOSSH_GATETIME=0) and backs off with AUTOSSH_POLL=5, as in ../shared/bench/BASELINE.md."""

    def __init__(self, sshd, workdir):
        super().__init__(sshd, workdir)
        self.name = "autossh"

    def start(self, tunnel):
        argv = ["autossh", "-M", "0", *self.argv(tunnel, tunnel.forwards)[1:]]
        env = {"AUTOSSH_GATETIME": "0", "AUTOSSH_POLL": "5"}
        return Running(self.name, [Proc(argv, os.path.join(self.workdir, "autossh.log"), env=env)])


class Pairtund:
    """The release pairtund with a generated config holding one tunnel."""

    def __init__(self, sshd, workdir, binary, name="pairtund"):
        self.sshd, self.workdir, self.binary, self.name = sshd, workdir, binary, name
        self.count = 0

    def config(self, tunnel):
        interval, count = tunnel.keepalive
        q = lambda s: '"' + s + '"'
        local = [q(f"127.0.0.1:{e}:127.0.0.1:{t}") for k, e, t in tunnel.forwards if k == "L"]
        remote = [q(f"127.0.0.1:{e}:127.0.0.1:{t}") for k, e, t in tunnel.forwards if k == "R"]
        lines = [
            "[tunnels.bench]",
            'host = "127.0.0.1"',
            f"port = {tunnel.ssh_port or self.sshd.port}",
            'user = "root"',
            f"identity_files = [{q(self.sshd.client_key)}]",
            f"known_hosts = {q(self.sshd.known_hosts)}",
            'agent_socket = ""',
            f'keepalive_interval = "{interval}s"',
            f"keepalive_count = {count}",
            f"ciphers = [{q(tunnel.cipher)}]",
            f"local = [{', '.join(local)}]",
            f"remote = [{', '.join(remote)}]",
        ]
        if tunnel.window_size:
            lines.append(f"window_size = {tunnel.window_size}")
        return "\n".join(lines) + "\n"

    def start(self, tunnel):
        self.count += 1
        d = os.path.join(self.workdir, f"pairtund-{self.count}")
        os.makedirs(d, mode=0o700, exist_ok=True)  # pairtund refuses a socket dir others can reach
        config = os.path.join(d, "config.toml")
        with open(config, "w") as f:
            f.write(self.config(tunnel))
        control = os.path.join(d, "pairtund.sock")
        argv = [self.binary, "--config", config, "--socket", control]
        env = {"PAIRTUN_LOG": "warn", "NOTIFY_SOCKET": ""}
        return Running(self.name, [Proc(argv, os.path.join(d, "pairtund.log"), env=env)], control)
