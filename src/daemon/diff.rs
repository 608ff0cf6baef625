//! Reload as a pure function: which tunnels a new config adds, removes, changes or keeps.
//! Unchanged tunnels keep their sessions; tunnels added at run time with `--temporary` are
//! not in the file and are left alone.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, TunnelConfig, TunnelName};

/// What applying a new config does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// In the new file only: start them.
    pub added: Vec<TunnelName>,
    /// Running from the file but gone from it: stop them.
    pub removed: Vec<TunnelName>,
    /// In both with different settings: restart them with the new settings.
    pub changed: Vec<TunnelName>,
    /// Identical: keep running untouched.
    pub unchanged: Vec<TunnelName>,
}

/// Compares the running tunnels with `new`. `temporary` names are not from the file: they
/// are never removed by a reload, and a file tunnel of the same name replaces them (changed).
pub fn diff(
    running: &BTreeMap<TunnelName, TunnelConfig>,
    temporary: &BTreeSet<TunnelName>,
    new: &Config,
) -> Diff {
    let mut d = Diff::default();
    for (name, config) in &new.tunnels {
        match running.get(name) {
            None => d.added.push(name.clone()),
            Some(old) if old == config && !temporary.contains(name) => {
                d.unchanged.push(name.clone())
            }
            Some(_) => d.changed.push(name.clone()),
        }
    }
    d.removed = running
        .keys()
        .filter(|name| !new.tunnels.contains_key(*name) && !temporary.contains(*name))
        .cloned()
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, parse};

    fn config(tunnels: &[(&str, u16)]) -> Config {
        let text: String = tunnels
            .iter()
            .map(|(name, port)| {
                format!("[tunnels.{name}]\nhost = \"relay\"\nlocal = [\"{port}:localhost:22\"]\n")
            })
            .collect();
        let env = Env {
            home: "/home/t".into(),
            user: "t".into(),
            vars: Default::default(),
        };
        parse(&text, std::path::Path::new("/t/config.toml"), &env).expect("valid test config")
    }

    fn names(list: &[&str]) -> Vec<TunnelName> {
        list.iter().map(|n| TunnelName::new(n).unwrap()).collect()
    }

    #[test]
    fn table() {
        struct Case {
            what: &'static str,
            running: &'static [(&'static str, u16)],
            temporary: &'static [&'static str],
            new: &'static [(&'static str, u16)],
            expect: [&'static [&'static str]; 4], // added, removed, changed, unchanged
        }
        let cases = [
            Case {
                what: "identical",
                running: &[("a", 1), ("b", 2)],
                temporary: &[],
                new: &[("a", 1), ("b", 2)],
                expect: [&[], &[], &[], &["a", "b"]],
            },
            Case {
                what: "one added",
                running: &[("a", 1)],
                temporary: &[],
                new: &[("a", 1), ("b", 2)],
                expect: [&["b"], &[], &[], &["a"]],
            },
            Case {
                what: "one removed",
                running: &[("a", 1), ("b", 2)],
                temporary: &[],
                new: &[("a", 1)],
                expect: [&[], &["b"], &[], &["a"]],
            },
            Case {
                what: "one changed",
                running: &[("a", 1), ("b", 2)],
                temporary: &[],
                new: &[("a", 1), ("b", 3)],
                expect: [&[], &[], &["b"], &["a"]],
            },
            Case {
                what: "empty file",
                running: &[("a", 1)],
                temporary: &[],
                new: &[],
                expect: [&[], &["a"], &[], &[]],
            },
            Case {
                what: "temporary kept",
                running: &[("a", 1), ("t", 9)],
                temporary: &["t"],
                new: &[("a", 1)],
                expect: [&[], &[], &[], &["a"]],
            },
            Case {
                what: "file replaces temporary",
                running: &[("t", 9)],
                temporary: &["t"],
                new: &[("t", 9)],
                expect: [&[], &[], &["t"], &[]],
            },
            Case {
                what: "everything at once",
                running: &[("a", 1), ("b", 2), ("c", 3)],
                temporary: &[],
                new: &[("a", 1), ("c", 4), ("d", 5)],
                expect: [&["d"], &["b"], &["c"], &["a"]],
            },
        ];
        for case in cases {
            let running: BTreeMap<_, _> = config(case.running).tunnels;
            let temporary: BTreeSet<_> = names(case.temporary).into_iter().collect();
            let got = diff(&running, &temporary, &config(case.new));
            let want = Diff {
                added: names(case.expect[0]),
                removed: names(case.expect[1]),
                changed: names(case.expect[2]),
                unchanged: names(case.expect[3]),
            };
            assert_eq!(got, want, "{}", case.what);
        }
    }
}
