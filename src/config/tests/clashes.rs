//! Forwards that cannot be set up together: one local port or socket used twice anywhere in
//! the file, one remote listen requested twice in a tunnel; and the look-alikes that are fine.

use super::*;

/// (file text, line, column, message substring)
pub(super) const CASES: &[(&str, usize, usize, &str)] = &[
    // clashes between local forwards, across tunnels
    (
        "[tunnels.jane]\nhost = \"h\"\nlocal = [\"9999:x:1\"]\n[tunnels.bob]\nhost = \"h\"\nlocal = [\"9999:y:2\"]\n",
        6,
        10,
        "local port 9999 is already used by tunnel \"jane\" (local[0])",
    ),
    (
        "[tunnels.jane]\nhost = \"h\"\nlocal = [\"1:x:1\", \"9999:x:1\", \"localhost:9999:y:2\"]\n",
        3,
        31,
        "local port 9999 is already used by tunnel \"jane\" (local[1])",
    ),
    (
        "[tunnels.b]\nhost = \"h\"\nlocal = [\"[::1]:80:x:1\"]\n[tunnels.a]\nhost = \"h\"\nlocal = [\"*:80:x:1\"]\n",
        6,
        10,
        "local port 80 is already used by tunnel \"b\" (local[0])",
    ),
    (
        "[tunnels.a]\nhost = \"h\"\nlocal = [\"0.0.0.0:80:x:1\", \"[::1]:80:x:1\"]\n",
        3,
        28,
        "local port 80 is already used",
    ),
    (
        "[tunnels.a]\nhost = \"h\"\nlocal = [\"/tmp/s:x:1\"]\n[tunnels.b]\nhost = \"h\"\nlocal = [\"/tmp/s:/r\"]\n",
        6,
        10,
        "local socket /tmp/s is already used by tunnel \"a\" (local[0])",
    ),
    // clashes between remote forwards of one tunnel
    (
        "[tunnels.t]\nhost = \"h\"\nremote = [\"1235:x:22\", \"localhost:1235:y:22\"]\n",
        3,
        24,
        "remote port 1235 on \"localhost\" is already requested by remote[0]",
    ),
    // the same address under another name
    (
        "[tunnels.t]\nhost = \"h\"\nremote = [\"1235:x:22\", \"127.0.0.1:1235:y:22\"]\n",
        3,
        24,
        "remote port 1235 on \"127.0.0.1\" is already requested by remote[0]",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nremote = [\"[::]:1235:x:22\", \"*:1235:y:22\"]\n",
        3,
        29,
        "remote port 1235 on all interfaces (\"*\") is already requested by remote[0]",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nremote = [\"127.0.0.1:1235:x:22\", \"10.0.0.5:1235:y:22\"]\n",
        3,
        34,
        "remote port 1235 on \"10.0.0.5\" is already requested by remote[0]",
    ),
    (
        "[tunnels.t]\nhost = \"h\"\nremote = [\"/r/s:x:22\", \"/r/s:/l\"]\n",
        3,
        24,
        "remote socket /r/s is already requested by remote[0]",
    ),
];

#[test]
fn clashes() {
    check_all(CASES);
}

/// The forwards that look alike but can all be set up.
#[test]
fn non_clashing_forwards() {
    let cfg = ok(r#"[tunnels.a]
host = "h"
local = ["127.0.0.1:80:x:1", "127.0.0.2:80:x:1", "[::1]:80:x:1", "81:x:1", "/a:x:1"]
remote = ["0:x:1", "0:x:2", "1235:x:1", "1236:x:1", "/r1:x:1", "/r2:x:1"]
[tunnels.b]
host = "h"
remote = ["1235:x:1", "/r1:x:1"]
local = ["/b:x:1"]
"#);
    assert_eq!(tunnel(&cfg, "a").local.len(), 5);
    assert_eq!(tunnel(&cfg, "a").remote.len(), 6);
}

/// The first error in file order is the one reported.
#[test]
fn first_error_in_file_order() {
    let text = "[tunnels.zed]\nhost = \"h\"\nport = 0\n[tunnels.abe]\nhost = \"h\"\nport = 0\n";
    check_err(text, 3, 8, "port 0");
    let text = "[tunnels.zed]\nhost = \"h\"\nlocal = [\"1:x:1\"]\n[tunnels.abe]\nhost = \"h\"\nlocal = [\"1:x:1\"]\n";
    check_err(text, 6, 10, "already used by tunnel \"zed\"");
}
