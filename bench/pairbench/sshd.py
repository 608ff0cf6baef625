"""A private OpenSSH sshd on a free loopback port, with its own host key, client key and
known_hosts. Stopping it also ends its per-session processes (they setsid() and would survive
the listener), which is what a relay restart looks like to a client."""
import os
import subprocess

from .procs import LOOPBACK, Proc, free_port, kill_pids, listening, tree, until

SSHD = "/usr/sbin/sshd"  # sshd must be started by absolute path (re-exec)


class Sshd:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "sshd")
        os.makedirs(self.dir, exist_ok=True)
        self.host_key = os.path.join(self.dir, "host_ed25519")
        self.client_key = os.path.join(self.dir, "client_ed25519")
        for key in (self.host_key, self.client_key):
            if not os.path.exists(key):
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(self.client_key + ".pub") as src, open(os.path.join(self.dir, "authorized_keys"), "w") as dst:
            dst.write(src.read())
        with open(self.host_key + ".pub") as f:
            self.host_pub = " ".join(f.read().split()[:2])
        self.port = free_port()
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.trust(self.port)
        self.proc = None

    def trust(self, port):
        """Adds a known_hosts line for this host key reached on `port` (sshd's, or a proxy's)."""
        with open(self.known_hosts, "a") as f:
            f.write(f"[{LOOPBACK}]:{port} {self.host_pub}\n")

    def write_config(self):
        path = os.path.join(self.dir, "sshd_config")
        with open(path, "w") as f:
            f.write(f"""ListenAddress {LOOPBACK}:{self.port}
HostKey {self.host_key}
PidFile none
AuthorizedKeysFile {self.dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
MaxStartups 2000
MaxSessions 100
ClientAliveInterval 0
LogLevel ERROR
""")
        return path

    def start(self):
        os.makedirs("/run/sshd", exist_ok=True)
        config = self.write_config()
        self.proc = Proc([SSHD, "-D", "-e", "-f", config], os.path.join(self.dir, "sshd.log"))
        if not until(lambda: listening(self.port), 10):
            raise RuntimeError(f"sshd did not listen on {self.port}; see {self.proc.log}")

    def stop(self):
        """Ends the listener and every session it started."""
        if self.proc:
            kill_pids(tree(self.proc.pid))
            self.proc.stop()
            self.proc = None

    def session_pids(self):
        """The processes serving the current sessions (the listener's descendants)."""
        return [p for p in tree(self.proc.pid) if p != self.proc.pid] if self.proc else []

    def ssh_opts(self, port=None):
        """OpenSSH client options that log in with the client key and trust only this sshd."""
        return ["-F", "/dev/null", "-i", self.client_key, "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", str(port or self.port),
                "-l", "root"]
