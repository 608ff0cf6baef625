//! ssh config reading and the import parser, on texts and temporary files of their own.

use std::path::{Path, PathBuf};

use super::*;

const FILE: &str = "/home/me/.ssh/config";

fn config(text: &str) -> SshConfig {
    SshConfig::from_text(text, Path::new(FILE), Path::new("/home/me"))
}

#[test]
fn host_alias_resolves_like_openssh_first_value_wins() {
    let c = config(
        "Host saturn\n  HostName saturn.example.org\n  User jane\n  Port 2222\n  \
         IdentityFile ~/.ssh/saturn\n  IdentitiesOnly yes\n\
         Host *\n  User fallback\n  Port 22\n  IdentityFile ~/.ssh/all\n",
    );
    let e = c.host("saturn");
    assert_eq!(e.host_name.as_deref(), Some("saturn.example.org"));
    assert_eq!(e.user.as_deref(), Some("jane"));
    assert_eq!(e.port, Some(2222));
    assert_eq!(
        e.identity_files,
        Some(vec![
            PathBuf::from("/home/me/.ssh/saturn"),
            PathBuf::from("/home/me/.ssh/all")
        ])
    );
    assert_eq!(e.identities_only, Some(true));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let other = c.host("mars");
    assert_eq!(other.host_name, None);
    assert_eq!(other.user.as_deref(), Some("fallback"));
}

#[test]
fn patterns_negation_and_percent_h() {
    let c = config("Host *.lab !secret.lab\n  HostName %h.example.org\n  User labber\n");
    assert_eq!(
        c.host("a.lab").host_name.as_deref(),
        Some("a.lab.example.org")
    );
    assert_eq!(c.host("secret.lab"), HostEntry::default());
    assert_eq!(c.host("a.lab").user.as_deref(), Some("labber"));
}

#[test]
fn host_names_and_patterns_match_without_regard_to_case() {
    let c = config("Host Saturn\n  HostName saturn.example.org\n  User jane\n");
    assert_eq!(c.host("saturn").user.as_deref(), Some("jane"));
    let c = config("Host saturn *.LAB\n  User jane\n");
    assert_eq!(c.host("SATURN").user.as_deref(), Some("jane"));
    assert_eq!(c.host("a.lab").user.as_deref(), Some("jane"));
    assert_eq!(c.host("mars").user, None);
}

#[test]
fn comments_end_a_line_and_quotes_hold_words_together_as_in_ssh() {
    let text = "Host saturn # not jupiter\n  User jane # her account\n  Port 2222 # relay\n\
                Host \"mars\"\n  User \"bob\"\n";
    let c = config(text);
    let saturn = c.host("saturn");
    assert_eq!(
        (saturn.user.as_deref(), saturn.port),
        (Some("jane"), Some(2222))
    );
    assert_eq!(c.host("jupiter"), HostEntry::default());
    assert_eq!(c.host("#"), HostEntry::default());
    assert_eq!(c.host("mars").user.as_deref(), Some("bob"));

    let text = "Host saturn # not jupiter\n  LocalForward 9999 localhost:1235  # to jane\n  \
                DynamicForward 1080 # socks\n  RemoteForward \"1235\" 'localhost:22'\n";
    let imported = parse_ssh_config_import(text, "saturn");
    assert_eq!(
        imported.local,
        ["9999:localhost:1235"],
        "{:?}",
        imported.notes
    );
    assert_eq!(imported.dynamic, ["1080"], "{:?}", imported.notes);
    assert_eq!(
        imported.remote,
        ["1235:localhost:22"],
        "{:?}",
        imported.notes
    );
    assert!(parse_ssh_config_import(text, "jupiter").is_empty());
    assert_eq!(
        flatten::words("a \"b c\" 'd'e  f#g"),
        ["a", "b c", "de", "f#g"]
    );
}

#[test]
fn proxy_jump_chain_and_none() {
    let c = config("Host inner\n  ProxyJump a,b:2222\nHost direct\n  ProxyJump none\n");
    assert_eq!(
        c.host("inner").proxy_jump,
        Some(vec!["a".to_owned(), "b:2222".to_owned()])
    );
    assert_eq!(c.host("direct").proxy_jump, Some(vec![]));
    assert_eq!(c.host("other").proxy_jump, None);
}

#[test]
fn match_block_is_dropped_with_a_warning_naming_file_and_line() {
    // ssh2-config alone would give user "mallory" for relay (notes/deps.md §7).
    let c = config("Host relay\n  User bob\n\nMatch host relay exec true\n  User mallory\n");
    assert_eq!(c.host("relay").user.as_deref(), Some("bob"));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with(&format!("{FILE}:4: `Match` is not supported")),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn proxy_command_is_a_warning_not_a_silent_skip() {
    let c = config("Host relay\n  ProxyCommand nc %h %p\n");
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains(":2: `ProxyCommand` is not supported"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn unrelated_syntax_cannot_disable_the_file() {
    // ssh2-config rejects this RemoteForward; pairtun never passes it on.
    let c = config("Host relay\n  RemoteForward nonsense\n  User bob\n  Ciphers +weird\n");
    assert_eq!(c.host("relay").user.as_deref(), Some("bob"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn include_is_expanded_in_place_relative_to_dot_ssh() {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
    std::fs::write(
        ssh.join("conf.d/10-relay"),
        "Host relay\n  User included\n  Match all\n",
    )
    .unwrap();
    let main = ssh.join("config");
    // The line after the Include still belongs to `Host *`, not to the included `Host relay`.
    std::fs::write(
        &main,
        "Host *\n  Include conf.d/*\n  Port 2200\nInclude missing/*\n",
    )
    .unwrap();
    let c = SshConfig::load(&main, home.path());
    assert_eq!(c.host("relay").user.as_deref(), Some("included"));
    assert_eq!(c.host("relay").port, Some(2200));
    assert_eq!(c.host("other").port, Some(2200));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("conf.d/10-relay:3: `Match`"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn an_include_under_a_host_block_applies_only_to_hosts_that_block_matches() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    let work = "Host *\n  User corp\n  Port 2200\n";
    std::fs::write(home.path().join(".ssh/work.conf"), work).unwrap();
    let text = "Host work\n  Include work.conf\n\nHost *\n  User me\n";
    let c = SshConfig::from_text(text, &home.path().join(".ssh/config"), home.path());
    let at_work = c.host("work");
    assert_eq!(
        (at_work.user.as_deref(), at_work.port),
        (Some("corp"), Some(2200))
    );
    let elsewhere = c.host("saturn");
    assert_eq!(
        (elsewhere.user.as_deref(), elsewhere.port),
        (Some("me"), None)
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn include_cycle_is_a_warning() {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let main = ssh.join("config");
    std::fs::write(&main, "Include config\nHost a\n  User ok\n").unwrap();
    let c = SshConfig::load(&main, home.path());
    assert_eq!(c.host("a").user.as_deref(), Some("ok"));
    assert!(c.warnings[0].contains("Include cycle"), "{:?}", c.warnings);
}

#[test]
fn missing_file_is_silently_none() {
    let c = SshConfig::load(Path::new("/nonexistent/pairtun/ssh_config"), Path::new("/"));
    assert!(c.warnings.is_empty());
    assert_eq!(c.host("x"), HostEntry::default());
}

// ---- import ----

fn import(text: &str) -> Imported {
    parse_ssh_config_import(text, "saturn")
}

#[test]
fn import_accepts_both_forms_and_says_what_openssh_rejects() {
    let i = import(
        "Host saturn\n\
         LocalForward 9999 localhost:1235\n\
         LocalForward 8888:localhost:22\n\
         RemoteForward 1235 localhost:22\n\
         RemoteForward 2222:localhost:22\n\
         DynamicForward 1080\n\
         LocalForward [::1]:7777 [::1]:22\n",
    );
    assert_eq!(
        i.local,
        vec![
            "9999:localhost:1235",
            "8888:localhost:22",
            "[::1]:7777:[::1]:22"
        ]
    );
    assert_eq!(i.remote, vec!["1235:localhost:22", "2222:localhost:22"]);
    assert_eq!(i.dynamic, vec!["1080"]);
    let lines: Vec<_> = i.notes.iter().map(|n| (n.line, n.imported)).collect();
    assert_eq!(lines, vec![(3, true), (5, true)]);
    assert!(
        i.notes[0].message.contains(
            "OpenSSH rejects this line (it needs two arguments: `LocalForward 8888 localhost:22`)"
        ),
        "{}",
        i.notes[0].message
    );
    assert!(i.notes[1].message.contains("remote SOCKS proxy"));
}

#[test]
fn import_reads_only_matching_blocks_and_accumulates() {
    let i = import(
        "LocalForward 1000 localhost:1\n\
         Host mars\n  LocalForward 2000 localhost:2\n\
         Host sat* !saturn-old\n  LocalForward 3000 localhost:3\n\
         Host SATURN\n  LocalForward 3000 localhost:3\n  LocalForward 4000 localhost:4\n\
         Match all\n  LocalForward 5000 localhost:5\n",
    );
    assert_eq!(
        i.local,
        vec!["1000:localhost:1", "3000:localhost:3", "4000:localhost:4"]
    );
    assert_eq!(i.notes.len(), 1);
    assert!(!i.notes[0].imported && i.notes[0].message.contains("Match"));
    assert!(parse_ssh_config_import("Host saturn-old sat*\n", "saturn-old").is_empty());
}

#[test]
fn import_skips_what_cannot_be_used_with_the_reason() {
    let i = import(
        "Host saturn\n\
         LocalForward 9999\n\
         LocalForward 9999 localhost 22\n\
         RemoteForward 1080\n\
         DynamicForward 99999\n\
         LocalForward 70000 localhost:22\n",
    );
    assert!(i.is_empty(), "{i:?}");
    let skipped: Vec<_> = i.notes.iter().map(|n| (n.line, n.imported)).collect();
    assert_eq!(
        skipped,
        vec![(2, false), (3, false), (4, false), (5, false), (6, false)]
    );
    assert!(i.notes[1].message.contains("OpenSSH rejects this line too"));
    assert!(i.notes[2].message.contains("remote dynamic (SOCKS)"));
    assert!(i.notes[4].message.contains("out of range"));
}

#[test]
fn import_follows_include_in_place_and_names_the_included_file() {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
    // Lines before the included file's first `Host` belong to the including block; its own
    // `Host` blocks match on their own; after the `Include` the including block goes on.
    std::fs::write(
        ssh.join("conf.d/10-pairing"),
        "LocalForward 1000 localhost:1\n\
         Host saturn\n  LocalForward 2000:localhost:2\n\
         Host mars\n  LocalForward 3000 localhost:3\n",
    )
    .unwrap();
    std::fs::write(ssh.join("conf.d/20-cycle"), "Include config\n").unwrap();
    std::fs::write(ssh.join("unused"), "LocalForward 9000 localhost:9\n").unwrap();
    let main = ssh.join("config");
    let text = "Host saturn\n  Include conf.d/*\n  RemoteForward 4000 localhost:4\n\
                Host venus\n  Include unused\n";
    std::fs::write(&main, text).unwrap();
    let i = import_ssh_config(text, &main, home.path(), "saturn");
    assert_eq!(i.local, vec!["1000:localhost:1", "2000:localhost:2"]);
    assert_eq!(i.remote, vec!["4000:localhost:4"]);
    let notes: Vec<_> = i
        .notes
        .iter()
        .map(|n| (n.file.clone(), n.line, n.imported))
        .collect();
    assert_eq!(
        notes,
        vec![
            (Some(ssh.join("conf.d/10-pairing")), 3, true),
            (Some(ssh.join("conf.d/20-cycle")), 1, false),
        ]
    );
    assert!(
        i.notes[1].message.contains("Include cycle"),
        "{:?}",
        i.notes
    );

    // Without reading files (the pure parser), the `Include` itself is the note.
    let pure = parse_ssh_config_import(text, "saturn");
    assert_eq!(pure.local, Vec::<String>::new());
    assert_eq!((pure.notes[0].file.clone(), pure.notes[0].line), (None, 2));
    assert!(pure.notes[0].message.contains("not followed"));
}
