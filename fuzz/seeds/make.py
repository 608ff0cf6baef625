#!/usr/bin/env python3
"""Writes the hand-written seeds into fuzz/corpus/<target>/seed-*; run from anywhere.

The seeds are the forms SPEC.md, the README and the golden tests use; `cargo fuzz cmin`
output sits next to them. Re-running overwrites only seed-* files."""

import pathlib
import re

FUZZ = pathlib.Path(__file__).resolve().parent.parent
ROOT = FUZZ.parent


def write(target, seeds):
    out = FUZZ / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        data = seed if isinstance(seed, bytes) else seed.encode()
        (out / f"seed-{i:03}").write_bytes(data)


FORWARDS = [
    # SPEC §2 / the parser's tests: every -L and -R form.
    "9999:localhost:1235", "1235:localhost:22", "127.0.0.1:9999:localhost:22",
    "localhost:9999:h:22", "*:9999:h:22", ":9999:h:22", "192.168.1.5:80:h:8080",
    "[::1]:9999:[::1]:22", "[::]:9999:h:22", "9999:[fe80::1]:22", "65535:h:65535",
    "9999:/run/remote.sock", "[::1]:9999:/r.sock", "/tmp/local.sock:h:22",
    "/tmp/l.sock:/tmp/r.sock", "0:localhost:22", "relay.lan:1235:h:22",
    "[::1]:1235:[::1]:22", "*:1235:h:22", ":1235:h:22", "0.0.0.0:1235:h:22",
    "1235:/run/sshd.sock", "/tmp/relay.sock:h:22", "/tmp/relay.sock:/tmp/here.sock",
    # Rejections.
    "", "99999:localhost:22", "0:h:22", "9999:h:0", "abc:h:22", "9999:h:+22", "9999",
    "*:9999", "[::1:9999:h:22", "a:b:c:d:e", "9999:~/sock", "[/x]:1:[/y]:2", "[*]:1:h:2",
]

REQUESTS = [
    '{"op":"ping"}', '{"op":"version"}', '{"op":"status"}', '{"op":"status","name":"jane"}',
    '{"op":"watch"}', '{"op":"watch","name":"jane"}', '{"op":"up","name":"jane","wait":true}',
    '{"op":"down","name":"jane"}', '{"op":"restart","name":"jane"}',
    '{"op":"add","tunnel":{"name":"jane","host":"saturn","port":2222,'
    '"user":"saturn_user","identity_files":["~/.ssh/id_ed25519"],'
    '"local":["9999:localhost:1235"],"remote":[],"dynamic":["1080"],'
    '"jump":"bastion","autostart":false},"temporary":true}',
    '{"op":"drop","name":"jane","temporary":false}', '{"op":"reload"}',
    '{"op":"logs","follow":false}', '{"op":"logs","name":"jane","follow":true}',
]

REPLIES = [
    '{"hello":{"protocol":1,"daemon":"0.1.0"}}', '{"reply":"pong","daemon":"0.1.0","protocol":1}',
    '{"reply":"ok"}', '{"reply":"ok","message":"done"}',
    '{"reply":"error","kind":"unknown-tunnel","message":"no tunnel named `x`"}',
    '{"reply":"reloaded","added":["a"],"removed":[],"changed":[],"unchanged":["b"]}',
    '{"reply":"log","event":{"time":"2026-01-01T00:00:00Z","tunnel":"a","level":"info",'
    '"message":"up"}}',
]


def literals(tests):
    """The raw strings and multi-line plain string literals of the test files `tests`."""
    found = []
    for test in tests:
        text = test.read_text()
        found += re.findall(r'r#"(.*?)"#', text, re.S)
        # Plain literals holding a whole file: they have a `\n` escape.
        for lit in re.findall(r'"((?:[^"\\\n]|\\.)*\\n(?:[^"\\\n]|\\.)*)"', text):
            found.append(re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), lit))
    return found


def configs():
    """Every ```toml block of the README and SPEC, plus the config tests' texts."""
    found = literals(sorted((ROOT / "src/config/tests").glob("*.rs")))
    for doc in (ROOT / "README.md", pathlib.Path("/work/shared/SPEC.md")):
        if doc.exists():
            found += re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S)
    return sorted(set(found))


def ssh_configs():
    """The ssh config tests' texts, each queried for its first Host pattern and for `other`."""
    seeds = set()
    for text in literals([ROOT / "src/config/ssh_config/tests.rs"]):
        first = re.search(r"(?im)^\s*host\s+(\S+)", text)
        for alias in {first[1] if first else "saturn", "other"}:
            seeds.add(alias + "\n" + text)
    seeds.add(
        "saturn\nUser all\nHost saturn sat*\n  HostName %h.example.org\n  Port 2222\n"
        "  LocalForward 9999 localhost:1235\n  LocalForward [::1]:9998 /run/x.sock\n"
        "  RemoteForward 1235:localhost:22\n  RemoteForward 1236\n  DynamicForward 1080\n"
        "  ProxyJump a,b:2222\n  IdentitiesOnly=yes\n  ProxyCommand nc %h %p\n"
        "Match host saturn\n  LocalForward 1 h:2\nHost !saturn *\n  User other\n"
    )
    return sorted(seeds)


# control_frame: the first byte picks the read buffer (space: 1 byte, '/': 16) and frame cap.
write("forward_spec", FORWARDS)
write("config", configs())
write("ssh_config", ssh_configs())
write("control_frame",
      [" " + r + "\n" for r in REQUESTS + REPLIES]
      + ["/" + "\n".join(REQUESTS) + "\n", "\xff" + "x" * 20 + "\nrest", " \n\n  \n[\"ping\"]"])
SESSION = [  # control_request: lines against the sandbox's tunnel `seed`
    '{"op":"status","name":"seed"}', '{"op":"up","name":"seed","wait":true}',
    '{"op":"watch","name":"seed"}', '{"op":"restart","name":"seed"}',
    '{"op":"down","name":"seed"}', '{"op":"drop","name":"seed","temporary":true}',
    '{"op":"drop","name":"seed"}',
    '{"op":"add","tunnel":{"name":"two","host":"h","local":["9998:localhost:22"]}}',
    '{"op":"add","tunnel":{"name":"tmp","host":"h","remote":["0:localhost:22"]},'
    '"temporary":true}',
]
write("control_request", REQUESTS + SESSION + [
    "\n".join(SESSION) + "\n",
    "\n".join(SESSION[7:] + ['{"op":"reload"}', '{"op":"drop","name":"two"}',
                             '{"op":"reload"}', '{"op":"status"}']) + "\n",
])
