//! Which lines of the file a tunnel owns, and the text without them (the policy is in the
//! parent module's docs). Lines are classified once: blank, comment, or content, where a line
//! that starts inside a multi-line string or array is content whatever it looks like.

use std::ops::Range;

use toml_edit::{Item, Key, Table};

const BOM: char = '\u{feff}';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blank,
    Comment,
    Content,
}

struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
    kinds: Vec<Kind>,
}

/// Whether the last line of `text` (which ends with a newline) is blank.
pub(super) fn ends_with_blank_line(text: &str) -> bool {
    text.split_inclusive('\n')
        .next_back()
        .is_some_and(|line| line.trim().is_empty())
}

/// `source` without the lines owned by the tunnel `item` (keyed `key` in its parent). `root`
/// is `source` parsed, with spans.
pub(super) fn without(source: &str, root: &Table, key: &Key, item: &Item) -> String {
    let mut all = Spans::default();
    survey(root, &mut all);
    let mut owned = Spans::default();
    own(key, item, &mut owned);
    let lines = Lines::new(source, &all.values);
    let mut remove = vec![false; lines.len()];
    mark_sections(&lines, &all.headers, &owned.headers, &mut remove);
    for kv in &owned.values {
        mark_key_value(&lines, kv, &mut remove);
    }
    let kept: String = (0..lines.len())
        .filter(|&i| !remove[i])
        .map(|i| lines.line(i))
        .collect();
    // A byte-order mark belongs to the file, not to the first line's tunnel.
    if source.starts_with(BOM) && !kept.starts_with(BOM) {
        format!("{BOM}{kept}")
    } else {
        kept
    }
}

/// Where headers start and where values (or whole key-values) lie, in bytes.
#[derive(Default)]
struct Spans {
    headers: Vec<usize>,
    values: Vec<Range<usize>>,
}

/// A table written as `[a.b]` (not one implied by a sub-table or defined by dotted keys).
fn header(table: &Table) -> Option<usize> {
    let written = !table.is_dotted() && !table.is_implicit();
    written.then(|| table.span().map(|s| s.start)).flatten()
}

/// Every header and every value in the document.
fn survey(table: &Table, out: &mut Spans) {
    for (_, item) in table.iter() {
        match item {
            Item::Value(v) => out.values.extend(v.span()),
            Item::Table(t) => {
                out.headers.extend(header(t));
                survey(t, out);
            }
            Item::ArrayOfTables(a) => a.iter().for_each(|t| {
                out.headers.extend(header(t));
                survey(t, out);
            }),
            Item::None => {}
        }
    }
}

/// What the tunnel owns: its headers (each owns its section), and key-values written in some
/// other table's body (`jane = { .. }`, `jane.host = ".."`) as ranges from key to value end.
fn own(key: &Key, item: &Item, out: &mut Spans) {
    match item {
        Item::Value(v) => out
            .values
            .extend(key.span().zip(v.span()).map(|(k, v)| k.start..v.end)),
        Item::Table(t) => own_table(t, out),
        Item::ArrayOfTables(a) => a.iter().for_each(|t| own_table(t, out)),
        Item::None => {}
    }
}

fn own_table(table: &Table, out: &mut Spans) {
    let start = header(table);
    out.headers.extend(start);
    for (name, item) in table.iter() {
        // A header's own values are in its section already.
        if start.is_some() && item.is_value() {
            continue;
        }
        if let Some((key, _)) = table.get_key_value(name) {
            own(key, item, out);
        }
    }
}

/// Marks each run of consecutive owned sections (a header to the next header), with its
/// comments: see the module docs of `config::edit`.
fn mark_sections(lines: &Lines, all: &[usize], owned: &[usize], remove: &mut [bool]) {
    let mut heads: Vec<(usize, bool)> = all
        .iter()
        .map(|h| (lines.index(*h), owned.contains(h)))
        .collect();
    heads.sort_unstable();
    heads.dedup();
    let mut i = 0;
    while i < heads.len() {
        if !heads[i].1 {
            i += 1;
            continue;
        }
        let first = heads[i].0;
        while heads.get(i).is_some_and(|h| h.1) {
            i += 1;
        }
        let end = heads.get(i).map_or(lines.len(), |h| h.0);
        mark_run(lines, first, end, remove);
    }
}

/// Lines `head..end` hold owned sections; decides how far the removal reaches either side.
fn mark_run(lines: &Lines, head: usize, end: usize, remove: &mut [bool]) {
    let count = lines.len();
    let mut from = head;
    while from > 0 && lines.kinds[from - 1] == Kind::Comment {
        from -= 1;
    }
    // The header line itself is content, so the body ends at or after it.
    let body_end = (head..end)
        .rev()
        .find(|&i| lines.kinds[i] == Kind::Content)
        .unwrap_or(head)
        + 1;
    let mut to = body_end;
    while to < end && lines.kinds[to] == Kind::Comment {
        to += 1;
    }
    if to == end && end < count {
        // Those comments sit directly on the next header: they are its own.
        to = body_end;
    }
    let mut after = to;
    while after < count && lines.kinds[after] == Kind::Blank {
        after += 1;
    }
    if after == count {
        // Last in the file: take the blank lines before it, so the file ends where it did
        // before the tunnel was appended.
        while from > 0 && lines.kinds[from - 1] == Kind::Blank {
            from -= 1;
        }
        to = count;
    } else if from == 0 || lines.kinds[from - 1] == Kind::Blank {
        // Blank lines on both sides would double up; when the line above is text, the blank
        // lines below are what keeps the next paragraph apart from it.
        to = after;
    }
    mark(remove, from..to);
}

/// A key-value in another table's body, with the comment lines directly above it.
fn mark_key_value(lines: &Lines, kv: &Range<usize>, remove: &mut [bool]) {
    let first = lines.index(kv.start);
    let last = lines.index(kv.end.saturating_sub(1).max(kv.start));
    let mut from = first;
    while from > 0 && lines.kinds[from - 1] == Kind::Comment {
        from -= 1;
    }
    mark(remove, from..last + 1);
}

/// Slicing that cannot panic, whatever spans a malformed document produced.
fn mark(remove: &mut [bool], lines: Range<usize>) {
    if let Some(lines) = remove.get_mut(lines) {
        lines.fill(true);
    }
}

impl<'a> Lines<'a> {
    fn new(text: &'a str, values: &[Range<usize>]) -> Lines<'a> {
        // Only a value spanning lines can make a line look like something it is not.
        let multi_line: Vec<&Range<usize>> = values
            .iter()
            .filter(|v| text.get((*v).clone()).is_some_and(|t| t.contains('\n')))
            .collect();
        let starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .filter(|&start| start < text.len())
            .collect();
        let mut lines = Lines {
            text,
            starts,
            kinds: Vec::new(),
        };
        lines.kinds = (0..lines.len())
            .map(|i| {
                let start = lines.starts[i];
                let trimmed = lines.line(i).trim_start_matches(BOM).trim();
                if multi_line.iter().any(|v| v.start < start && start < v.end) {
                    Kind::Content
                } else if trimmed.is_empty() {
                    Kind::Blank
                } else if trimmed.starts_with('#') {
                    Kind::Comment
                } else {
                    Kind::Content
                }
            })
            .collect();
        lines
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    /// The line holding byte `offset`.
    fn index(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1)
    }

    /// Line `i` with its line ending.
    fn line(&self, i: usize) -> &'a str {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        self.text.get(self.starts[i]..end).unwrap_or("")
    }
}
