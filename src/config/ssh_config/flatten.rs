//! One ssh config text, with `Include`s expanded in place, reduced to the lines pairtun honours,
//! plus a warning (file and line) for each line it must ignore. See the module above for why.

use std::path::{Path, PathBuf};

/// Keywords passed on to the parser; every other line is dropped (silently when it does not
/// change where or how we connect, see [`IGNORED_WITH_WARNING`]).
const HONOURED: [&str; 7] = [
    "host",
    "hostname",
    "user",
    "port",
    "identityfile",
    "identitiesonly",
    "proxyjump",
];

/// Keywords that change where or as whom `ssh` connects, which pairtun does not do: ignoring
/// them silently would connect somewhere else than `ssh HOST` does.
const IGNORED_WITH_WARNING: [(&str, &str); 4] = [
    (
        "proxycommand",
        "use ProxyJump (or `jump` in pairtun's config) instead",
    ),
    ("hostkeyalias", "known_hosts is checked under the HostName"),
    ("canonicalizehostname", "host names are used as written"),
    (
        "userknownhostsfile",
        "set `known_hosts` in pairtun's config instead",
    ),
];

/// How deep `Include`s may nest (OpenSSH allows 16).
const MAX_DEPTH: usize = 16;

/// The reduced text and the warnings.
pub(super) struct Flat {
    pub text: String,
    pub warnings: Vec<String>,
}

/// Splits a config line into its keyword (lower-cased) and arguments (`Key value`, `Key=value`,
/// `Key = value`); `None` for blank and comment lines.
pub(super) fn split_line(line: &str) -> Option<(String, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    Some((line[..end].to_ascii_lowercase(), without_comment(rest)))
}

/// `args` up to a comment: as in ssh, a word that starts with an unquoted `#` ends the line
/// (`LocalForward 9999 localhost:22  # for jane`).
fn without_comment(args: &str) -> &str {
    let mut quote = None;
    let mut word_start = true;
    for (at, c) in args.char_indices() {
        match (quote, c) {
            (None, '#') if word_start => return args[..at].trim_end(),
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        word_start = quote.is_none() && c.is_whitespace();
    }
    args
}

/// The words of a line's arguments as ssh splits them: at whitespace, with `"…"` or `'…'`
/// holding a word together (the quotes removed).
pub(super) fn words(args: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in args.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (_, c) => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    words
}

/// Flattens `text` (read from `path`). For one `alias` (`Some`), an `Include` under a `Host`
/// block that does not match it is left out, as ssh reads such a file without letting any of
/// its blocks apply; `None` keeps every `Include` (for the warnings about them).
pub(super) fn flatten(text: &str, path: &Path, home: &Path, alias: Option<&str>) -> Flat {
    let mut flattener = Flattener {
        includes: Includes::new(home, path),
        out: String::new(),
        warnings: Vec::new(),
        alias,
    };
    flattener.file(text, path);
    Flat {
        text: flattener.out,
        warnings: flattener.warnings,
    }
}

struct Flattener<'a> {
    includes: Includes<'a>,
    out: String,
    warnings: Vec<String>,
    alias: Option<&'a str>,
}

impl Flattener<'_> {
    fn file(&mut self, text: &str, path: &Path) {
        // The `Host` line the following lines belong to, re-emitted after an `Include` (whose
        // own `Host` lines would otherwise capture the rest of this file).
        let mut host_line = "Host *".to_owned();
        let mut host_patterns = "*".to_owned();
        let mut in_match = false;
        for (index, line) in text.lines().enumerate() {
            let Some((keyword, args)) = split_line(line) else {
                continue;
            };
            let at = format!("{}:{}", path.display(), index + 1);
            match keyword.as_str() {
                "host" => {
                    in_match = false;
                    // Patterns match without regard to case, as in ssh (`match_hostname`).
                    host_patterns = args.to_lowercase();
                    host_line = format!("Host {host_patterns}");
                    self.push(&host_line);
                }
                "match" => {
                    in_match = true;
                    self.warnings.push(format!(
                        "{at}: `Match` is not supported by pairtun: the settings under it \
                         (up to the next Host or Match line) are ignored"
                    ));
                }
                _ if in_match => {}
                "include"
                    if self.alias.is_some_and(|alias| {
                        !super::import::host_matches(&host_patterns, alias)
                    }) => {}
                "include" => {
                    let (files, problems) = self.includes.read(args);
                    self.warnings
                        .extend(problems.into_iter().map(|p| format!("{at}: {p}")));
                    for (file, text) in files {
                        self.includes.enter(&file);
                        self.file(&text, &file);
                        self.includes.leave();
                    }
                    let resume = host_line.clone();
                    self.push(&resume);
                }
                k if HONOURED.contains(&k) => {
                    let written = line.split_whitespace().next().unwrap_or(k);
                    let written = written.split('=').next().unwrap_or(k);
                    self.push(&format!("{written} {args}"));
                }
                k => {
                    if let Some((_, advice)) = IGNORED_WITH_WARNING.iter().find(|(w, _)| *w == k) {
                        let written = line.split_whitespace().next().unwrap_or(k);
                        self.warnings.push(format!(
                            "{at}: `{written}` is not supported by pairtun and is ignored; {advice}"
                        ));
                    }
                }
            }
        }
    }

    fn push(&mut self, line: &str) {
        self.out.push_str(line);
        self.out.push('\n');
    }
}

/// `Include` as OpenSSH reads it: glob patterns, `~/` and relative paths resolved against the
/// home directory's `.ssh`, nesting at most [`MAX_DEPTH`] deep, a file that is already being
/// read (a cycle) refused. Shared by the host lookup and `import`.
pub(super) struct Includes<'a> {
    home: &'a Path,
    /// Files being read, outermost first.
    stack: Vec<PathBuf>,
}

impl<'a> Includes<'a> {
    /// Starts at `top`, the file being read.
    pub(super) fn new(home: &'a Path, top: &Path) -> Self {
        Includes {
            home,
            stack: vec![canonical(top)],
        }
    }

    /// Every file the patterns of an `Include` line (`args`) name, in order, with its text; and
    /// what could not be read (a bad pattern, too deep, a cycle, an I/O error), one message
    /// each. An `Include` that matches nothing is fine, as in OpenSSH.
    pub(super) fn read(&self, args: &str) -> (Vec<(PathBuf, String)>, Vec<String>) {
        let (mut files, mut warnings) = (Vec::new(), Vec::new());
        for pattern in words(args) {
            let pattern = pattern.as_str();
            let full = if let Some(rest) = pattern.strip_prefix("~/") {
                self.home.join(rest)
            } else if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                self.home.join(".ssh").join(pattern)
            };
            let paths = match glob::glob(&full.to_string_lossy()) {
                Ok(paths) => paths,
                Err(e) => {
                    warnings.push(format!("bad Include pattern {pattern:?}: {e}"));
                    continue;
                }
            };
            for entry in paths {
                let file = match entry {
                    Ok(file) => file,
                    Err(e) => {
                        warnings.push(format!("Include: {e}"));
                        continue;
                    }
                };
                if self.stack.len() > MAX_DEPTH {
                    warnings.push(format!(
                        "Include nested more than {MAX_DEPTH} deep; {} is not read",
                        file.display()
                    ));
                    continue;
                }
                if self.stack.contains(&canonical(&file)) {
                    warnings.push(format!(
                        "Include cycle: {} is already being read",
                        file.display()
                    ));
                    continue;
                }
                match crate::config::read_file(&file) {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        files.push((file, text));
                    }
                    Err(e) => {
                        warnings.push(format!("cannot read included {}: {e}", file.display()))
                    }
                }
            }
        }
        (files, warnings)
    }

    /// `file` (from [`Includes::read`]) is being read from now on.
    pub(super) fn enter(&mut self, file: &Path) {
        self.stack.push(canonical(file));
    }

    /// The file last entered is done.
    pub(super) fn leave(&mut self) {
        self.stack.pop();
    }
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}
