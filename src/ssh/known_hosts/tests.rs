//! Table tests against real files; keys and hashes were made with ssh-keygen (OpenSSH 9.2).

use std::os::unix::fs::PermissionsExt;

use super::*;

// Throwaway keys: `ssh-keygen -t ed25519 -N '' -C ''` (A, B) and `-t ecdsa` (C).
const A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILyP+TPE39WpDddN5WhSTkVSj5T9bHvDjlqfjUXAvkxg";
const B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOv0oBUi0Gxey2NL5OjDlSaqW0/eEgH0/FDcn+bh43yl";
const C: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOt9XkQew7znuSOmr9z3i/krmW5El14cWyMFLkoAQtwmNCkubNaAzKnKpK9N/RYo5b4vBNJ87wI8vxQQIjsDRow=";
// `ssh-keygen -H` of `relay.example.org` and `[relay.example.org]:2222`, both with key A;
// `ssh-keygen -F` finds them.
const H22: &str = "|1|exL4PRT1IUqfiUGPcMTZOAmf+tI=|RH2xUcixOZUvRA5srDQpdi+c9Cw=";
const H2222: &str = "|1|FrtK/Qks0IHTUPO/cVg/4jQE6uE=|t2yaLZWl3Vf7PUoo6UiYsgva1Ak=";

/// `$A`/`$B`/`$C` become "type base64", `$a` the bare base64 of A, `$H…` the hashed names.
fn expand(text: &str) -> String {
    text.replace("$A", &format!("ssh-ed25519 {A}"))
        .replace("$B", &format!("ssh-ed25519 {B}"))
        .replace("$C", &format!("ecdsa-sha2-nistp256 {C}"))
        .replace("$a", A)
        .replace("$H2222", H2222)
        .replace("$H22", H22)
}

fn key(which: char) -> PublicKey {
    let line = expand(&format!("${which}"));
    PublicKey::from_openssh(&line).unwrap()
}

/// Expected verdicts with the path left out (it is always the test file).
#[derive(Debug, PartialEq)]
enum V {
    Known,
    Unknown,
    Changed(usize),
    Revoked(usize),
}

fn run(path: &Path, host: &str, port: u16, presented: char) -> V {
    match check(path, host, port, &key(presented)).unwrap() {
        Verdict::Known => V::Known,
        Verdict::Unknown => V::Unknown,
        Verdict::Changed { path: p, line } if p == path => V::Changed(line),
        Verdict::Revoked { path: p, line } if p == path => V::Revoked(line),
        other => panic!("wrong path in {other:?}"),
    }
}

const R: &str = "relay.example.org";

#[test]
fn table() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, u16, char, V)] = &[
        ("plain match", "relay.example.org $A\n", R, 22, 'A', V::Known),
        ("port 22 entry, other port", "relay.example.org $A\n", R, 2222, 'A', V::Unknown),
        ("bracketed port entry", "[relay.example.org]:2222 $A\n", R, 2222, 'A', V::Known),
        ("bracketed entry, port 22", "[relay.example.org]:2222 $A\n", R, 22, 'A', V::Unknown),
        ("case-insensitive", "Relay.Example.ORG $A\n", "relay.EXAMPLE.org", 22, 'A', V::Known),
        ("comma list", "a.example,relay.example.org,10.0.0.1 $A\n", R, 22, 'A', V::Known),
        ("star", "*.example.org $A\n", R, 22, 'A', V::Known),
        ("star needs the dot", "*.example.org $A\n", "example.org", 22, 'A', V::Unknown),
        ("question mark", "relay?.example.org $A\n", "relay7.example.org", 22, 'A', V::Known),
        ("question mark is one char", "relay?.example.org $A\n", R, 22, 'A', V::Unknown),
        ("star on bracketed port", "[*.example.org]:* $A\n", R, 2222, 'A', V::Known),
        ("negation wins", "*.example.org,!relay.example.org $A\n", R, 22, 'A', V::Unknown),
        ("negation, other host", "*.example.org,!bad.example.org $A\n", R, 22, 'A', V::Known),
        ("negated line is no change", "!relay.example.org,*.example.org $B\nrelay.example.org $A\n", R, 22, 'A', V::Known),
        ("negation only", "!bad.example.org $A\n", R, 22, 'A', V::Unknown),
        ("hashed hit", "$H22 $A\n", R, 22, 'A', V::Known),
        ("hashed hit, port", "$H2222 $A\n", R, 2222, 'A', V::Known),
        ("hashed, case-insensitive", "$H22 $A\n", "RELAY.example.org", 22, 'A', V::Known),
        ("hashed miss, name", "$H22 $A\n", "other.example.org", 22, 'A', V::Unknown),
        ("hashed miss, port", "$H22 $A\n", R, 2222, 'A', V::Unknown),
        ("hashed, changed", "$H22 $B\n", R, 22, 'A', V::Changed(1)),
        ("tabs and runs", "relay.example.org\t\tssh-ed25519 \t$a\tsome comment\n", R, 22, 'A', V::Known),
        ("leading blanks, CRLF", "  relay.example.org $A\r\n", R, 22, 'A', V::Known),
        ("no final newline", "relay.example.org $A", R, 22, 'A', V::Known),
        ("comments, blank lines count", "# c\n\n   \n\t# c\nrelay.example.org $B\n", R, 22, 'A', V::Changed(5)),
        ("commented-out entry", "#relay.example.org $A\n", R, 22, 'A', V::Unknown),
        ("revoked beats known", "relay.example.org $A\n@revoked * $A\n", R, 22, 'A', V::Revoked(2)),
        ("revoked for any host", "@revoked other.host $A\nrelay.example.org $A\n", R, 22, 'A', V::Revoked(1)),
        ("revoked other key", "@revoked * $B\nrelay.example.org $A\n", R, 22, 'A', V::Known),
        ("cert-authority ignored", "@cert-authority *.example.org $A\n", R, 22, 'A', V::Unknown),
        ("changed", "relay.example.org $B\n", R, 22, 'A', V::Changed(1)),
        ("first changed line", "x.example $A\nrelay.example.org $B\n*.org $B\n", R, 22, 'A', V::Changed(2)),
        ("known beats changed", "relay.example.org $B\nrelay.example.org $A\n", R, 22, 'A', V::Known),
        ("other algorithm only", "relay.example.org $C\n", R, 22, 'A', V::Unknown),
        ("ecdsa known", "relay.example.org $A\nrelay.example.org $C\n", R, 22, 'C', V::Known),
        ("malformed skipped",
         "relay.example.org ssh-ed25519 !!notbase64\n\
          relay.example.org ssh-ed25519 AAAA\n\
          relay.example.org ssh-bogus $a\n\
          relay.example.org ecdsa-sha2-nistp256 $a\n\
          @frobbed relay.example.org $A\n\
          @revoked $A\n\
          relay.example.org ssh-ed25519\n\
          relay.example.org\n\
          relay.example.org $A\n", R, 22, 'A', V::Known),
        ("malformed is no change", "relay.example.org ssh-ed25519 AAAA\n", R, 22, 'A', V::Unknown),
        ("bad hash skipped", "|1|!!|!! $A\n|1|x $A\n", R, 22, 'A', V::Unknown),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    for (name, text, host, port, presented, expected) in cases {
        fs::write(&path, expand(text)).unwrap();
        assert_eq!(
            &run(&path, host, *port, *presented),
            expected,
            "case {name:?}"
        );
    }
}

#[test]
fn missing_file_and_bad_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope");
    assert_eq!(run(&path, R, 22, 'A'), V::Unknown);
    let mut bytes = b"relay.example.org \xff\xfe\n".to_vec();
    bytes.extend(expand("relay.example.org $B\n").as_bytes());
    fs::write(&path, bytes).unwrap();
    assert_eq!(run(&path, R, 22, 'A'), V::Changed(2));
}

#[test]
fn glob_backtracks() {
    assert!(glob(b"aaaab", b"*a*a*b"));
    assert!(glob(b"abc", b"***"));
    assert!(!glob(b"abc", b"*d*"));
    assert!(glob(b"", b"*"));
    assert!(!glob(&[b'a'; 60], b"*a*a*a*a*a*a*a*a*a*a*a*b"));
}

#[test]
fn learn_into_missing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/ssh/known_hosts");
    learn(&path, R, 2222, &key('A')).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        expand("[relay.example.org]:2222 $A\n")
    );
    assert_eq!(run(&path, R, 2222, 'A'), V::Known);
    assert_eq!(run(&path, R, 22, 'A'), V::Unknown);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    assert_eq!(mode(&dir.path().join("new/ssh")), 0o700);
}

#[test]
fn learn_appends_after_missing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    fs::write(&path, expand("other.example $B")).unwrap();
    learn(&path, R, 22, &key('A')).unwrap();
    learn(&path, "10.0.0.1", 22, &key('C')).unwrap();
    let expected = "other.example $B\nrelay.example.org $A\n10.0.0.1 $C\n";
    assert_eq!(fs::read_to_string(&path).unwrap(), expand(expected));
    assert_eq!(run(&path, "other.example", 22, 'B'), V::Known);
    assert_eq!(run(&path, R, 22, 'A'), V::Known);
    assert_eq!(run(&path, "10.0.0.1", 22, 'C'), V::Known);
}

/// Two tunnels to one new relay learn its key at once (their checks run on blocking threads):
/// one line, not two.
#[test]
fn learning_a_key_already_learned_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| learn(&path, R, 22, &key('A')).unwrap());
        }
    });
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        expand("relay.example.org $A\n")
    );
}

#[test]
fn learn_rejects_pattern_like_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    for host in [
        "", "a b", "a,b", "*.org", "!x", "@revoked", "#x", "|1|x", "a\tb",
    ] {
        let err = learn(&path, host, 22, &key('A')).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{host:?}");
    }
    assert!(!path.exists());
}

#[test]
fn key_types_for_lists_the_keys_a_host_has_not_revoked_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    let types = |host, port| key_types_for(&path, host, port).unwrap();
    assert_eq!(types(R, 22), [], "missing file");
    let text = expand(
        "relay.example.org $A\n$H2222 $A\n[relay.example.org]:2222 $C\n@revoked relay.example.org $B\n\
         @revoked [relay.example.org]:2222 $C\n@cert-authority [relay.example.org]:2222 $B\nother $B\n",
    );
    fs::write(&path, text).unwrap();
    let nistp256 = key('C').algorithm();
    assert_eq!(types(R, 22), [Algorithm::Ed25519]);
    assert_eq!(
        types("RELAY.example.org", 2222),
        [Algorithm::Ed25519, nistp256]
    );
    assert_eq!(types("elsewhere", 22), []);
}
