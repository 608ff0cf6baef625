//! Validation errors: each rejection with its line, column and message.

use super::*;

/// (file text, line, column, message substring)
pub(super) const CASES: &[(&str, usize, usize, &str)] = &[
    // durations
    (
        "[defaults]\nkeepalive_interval = \"0s\"\n",
        2,
        22,
        "keepalive_interval must be greater than 0s",
    ),
    (
        "[defaults]\nkeepalive_interval = \"15 seconds\"\n",
        2,
        22,
        "invalid duration \"15 seconds\" for keepalive_interval: expected a number and a unit like \"250ms\", \"15s\", \"2m\", \"1h\"",
    ),
    (
        "[defaults]\nconnect_timeout = \"0ms\"\n",
        2,
        19,
        "connect_timeout must be greater than 0s",
    ),
    (
        "[defaults]\nshutdown_grace = \"5\"\n",
        2,
        18,
        "invalid duration \"5\" for shutdown_grace",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nlocal = [\"1:x:2\"]\nconnect_timeout = \"1d\"\n",
        4,
        19,
        "invalid duration \"1d\" for connect_timeout",
    ),
    (
        "[defaults]\nconnection_hold = \"0s\"\n",
        2,
        19,
        "connection_hold must be greater than 0s",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nlocal = [\"1:x:2\"]\nconnection_hold = \"forever\"\n",
        4,
        19,
        "invalid duration \"forever\" for connection_hold",
    ),
    // keepalive_count
    (
        "[defaults]\nkeepalive_count = 0\n",
        2,
        19,
        "keepalive_count must be at least 1",
    ),
    (
        "[defaults]\nkeepalive_count = 101\n",
        2,
        19,
        "keepalive_count 101 is out of range (1-100)",
    ),
    (
        "[tunnels.t]\nkeepalive_count = -1\nhost = \"h\"\n",
        2,
        19,
        "keepalive_count -1 is out of range",
    ),
    // backoff
    (
        "[defaults]\nbackoff = { initial = \"0s\" }\n",
        2,
        23,
        "backoff initial must be greater than 0s",
    ),
    (
        "[defaults]\nbackoff = { initial = \"2m\" }\n",
        2,
        23,
        "backoff max (60s) must be at least backoff initial (120s)",
    ),
    (
        "[defaults]\nbackoff = { initial = \"5s\", max = \"2s\" }\n",
        2,
        35,
        "backoff max (2s) must be at least",
    ),
    (
        "[defaults]\nbackoff = { multiplier = 0.5 }\n",
        2,
        26,
        "backoff multiplier 0.5 is out of range (1.0-100)",
    ),
    (
        "[defaults]\nbackoff = { multiplier = 101 }\n",
        2,
        26,
        "backoff multiplier 101 is out of range",
    ),
    (
        "[defaults]\nbackoff = { multiplier = nan }\n",
        2,
        26,
        "backoff multiplier NaN is out of range",
    ),
    (
        "[defaults]\nbackoff = { jitter = 1.0 }\n",
        2,
        22,
        "backoff jitter 1 is out of range",
    ),
    (
        "[defaults]\nbackoff = { jitter = -0.1 }\n",
        2,
        22,
        "backoff jitter -0.1 is out of range",
    ),
    (
        "[defaults]\nbackoff = { initial = \"10s\" }\n[tunnels.t]\nhost = \"h\"\nlocal = [\"1:x:2\"]\nbackoff = { max = \"5s\" }\n",
        6,
        19,
        "backoff max (5s) must be at least backoff initial (10s)",
    ),
    // ports, users, hosts
    (
        "[defaults]\nport = 0\n",
        2,
        8,
        "port 0 is out of range (1-65535)",
    ),
    (
        "[tunnels.t]\nport = 65536\nhost = \"h\"\n",
        2,
        8,
        "port 65536 is out of range (1-65535)",
    ),
    ("[defaults]\nuser = \"\"\n", 2, 8, "user must not be empty"),
    (
        "[tunnels.t]\nlocal = [\"1:x:2\"]\n",
        1,
        1,
        "tunnel \"t\" has no `host`",
    ),
    (
        "[tunnels.t]\nhost = \"\"\nlocal = [\"1:x:2\"]\n",
        2,
        8,
        "host \"\" must be a non-empty host name",
    ),
    (
        "[tunnels.t]\nhost = \"a b\"\nlocal = [\"1:x:2\"]\n",
        2,
        8,
        "without spaces",
    ),
    // forwards
    (
        "\n\n[tunnels.t]\nhost = \"h\"\n",
        3,
        1,
        "tunnel \"t\" has no forwards",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nlocal = []\nremote = []\n",
        1,
        1,
        "has no forwards",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nlocal = [\"1:x:2\", \"99999:localhost:22\"]\n",
        3,
        19,
        "invalid local forward \"99999:localhost:22\": listen port 99999 is out of range (1-65535)",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nremote = [\n  \"1:x:0\",\n]\n",
        4,
        3,
        "invalid remote forward \"1:x:0\": target port 0",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nlocal = [\"1:x:2\"]\ndynamic = [\"1080:x:22\"]\n",
        4,
        12,
        "invalid dynamic forward \"1080:x:22\": expected [bind:]port",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\ndynamic = [\"0\"]\n",
        3,
        12,
        "invalid dynamic forward \"0\": listen port 0 is out of range",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\ndynamic = [\"1080\"]\njump = \"a,b:x\"\n",
        4,
        8,
        "jump: port \"x\" in \"b:x\" is not 1-65535",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\ndynamic = [\"1080\"]\njump = \"@b\"\n",
        4,
        8,
        "jump: empty user in \"@b\"",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\ndynamic = [\"1080\"]\n[tunnels.u]\nhost = \"h\"\nlocal = [\"1080:x:1\"]\n",
        6,
        10,
        "local port 1080 is already used by tunnel \"t\" (dynamic[0])",
    ),
    // tunnel names
    (
        "[tunnels.\"bad name\"]\nhost = \"h\"\n",
        1,
        10,
        "tunnel name \"bad name\" contains ' '",
    ),
    (
        "[tunnels]\n-x = { host = \"h\" }\n",
        2,
        1,
        "must not start with '-' or '.'",
    ),
    // paths
    (
        "[defaults]\nknown_hosts = \"$NOPE/kh\"\n",
        2,
        15,
        "known_hosts \"$NOPE/kh\": environment variable `NOPE` is not set",
    ),
    (
        "[defaults]\nknown_hosts = \"\"\n",
        2,
        15,
        "known_hosts must not be empty",
    ),
    (
        "[defaults]\nidentity_files = [\"/ok\", \"${X\"]\n",
        2,
        26,
        "identity_files \"${X\": unclosed `${`",
    ),
    (
        "[defaults]\nidentity_files = [\"id_rsa\"]\n",
        2,
        19,
        "the path must be absolute",
    ),
    (
        "[defaults]\nagent_socket = \"$AGENT\"\n",
        2,
        16,
        "agent_socket \"$AGENT\": environment variable `AGENT` is not set",
    ),
    (
        "[defaults]\nknown_hosts = \"~alice/kh\"\n",
        2,
        15,
        "`~user` is not supported",
    ),
];

#[test]
fn rejections() {
    check_all(CASES);
}
