//! Errors found before validation: TOML syntax, duplicate keys and tables, unknown keys and
//! wrong types, each reworded to name the key and located at the offending text.

use super::*;

/// (file text, line, column, message substring)
pub(super) const CASES: &[(&str, usize, usize, &str)] = &[
    // unknown keys, at every level
    (
        "hots = 1\n",
        1,
        1,
        "unknown key `hots` at the top level; expected `defaults` or `tunnels`",
    ),
    (
        "[default]\n",
        1,
        2,
        "unknown key `default` at the top level",
    ),
    (
        "[defaults]\nkeepalive = \"1s\"\n",
        2,
        1,
        "unknown key `keepalive` in `defaults`; expected one of `user`, `port`, `identity_files`, `keepalive_interval`",
    ),
    (
        "[defaults]\nhost = \"h\"\n",
        2,
        1,
        "unknown key `host` in `defaults`",
    ),
    (
        "[tunnels.jane]\nhost = \"h\"\nhots = \"x\"\n",
        3,
        1,
        "unknown key `hots` in `tunnels.jane`; expected one of `host`, `user`",
    ),
    (
        "[tunnels.jane]\nshutdown_grace = \"1s\"\n",
        2,
        1,
        "unknown key `shutdown_grace` in `tunnels.jane`",
    ),
    (
        // Per tunnel only, like `autostart`: a default would probe every `-L` target.
        "[defaults]\nprobe_peer = true\n",
        2,
        1,
        "unknown key `probe_peer` in `defaults`",
    ),
    (
        "[defaults]\nbackoff = { initial = \"1s\", maximum = \"9s\" }\n",
        2,
        29,
        "unknown key `maximum` in `defaults.backoff`; expected one of `initial`, `max`, `multiplier`, `jitter`",
    ),
    (
        "[tunnels.t.backoff]\nfactor = 2\n",
        2,
        1,
        "unknown key `factor` in `tunnels.t.backoff`",
    ),
    // wrong types
    (
        "[tunnels.t]\nport = \"22\"\n",
        2,
        8,
        "wrong type for `tunnels.t.port`: expected an integer, found string \"22\"",
    ),
    (
        "[tunnels.t]\nport = 2.5\n",
        2,
        8,
        "expected an integer, found floating point `2.5`",
    ),
    (
        "[tunnels.t]\nport = 99999999999999999999\n",
        2,
        8,
        "integer 99999999999999999999 for `tunnels.t.port` is too large",
    ),
    (
        "[tunnels.t]\nhost = 1\n",
        2,
        8,
        "wrong type for `tunnels.t.host`: expected a string, found integer `1`",
    ),
    (
        "[tunnels.t]\nlocal = \"9999:x:1\"\n",
        2,
        9,
        "wrong type for `tunnels.t.local`: expected an array, found string",
    ),
    (
        "[tunnels.t]\nlocal = [\"1:x:2\", 3]\n",
        2,
        19,
        "wrong type for `tunnels.t.local`: expected a string, found integer `3`",
    ),
    (
        "[tunnels.t]\nautostart = \"yes\"\n",
        2,
        13,
        "wrong type for `tunnels.t.autostart`: expected a boolean",
    ),
    (
        "[tunnels.t]\nprobe_peer = 1\n",
        2,
        14,
        "wrong type for `tunnels.t.probe_peer`: expected a boolean",
    ),
    (
        "[defaults]\nkeepalive_interval = 15\n",
        2,
        22,
        "expected a duration string like \"15s\", found integer `15`",
    ),
    (
        "[defaults]\nbackoff = \"fast\"\n",
        2,
        11,
        "wrong type for `defaults.backoff`: expected a table like",
    ),
    (
        "[defaults]\nbackoff = { jitter = \"0.2\" }\n",
        2,
        22,
        "expected a number, found string \"0.2\"",
    ),
    (
        "[defaults]\nidentity_files = \"~/.ssh/id\"\n",
        2,
        18,
        "expected an array",
    ),
    (
        "[defaults]\nport = 2024-01-01\n",
        2,
        8,
        "expected an integer, found a date/time",
    ),
    (
        "defaults = 3\n",
        1,
        12,
        "expected a table of default settings, found integer `3`",
    ),
    (
        "tunnels = []\n",
        1,
        11,
        "wrong type for `tunnels`: expected a table, found an array",
    ),
    (
        "[tunnels]\njane = \"saturn\"\n",
        2,
        8,
        "expected a table of tunnel settings, found string \"saturn\"",
    ),
    (
        "[defaults]\nhost_key_policy = \"tofu\"\n",
        2,
        19,
        "invalid value for `defaults.host_key_policy`: unknown value `tofu`, expected `strict` or `accept-new`",
    ),
    // arrays of tables
    (
        "[[tunnels.jane]]\nhost = \"h\"\n",
        1,
        1,
        "`[[tunnels.jane]]` declares an array of tables; pairtun expects a single table [tunnels.jane]",
    ),
    (
        "[[tunnels]]\nhost = \"h\"\n",
        1,
        1,
        "declares an array of tables",
    ),
    // duplicates
    (
        "[tunnels.jane]\nhost = \"a\"\n\n[tunnels.jane]\nhost = \"b\"\n",
        4,
        10,
        "table [tunnels.jane] is defined more than once",
    ),
    (
        "[tunnels.jane]\nhost = \"a\"\n  [ tunnels . \"jane\" ]  # again\n",
        3,
        15,
        "table [ tunnels . \"jane\"] is defined more than once",
    ),
    (
        "[tunnels.jane]\nhost = \"a\"\nhost = \"b\"\n",
        3,
        1,
        "duplicate key `host`: it is already set earlier",
    ),
    (
        "[defaults]\n[defaults]\n",
        2,
        2,
        "table [defaults] is defined more than once",
    ),
    (
        "[tunnels]\njane = { host = \"a\" }\n[tunnels.jane]\n",
        3,
        10,
        "table [tunnels.jane] is defined more than once",
    ),
    // TOML syntax
    ("[tunnels.jane\nhost = \"a\"\n", 1, 14, "unclosed table"),
    (
        "[tunnels.jane]\nhost = saturn\n",
        2,
        8,
        "string values must be quoted",
    ),
    (
        "[tunnels.jane]\nhost = \"saturn\n",
        2,
        15,
        "invalid basic string, expected `\"`",
    ),
];

#[test]
fn schema_errors() {
    check_all(CASES);
}

#[test]
fn empty_dynamic_and_jump_are_accepted() {
    let cfg = ok(&format!("[tunnels.t]\n{MIN}dynamic = []\njump = \"\"\n"));
    assert_eq!(cfg.tunnels.len(), 1);
}
