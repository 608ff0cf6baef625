//! The process environment the config is interpreted in: home directory, user name and
//! variables. Kept as a plain value so tests build one by hand and never read the real `$HOME`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What config interpretation needs from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// Home directory, for `~/` in paths (empty when unknown: `~/` is then an error).
    pub home: PathBuf,
    /// Local user name, the default SSH login user.
    pub user: String,
    /// Environment variables, for `$VAR` / `${VAR}` in paths and for the default config path.
    pub vars: HashMap<String, String>,
}

impl Env {
    /// Reads the real environment: home from `$HOME`, else the passwd entry; user from the
    /// passwd entry, else `$USER`. Variables that are not valid UTF-8 are left out.
    pub fn from_process() -> Env {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let passwd = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten();
        let home = non_empty(&vars, "HOME")
            .map(PathBuf::from)
            .or_else(|| passwd.as_ref().map(|u| u.dir.clone()))
            .unwrap_or_default();
        // The passwd entry wins for the user: `$USER` survives `su` and is easily stale.
        let user = passwd
            .map(|u| u.name)
            .or_else(|| non_empty(&vars, "USER").map(str::to_owned))
            .unwrap_or_default();
        Env { home, user, vars }
    }

    /// A variable's value, treating an empty value as unset (as XDG and most tools do).
    pub fn var(&self, name: &str) -> Option<&str> {
        non_empty(&self.vars, name)
    }

    /// `~/rel` as an absolute path, or an error when the home directory is unknown.
    pub(crate) fn home_join(&self, rel: &str) -> Result<PathBuf, String> {
        if self.home.as_os_str().is_empty() {
            return Err("cannot expand `~`: the home directory is unknown (set $HOME)".to_owned());
        }
        // Trimming keeps `~/` + `/x` inside the home directory instead of replacing it.
        let rel = rel.trim_start_matches('/');
        Ok(if rel.is_empty() {
            self.home.clone()
        } else {
            self.home.join(rel)
        })
    }

    /// Expands a leading `~/` and `$VAR` / `${VAR}` in a path from the config file; the result
    /// must be absolute, because the daemon's working directory means nothing to the user.
    /// The error does not repeat the path: callers name the key and quote the value.
    pub(crate) fn expand_path(&self, raw: &str) -> Result<PathBuf, String> {
        let (in_home, rest) = if raw == "~" {
            (true, "")
        } else if let Some(rest) = raw.strip_prefix("~/") {
            (true, rest)
        } else if raw.starts_with('~') {
            return Err("`~user` is not supported; use an absolute path or ~/".to_owned());
        } else {
            (false, raw)
        };
        let rest = self.expand_vars(rest)?;
        let path = if in_home {
            self.home_join(&rest)?
        } else {
            PathBuf::from(rest)
        };
        if !path.is_absolute() {
            return Err("the path must be absolute (start with / or ~/)".to_owned());
        }
        Ok(path)
    }

    /// Replaces `$NAME` and `${NAME}`; an unset variable is an error rather than an empty
    /// string, so a missing variable cannot silently turn `$X/key` into `/key`.
    fn expand_vars(&self, text: &str) -> Result<String, String> {
        expand_variables(text, &self.vars, true)
    }
}

/// Replaces `${NAME}`, and `$NAME` too when `bare` (without it, as in OpenSSH's paths, a `$`
/// not followed by `{` is text), with values from `vars`; an unset variable is an error.
pub(crate) fn expand_variables(
    text: &str,
    vars: &HashMap<String, String>,
    bare: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let close = braced
                .find('}')
                .ok_or_else(|| "unclosed `${`; write ${NAME}".to_owned())?;
            (&braced[..close], &braced[close + 1..])
        } else if bare {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            after.split_at(len)
        } else {
            out.push('$');
            rest = after;
            continue;
        };
        if !is_var_name(name) {
            return Err(format!(
                "`$` must start a variable like $HOME or ${{HOME}}, found {:?}",
                &rest[dollar..]
            ));
        }
        let value = vars
            .get(name)
            .ok_or_else(|| format!("environment variable `{name}` is not set"))?;
        out.push_str(value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn non_empty<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// The config file to use: `$PAIRTUN_CONFIG`, else `$XDG_CONFIG_HOME/pairtun/config.toml`,
/// else `~/.config/pairtun/config.toml`.
pub fn default_path(env: &Env) -> PathBuf {
    if let Some(path) = env.var("PAIRTUN_CONFIG") {
        return PathBuf::from(path);
    }
    // The XDG spec says a relative $XDG_CONFIG_HOME is invalid and must be ignored.
    let base = match env.var("XDG_CONFIG_HOME").map(Path::new) {
        Some(xdg) if xdg.is_absolute() => xdg.to_path_buf(),
        _ => env.home.join(".config"),
    };
    base.join("pairtun").join("config.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env {
            home: PathBuf::from("/home/me"),
            user: "me".into(),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn expands_tilde_and_variables() {
        let e = env(&[("KEYS", "/keys"), ("N", "id")]);
        let cases = [
            ("~/.ssh/id", "/home/me/.ssh/id"),
            ("~", "/home/me"),
            ("$KEYS/x", "/keys/x"),
            ("${KEYS}/${N}_rsa", "/keys/id_rsa"),
            ("/abs/path", "/abs/path"),
            ("~/$N", "/home/me/id"),
        ];
        for (raw, want) in cases {
            assert_eq!(e.expand_path(raw), Ok(PathBuf::from(want)), "{raw}");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        let e = env(&[]);
        let cases = [
            ("$NOPE/x", "environment variable `NOPE` is not set"),
            ("${NOPE}", "environment variable `NOPE` is not set"),
            ("/a/${B", "unclosed `${`"),
            ("/a/$", "`$` must start a variable"),
            ("/a/${}", "`$` must start a variable"),
            ("relative/key", "the path must be absolute"),
            ("~bob/.ssh", "`~user` is not supported"),
        ];
        for (raw, want) in cases {
            let err = e.expand_path(raw).unwrap_err();
            assert!(err.contains(want), "{raw}: {err}");
        }
        let homeless = Env::default();
        assert!(
            homeless
                .expand_path("~/x")
                .unwrap_err()
                .contains("home directory is unknown")
        );
    }

    #[test]
    fn default_path_precedence() {
        let cases = [
            (
                vec![("PAIRTUN_CONFIG", "/etc/p.toml"), ("XDG_CONFIG_HOME", "/x")],
                "/etc/p.toml",
            ),
            (vec![("XDG_CONFIG_HOME", "/x")], "/x/pairtun/config.toml"),
            (
                vec![("XDG_CONFIG_HOME", "rel")],
                "/home/me/.config/pairtun/config.toml",
            ),
            (
                vec![("PAIRTUN_CONFIG", "")],
                "/home/me/.config/pairtun/config.toml",
            ),
            (vec![], "/home/me/.config/pairtun/config.toml"),
        ];
        for (vars, want) in cases {
            assert_eq!(default_path(&env(&vars)), PathBuf::from(want), "{vars:?}");
        }
    }

    #[test]
    fn from_process_does_not_panic() {
        // Reads the real environment, so it asserts nothing about what it finds.
        let _ = Env::from_process();
    }
}
