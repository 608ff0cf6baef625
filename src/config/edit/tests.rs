//! Table tests for config edits, hermetic: each test has its own temporary home and config
//! directory, and never reads the real environment.

mod files;

use std::path::Path;

use super::*;
use crate::config::TunnelName;

const HEADER: &str = r#"# pairtun config
# edited by hand and by pairtunctl
"#;
const DEFAULTS: &str = r#"
[defaults]
keepalive_interval = "10s"  # the office Wi-Fi drops idle flows
"#;
const JANE: &str = r#"
# jane's laptop, through saturn
[tunnels.jane]  # jane's relay
host = "saturn"
local = ["9999:localhost:1235"]  # ssh -p 9999 jane@localhost
"#;
const FROM_YOU: &str = r#"
# my sshd, for jane
# (she connects to saturn:1235)
[tunnels.from-you]
host = "saturn"
remote = ["1235:localhost:22"]
# below the body: goes with from-you

[tunnels.from-you.backoff]
initial = "2s"
"#;
const WEEKEND: &str = r#"
[tunnels.weekend]
host = "pluto"
port = 2222
local = [
  "8022:localhost:22",
# not a comment line of its own: inside the array
]
"#;
/// What `full_spec` appends.
const BOB: &str = r#"[tunnels.bob]
host = "mars"
port = 2200
user = "bob"
identity_files = ["~/.ssh/id_bob"]
local = ["8888:localhost:22"]
remote = ["0:localhost:22"]
autostart = false
probe_peer = true
"#;

fn full() -> String {
    [HEADER, DEFAULTS, JANE, FROM_YOU, WEEKEND].concat()
}

fn env(home: &Path) -> Env {
    Env {
        home: home.to_owned(),
        user: "tester".into(),
        vars: Default::default(),
    }
}

fn spec(name: &str, local: &str) -> TunnelSpec {
    TunnelSpec {
        name: name.into(),
        host: "mars".into(),
        port: None,
        user: None,
        identity_files: vec![],
        local: vec![local.into()],
        remote: vec![],
        dynamic: vec![],
        jump: None,
        autostart: true,
        probe_peer: false,
    }
}

fn full_spec() -> TunnelSpec {
    TunnelSpec {
        port: Some(2200),
        user: Some("bob".into()),
        identity_files: vec!["~/.ssh/id_bob".into()],
        remote: vec!["0:localhost:22".into()],
        autostart: false,
        probe_peer: true,
        ..spec("bob", "8888:localhost:22")
    }
}

fn parsed(text: &str, home: &Path) -> Config {
    parse(text, Path::new("/cfg/config.toml"), &env(home))
        .unwrap_or_else(|e| panic!("{e}\n--- text ---\n{text}"))
}

#[test]
fn add_appends_and_keeps_the_rest_byte_identical() {
    let home = tempfile::tempdir().unwrap();
    let full = full();
    let cases = [
        ("", BOB.to_owned()),
        (HEADER, format!("\n{BOB}")),
        (&full, format!("\n{BOB}")),
        ("# ends with a blank line\n\n", BOB.to_owned()),
        ("# no newline at the end", format!("\n\n{BOB}")),
    ];
    for (source, appended) in cases {
        let text = add_tunnel(source, &full_spec()).unwrap();
        assert_eq!(text.get(..source.len()), Some(source), "changed:\n{text}");
        assert_eq!(&text[source.len()..], appended, "after {source:?}");
        let bob = &parsed(&text, home.path()).tunnels[&TunnelName::new("bob").unwrap()];
        let got = (
            bob.host.as_str(),
            bob.port,
            bob.user.as_str(),
            bob.autostart,
            bob.probe_peer,
        );
        assert_eq!(got, ("mars", 2200, "bob", false, true));
        assert_eq!(bob.identities.paths(), [home.path().join(".ssh/id_bob")]);
        assert_eq!(bob.local[0].spec, "8888:localhost:22");
        assert_eq!(bob.remote[0].spec, "0:localhost:22");
    }
}

#[test]
fn add_writes_only_what_is_set() {
    let text = add_tunnel("", &spec("min", "1:h:2")).unwrap();
    assert_eq!(
        text,
        "[tunnels.min]\nhost = \"mars\"\nlocal = [\"1:h:2\"]\n"
    );
    let odd = TunnelSpec {
        user: Some(String::new()),
        jump: Some("hop".into()),
        dynamic: vec!["1080".into()],
        ..spec("odd", "1:h:2")
    };
    let text = add_tunnel("", &odd).unwrap();
    let want = "[tunnels.odd]\nhost = \"mars\"\nlocal = [\"1:h:2\"]\ndynamic = [\"1080\"]\njump = \"hop\"\n";
    assert_eq!(text, want);
}

#[test]
fn names_are_quoted_as_toml_keys() {
    let home = tempfile::tempdir().unwrap();
    let text = add_tunnel(JANE, &spec("a.b", "7000:h:22")).unwrap();
    assert!(text.ends_with("\n\n[tunnels.\"a.b\"]\nhost = \"mars\"\nlocal = [\"7000:h:22\"]\n"));
    let name = TunnelName::new("a.b").unwrap();
    assert!(parsed(&text, home.path()).tunnels.contains_key(&name));
    assert_eq!(drop_tunnel(&text, "a.b").unwrap(), JANE);
    // A name validation refuses still makes valid TOML, and `parse` says what is wrong.
    let text = add_tunnel("", &spec("x\"]\ny = [", "7000:h:22")).unwrap();
    let err = parse(&text, Path::new("/c"), &env(home.path())).unwrap_err();
    assert!(err.message.contains("tunnel name"), "{err}");
}

#[test]
fn add_then_drop_gives_the_original_back() {
    let full = full();
    let inline = "[tunnels]\njane = { host = \"a\" }\n";
    let crlf = "# windows\r\n[tunnels.jane]\r\nhost = \"a\"\r\n";
    for source in ["", HEADER, JANE, &full, inline, crlf] {
        for new in [full_spec(), spec("a.b", "7000:h:22")] {
            let added = add_tunnel(source, &new).unwrap();
            assert_eq!(drop_tunnel(&added, &new.name).unwrap(), source, "{new:?}");
        }
    }
}

#[test]
fn crlf_files_get_crlf_lines() {
    let source = "# windows\r\n";
    let added = add_tunnel(source, &spec("x", "1:h:2")).unwrap();
    let want = "\r\n[tunnels.x]\r\nhost = \"mars\"\r\nlocal = [\"1:h:2\"]\r\n";
    assert_eq!(&added[source.len()..], want);
    // A multi-line string keeps its own newlines.
    let jump = TunnelSpec {
        jump: Some("a\nb".into()),
        ..spec("x", "1:h:2")
    };
    let added = add_tunnel(source, &jump).unwrap();
    assert!(added.ends_with("jump = \"\"\"\na\nb\"\"\"\n"), "{added:?}");
}

#[test]
fn drop_takes_the_tunnel_and_its_own_comments_only() {
    let blocks = [JANE, FROM_YOU, WEEKEND];
    for prelude in [HEADER.to_owned(), [HEADER, DEFAULTS].concat()] {
        for (i, name) in ["jane", "from-you", "weekend"].into_iter().enumerate() {
            let source = prelude.clone() + &blocks.concat();
            let mut rest = blocks.to_vec();
            rest.remove(i);
            let want = prelude.clone() + &rest.concat();
            assert_eq!(drop_tunnel(&source, name).unwrap(), want, "drop {name}");
        }
    }
}

#[test]
fn drop_cases() {
    let b = "[tunnels.b]\nhost = \"b\"\n";
    let cases = [
        // A comment directly above the header goes with it, even the file's first line.
        (
            format!("# jane\n[tunnels.jane]\nhost = \"a\"\n\n{b}"),
            b.to_owned(),
        ),
        // So do sub-tables, wherever they are.
        (
            format!("[tunnels.jane]\nhost = \"a\"\n\n{b}\n[tunnels.jane.backoff]\nmax = \"9s\"\n"),
            b.to_owned(),
        ),
        // Without blank lines, the comment directly above the next header stays with it.
        (
            format!("[defaults]\nport = 22\n[tunnels.jane]\nhost = \"a\"\n# b's\n{b}"),
            format!("[defaults]\nport = 22\n# b's\n{b}"),
        ),
        // A comment after a blank line at the end of the file is nobody's.
        (
            format!("{b}\n[tunnels.jane]\nhost = \"a\"\n\n# vim: ft=toml\n"),
            format!("{b}\n# vim: ft=toml\n"),
        ),
        // Lines inside a multi-line string are neither comments nor blank.
        (
            format!("[tunnels.jane]\nhost = '''\n\n# x'''\n# jane's\n\n{b}"),
            b.to_owned(),
        ),
        (
            "# hdr\n\n[tunnels]\n# jane's\njane = { host = \"a\" }  # j\n# b's\nb = {}\n".into(),
            "# hdr\n\n[tunnels]\n# b's\nb = {}\n".into(),
        ),
        (
            "# hdr\n\ntunnels.jane.host = \"a\"\ntunnels.b.host = \"b\"\ntunnels.jane.port = 1\n"
                .into(),
            "# hdr\n\ntunnels.b.host = \"b\"\n".into(),
        ),
        (
            "\u{feff}[tunnels.jane]\r\nhost = \"a\"\r\n\r\n[tunnels.b]\r\n".into(),
            "\u{feff}[tunnels.b]\r\n".into(),
        ),
    ];
    for (source, want) in cases {
        assert_eq!(drop_tunnel(&source, "jane").unwrap(), want, "{source}");
    }
}

#[test]
fn inline_tunnels_table() {
    let x = "{ host = \"mars\", local = [\"1:h:2\"] }";
    let adds = [
        (
            "tunnels = {}\n".to_owned(),
            format!("tunnels = {{ x = {x} }}\n"),
        ),
        (
            "tunnels = { a = {} }  # c\n".into(),
            format!("tunnels = {{ a = {{}}, x = {x} }}  # c\n"),
        ),
        (
            "tunnels = {\n  a = {},  # a's\n  b = {},\n}\n".into(),
            format!("tunnels = {{\n  a = {{}},  # a's\n  b = {{}},\n  x = {x},\n}}\n"),
        ),
    ];
    for (source, want) in adds {
        assert_eq!(add_tunnel(&source, &spec("x", "1:h:2")).unwrap(), want);
    }
    let drops = [
        (
            "tunnels = { jane = {}, b = {} }  # c\n",
            "tunnels = { b = {} }  # c\n",
        ),
        (
            "tunnels = { b = {}, jane = {} }\n",
            "tunnels = { b = {} }\n",
        ),
        (
            "tunnels = {\n  jane = {},  # j\n  b = {},\n}\n",
            "tunnels = {\n  b = {},\n}\n",
        ),
    ];
    for (source, want) in drops {
        assert_eq!(drop_tunnel(source, "jane").unwrap(), want);
    }
}

#[test]
fn refusals() {
    let jane = spec("jane", "1:h:2");
    for source in [
        JANE,
        "tunnels.jane.host = \"a\"\n",
        "tunnels = { jane = {} }\n",
        "[tunnels]\n\"jane\" = {}\n",
        "[tunnels.jane.backoff]\n",
    ] {
        let refused = add_tunnel(source, &jane);
        assert!(
            matches!(refused, Err(EditError::Exists(n)) if n == "jane"),
            "{source}"
        );
    }
    for source in [
        "",
        "# comments\n",
        FROM_YOU,
        "tunnels = {}\n",
        "[tunnels]\n",
    ] {
        let refused = drop_tunnel(source, "jane");
        assert!(
            matches!(refused, Err(EditError::Missing(n)) if n == "jane"),
            "{source}"
        );
    }
    for source in [
        "[tunnels.jane\n",
        "x = \"\\q\"\n",
        "tunnels = 3\n",
        "[[tunnels]]\n",
    ] {
        let added = add_tunnel(source, &spec("a", "1:h:2"));
        assert!(matches!(added, Err(EditError::Toml(_))), "{source}");
        assert!(
            matches!(drop_tunnel(source, "a"), Err(EditError::Toml(_))),
            "{source}"
        );
    }
    let err = drop_tunnel("a = 1\n[x\n", "a").unwrap_err();
    let want = "the config file is not valid TOML: line 2, column 3: unclosed table, expected `]`";
    assert_eq!(err.to_string(), want);
}

/// Every prefix of a file, valid TOML or not: no panics, and what comes back is TOML.
#[test]
fn no_panics_on_truncated_files() {
    let full = full() + "tunnels.dotted.host = 1\n";
    let cuts = (0..=full.len()).filter(|&i| full.is_char_boundary(i));
    for source in cuts.map(|i| &full[..i]) {
        let added = add_tunnel(source, &spec("new", "1:h:2"));
        let dropped = ["jane", "from-you", "weekend"].map(|n| drop_tunnel(source, n));
        for text in std::iter::once(added).chain(dropped).flatten() {
            assert!(text.parse::<DocumentMut>().is_ok(), "{source}\n---\n{text}");
        }
    }
}
