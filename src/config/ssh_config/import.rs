//! `pairtunctl import HOST`: the forwarding lines of the `Host` blocks matching HOST, as
//! pairtun forward specs. The parsing is pure (text in, specs out) so it can be tested and
//! fuzzed alone; only following `Include` reads other files.

use std::path::{Path, PathBuf};

use wildmatch::WildMatch;

use super::flatten::{Includes, split_line, words};
use crate::config::{parse_forward_dynamic, parse_forward_local, parse_forward_remote};

/// What an ssh config says to forward for one host, in pairtun's spec syntax
/// (`[bind:]port:host:hostport`, `[bind:]port`), each spec already validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// `LocalForward` lines → `local`.
    pub local: Vec<String>,
    /// `RemoteForward` lines → `remote`.
    pub remote: Vec<String>,
    /// `DynamicForward` lines → `dynamic`.
    pub dynamic: Vec<String>,
    /// Lines worth telling the user about, in line order.
    pub notes: Vec<ImportNote>,
}

impl Imported {
    /// Whether anything at all is forwarded.
    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty() && self.dynamic.is_empty()
    }
}

/// A remark about one line of the ssh config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportNote {
    /// The included file the line is in; `None`: the file import was given.
    pub file: Option<PathBuf>,
    /// 1-based line number in that file.
    pub line: usize,
    /// `true`: the line was imported anyway (e.g. a form pairtun accepts but OpenSSH rejects);
    /// `false`: it was skipped.
    pub imported: bool,
    /// What is wrong, and what was done.
    pub message: String,
}

/// Reads `text` (an ssh config, read from `path`) and returns the forwards of every block that
/// applies to `host` — `Host` blocks whose patterns match it, and lines before the first `Host`
/// — in file order, following `Include`s as OpenSSH does (relative paths under `home`/.ssh; an
/// included file's lines before its first `Host` belong to the including block, and after the
/// `Include` that block goes on). Forwards accumulate across blocks and repeats are dropped,
/// as in OpenSSH.
///
/// Both OpenSSH's two-argument form (`LocalForward 9999 localhost:1235`) and the colon form
/// (`LocalForward 9999:localhost:1235`) are accepted; OpenSSH itself rejects the latter (and
/// would read a one-argument `RemoteForward` as a remote SOCKS proxy), which a note says.
/// `Match` blocks are not followed, an included file that cannot be read is skipped (notes say
/// so). Never fails: a line that cannot be used is a note.
pub fn import_ssh_config(text: &str, path: &Path, home: &Path, host: &str) -> Imported {
    Importer::run(text, host, Some(Includes::new(home, path)))
}

/// [`import_ssh_config`] reading no other file: an `Include` is a note. Pure (text in, specs
/// out), for tests and fuzzing.
pub fn parse_ssh_config_import(text: &str, host: &str) -> Imported {
    Importer::run(text, host, None)
}

struct Importer<'a> {
    host: &'a str,
    /// `None`: `Include`s are not followed.
    includes: Option<Includes<'a>>,
    out: Imported,
}

impl<'a> Importer<'a> {
    fn run(text: &str, host: &'a str, includes: Option<Includes<'a>>) -> Imported {
        let mut importer = Importer {
            host,
            includes,
            out: Imported::default(),
        };
        importer.file(text, None);
        importer.out
    }

    /// One file's lines; `file` is `None` for the top one.
    fn file(&mut self, text: &str, file: Option<&Path>) {
        let mut active = true;
        for (index, line) in text.lines().enumerate() {
            let at = (file, index + 1);
            let Some((keyword, args)) = split_line(line) else {
                continue;
            };
            match keyword.as_str() {
                "host" => active = host_matches(args, self.host),
                "match" => {
                    active = false;
                    self.note(
                        at,
                        false,
                        "`Match` is not supported: forwards under it are not imported".to_owned(),
                    );
                }
                "include" if active => self.include(args, at),
                "localforward" | "remoteforward" | "dynamicforward" if active => {
                    match forward(&keyword, args) {
                        Ok((spec, remark)) => {
                            if let Some(remark) = remark {
                                self.note(at, true, remark);
                            }
                            let list = match keyword.as_str() {
                                "localforward" => &mut self.out.local,
                                "remoteforward" => &mut self.out.remote,
                                _ => &mut self.out.dynamic,
                            };
                            if !list.contains(&spec) {
                                list.push(spec);
                            }
                        }
                        Err(message) => self.note(at, false, message),
                    }
                }
                _ => {}
            }
        }
    }

    /// The files an `Include` line names, read in place (in an active block only: OpenSSH
    /// applies nothing from an `Include` under a block that does not match).
    fn include(&mut self, args: &str, at: (Option<&Path>, usize)) {
        let Some(includes) = &self.includes else {
            return self.note(
                at,
                false,
                "`Include` is not followed here: forwards in the included files are not \
                 imported"
                    .to_owned(),
            );
        };
        let (files, problems) = includes.read(args);
        for problem in problems {
            self.note(
                at,
                false,
                format!("{problem}; forwards in it are not imported"),
            );
        }
        for (path, text) in files {
            if let Some(includes) = &mut self.includes {
                includes.enter(&path);
            }
            self.file(&text, Some(&path));
            if let Some(includes) = &mut self.includes {
                includes.leave();
            }
        }
    }

    fn note(&mut self, (file, line): (Option<&Path>, usize), imported: bool, message: String) {
        self.out.notes.push(ImportNote {
            file: file.map(Path::to_owned),
            line,
            imported,
            message,
        });
    }
}

/// OpenSSH's `Host` matching: whitespace-separated patterns with `*` and `?`, `!` negating;
/// matches when some pattern does and no negated one does. Case-insensitive.
pub(super) fn host_matches(patterns: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let mut matched = false;
    for pattern in words(patterns) {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if WildMatch::new(negated).matches(&host) {
                return false;
            }
        } else if WildMatch::new(&pattern).matches(&host) {
            matched = true;
        }
    }
    matched
}

/// One forwarding line → (pairtun spec, remark when OpenSSH would reject it).
fn forward(keyword: &str, args: &str) -> Result<(String, Option<String>), String> {
    let args = words(args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let name = match keyword {
        "localforward" => "LocalForward",
        "remoteforward" => "RemoteForward",
        _ => "DynamicForward",
    };
    let not_imported = |e: String| format!("{name} not imported: {e}");
    if keyword == "dynamicforward" {
        return match args.as_slice() {
            [spec] => parse_forward_dynamic(spec)
                .map(|_| (spec.to_string(), None))
                .map_err(not_imported),
            _ => Err(not_imported(format!(
                "expected one argument, [bind:]port; OpenSSH rejects this line too (got {})",
                args.len()
            ))),
        };
    }
    let parse = |spec: &str| match keyword {
        "localforward" => parse_forward_local(spec).map(drop),
        _ => parse_forward_remote(spec).map(drop),
    };
    match args.as_slice() {
        [listen, target] => {
            let spec = format!("{listen}:{target}");
            parse(&spec).map_err(not_imported)?;
            Ok((spec, None))
        }
        [spec] => {
            parse(spec).map_err(not_imported)?;
            let why = if keyword == "localforward" {
                "it needs two arguments"
            } else {
                "with one argument it means a remote SOCKS proxy"
            };
            Ok((
                spec.to_string(),
                Some(format!(
                    "OpenSSH rejects this line ({why}: `{name} {}`); \
                     pairtun imported it as {spec:?}",
                    two_argument_form(spec)
                )),
            ))
        }
        _ => Err(not_imported(format!(
            "expected `{name} [bind:]port host:hostport` (two arguments, got {}); \
             OpenSSH rejects this line too",
            args.len()
        ))),
    }
}

/// `9999:localhost:1235` → `9999 localhost:1235`: the listen side, a space, the target (the last
/// part when it is a socket path, else the last two). Colons inside `[...]` do not split.
fn two_argument_form(spec: &str) -> String {
    let mut depth = 0usize;
    let colons: Vec<usize> = spec
        .char_indices()
        .filter(|&(_, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
            c == ':' && depth == 0
        })
        .map(|(i, _)| i)
        .collect();
    let cut = match colons.as_slice() {
        [.., last] if spec[last + 1..].starts_with('/') => Some(*last),
        [.., second, _] => Some(*second),
        _ => None,
    };
    match cut {
        Some(at) => format!("{} {}", &spec[..at], &spec[at + 1..]),
        None => spec.to_owned(),
    }
}
