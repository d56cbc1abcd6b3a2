//! Header formats in the loghub style: `<Date> <Time> <Level> <Component>: <Content>`.
//!
//! A `<Field>` placeholder matches lazily; `<Content>` (the message) runs to
//! the end of the line. Text between placeholders is a regular-expression
//! fragment in which each run of spaces matches a run of whitespace, `\[` is
//! a literal bracket and `(...)?` makes a part optional. These are exactly the
//! semantics of the logparser benchmark, so its published formats work
//! unchanged.

use crate::error::{Error, Result};
use regex::Regex;

/// A compiled header format.
#[derive(Debug, Clone)]
pub struct HeaderFormat {
    source: String,
    regex: Regex,
    /// Field names in order of appearance.
    fields: Vec<String>,
    /// Whether the format has a `<Content>` placeholder.
    has_content: bool,
    /// Capture-group index of `<Content>` (for the allocation-free path).
    content_group: Option<usize>,
    /// Index of `<Content>` among the fields (for the fast matcher).
    content_field: Option<usize>,
    /// The format is just `<Content>`: every line is its own message.
    whole_line: bool,
    /// The format as a small program of literal separators, fields and
    /// optional groups, when it uses no other regular-expression construct:
    /// then a backtracking matcher replaces the regex (several times
    /// faster, and it is the hot path of template mining).
    plain: Option<Program>,
}

impl HeaderFormat {
    /// Compile a format. Fails with a message naming the problem when a
    /// placeholder repeats, is empty, or the separators are not a valid
    /// regular-expression fragment.
    pub fn new(format: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLogFormat {
            format: format.to_string(),
            reason,
        };
        let placeholder = Regex::new(r"<([^<>]*)>").expect("static regex");
        let spaces = Regex::new(r" +").expect("static regex");
        let mut pattern = String::from("^");
        let mut fields: Vec<String> = Vec::new();
        let mut last = 0;
        for cap in placeholder.captures_iter(format) {
            let m = cap.get(0).expect("group 0");
            pattern.push_str(&spaces.replace_all(&format[last..m.start()], r"\s+"));
            let name = &cap[1];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(format!(
                    "placeholder <{name}> must be a non-empty name of letters, digits or '_'"
                )));
            }
            if fields.iter().any(|f| f == name) {
                return Err(invalid(format!("placeholder <{name}> appears twice")));
            }
            pattern.push_str(&format!("(?P<{name}>.*?)"));
            fields.push(name.to_string());
            last = m.end();
        }
        pattern.push_str(&spaces.replace_all(&format[last..], r"\s+"));
        pattern.push('$');
        if fields.is_empty() {
            return Err(invalid(
                "no <Field> placeholder; a format needs at least <Content>".into(),
            ));
        }
        let regex = Regex::new(&pattern).map_err(|e| invalid(e.to_string()))?;
        let has_content = fields.iter().any(|f| f == "Content");
        let content_group = regex.capture_names().position(|n| n == Some("Content"));
        let content_field = fields.iter().position(|f| f == "Content");
        Ok(HeaderFormat {
            source: format.to_string(),
            whole_line: format == "<Content>",
            plain: plain_program(format, &placeholder).filter(|_| fields.len() <= 32),
            regex,
            fields,
            has_content,
            content_group,
            content_field,
        })
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Reusable capture buffers for [`HeaderFormat::content_with`].
    pub fn locations(&self) -> regex::CaptureLocations {
        self.regex.capture_locations()
    }

    /// [`HeaderFormat::content`] without allocating: the caller keeps one
    /// `locs` from [`HeaderFormat::locations`] for every line.
    pub fn content_with<'a>(&self, line: &'a str, locs: &mut regex::CaptureLocations) -> &'a str {
        if self.whole_line {
            return line;
        }
        let Some(group) = self.content_group else {
            return line;
        };
        if let Some(prog) = &self.plain {
            let mut m = Plain::new(prog, line);
            match Self::fast_match(&mut m) {
                Some(true) => {
                    let content = self.content_field.expect("has content");
                    return &line[m.starts[content]..m.stops[content]];
                }
                Some(false) => return line,
                None => {}
            }
        }
        match self.regex.captures_read(locs, line) {
            Some(_) => locs.get(group).map_or(line, |(a, b)| &line[a..b]),
            None => line,
        }
    }

    /// The fast matcher's answer: `Some(true)` for a match (the spans are
    /// in `m`), `Some(false)` for none, `None` when the regex must decide
    /// (too much backtracking, or a line with Unicode spaces, which the
    /// regex's `\s` sees and the fast matcher does not: they can split a
    /// line differently anywhere in it). `m` is the caller's, so its spans
    /// are not copied around.
    fn fast_match(m: &mut Plain<'_>) -> Option<bool> {
        // A line without the format's separators cannot match, however
        // its fields are split: say so before backtracking through every
        // split (a logback line tried against `<Date> <Time> <Level>
        // <Component>: <Content>` has no `: ` and used to run the matcher
        // to its step bound and then the regex, about 10 µs a line).
        if !m.possible() {
            return if has_unicode_space(m.line) {
                None
            } else {
                Some(false)
            };
        }
        let found = if m.first_path() { true } else { m.go(0, 0)? };
        if has_unicode_space(m.line) {
            return None;
        }
        Some(found)
    }

    /// Field names in order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Split a line into its header fields. Returns `None` when the line
    /// does not match the format; the caller decides what that means
    /// (the template miner keeps the whole line as the message, a strict
    /// parser dead-letters it).
    pub fn parse<'a>(&self, line: &'a str) -> Option<Vec<(&str, &'a str)>> {
        if let Some(prog) = &self.plain {
            let mut m = Plain::new(prog, line);
            match Self::fast_match(&mut m) {
                Some(true) => {}
                Some(false) => return None,
                None => return self.parse_with_regex(line),
            }
            return Some(
                self.fields
                    .iter()
                    .enumerate()
                    .map(|(k, name)| (name.as_str(), &line[m.starts[k]..m.stops[k]]))
                    .collect(),
            );
        }
        self.parse_with_regex(line)
    }

    /// [`HeaderFormat::parse`] by the regular expression alone: the
    /// reference the fast matcher is held to (property tests compare them).
    pub fn parse_with_regex<'a>(&self, line: &'a str) -> Option<Vec<(&str, &'a str)>> {
        let caps = self.regex.captures(line)?;
        Some(
            self.fields
                .iter()
                .map(|name| (name.as_str(), caps.name(name).map_or("", |m| m.as_str())))
                .collect(),
        )
    }

    /// The `<Content>` part of a line: the message. A line that does not
    /// match, or a format without `<Content>`, yields the whole line.
    pub fn content<'a>(&self, line: &'a str) -> &'a str {
        if !self.has_content {
            return line;
        }
        match self.regex.captures(line) {
            Some(caps) => caps.name("Content").map_or(line, |m| m.as_str()),
            None => line,
        }
    }
}

/// One element of a literal separator.
#[derive(Debug, Clone, PartialEq)]
enum SepItem {
    /// This byte.
    Byte(u8),
    /// One or more whitespace bytes (a run of spaces in the format).
    Space,
}

/// The format as a flat program for the fast matcher.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A lazy field (index into the field names).
    Field(usize),
    /// Literal separator items.
    Lit(Vec<SepItem>),
    /// Start of an optional group `( ... )?`; the index is the node after
    /// the group. The group is tried first (the regex's `?` is greedy).
    Opt(usize),
    /// End of the line.
    End,
}

/// Where a node can begin: which bytes, whitespace, anything, or only at the
/// end of the line. A lazy field before it tries only such positions.
#[derive(Debug, Clone, Default, PartialEq)]
struct Firsts {
    bytes: Vec<u8>,
    space: bool,
    any: bool,
}

/// The fast path: the format's nodes and, per node, where it can begin.
#[derive(Debug, Clone)]
struct Program {
    nodes: Vec<Node>,
    firsts: Vec<Firsts>,
}

/// Compile a format into a [`Program`], if its separators are literal text
/// (escapes like `\[` allowed), spaces, and optional groups `(...)?` that
/// do not nest; anything else (`\d`, classes, alternation) is left to the
/// regex.
fn plain_program(format: &str, placeholder: &Regex) -> Option<Program> {
    let parse = |text: &str, nodes: &mut Vec<Node>, open: &mut Option<usize>| -> Option<()> {
        let mut out = Vec::new();
        let mut bytes = text.bytes().peekable();
        let flush = |out: &mut Vec<SepItem>, nodes: &mut Vec<Node>| {
            if !out.is_empty() {
                nodes.push(Node::Lit(std::mem::take(out)));
            }
        };
        while let Some(b) = bytes.next() {
            match b {
                b' ' => {
                    while bytes.peek() == Some(&b' ') {
                        bytes.next();
                    }
                    out.push(SepItem::Space);
                }
                b'\\' => {
                    let e = bytes.next()?;
                    if e.is_ascii_alphanumeric() {
                        return None; // \d, \s, \w...: a real regex
                    }
                    out.push(SepItem::Byte(e));
                }
                b'(' => {
                    if open.is_some() {
                        return None; // nested groups
                    }
                    flush(&mut out, nodes);
                    *open = Some(nodes.len());
                    nodes.push(Node::Opt(0));
                }
                b')' => {
                    // Only an optional group: `)?`.
                    if bytes.next() != Some(b'?') {
                        return None;
                    }
                    flush(&mut out, nodes);
                    let at = open.take()?;
                    nodes[at] = Node::Opt(nodes.len());
                }
                b'?' | b'*' | b'+' | b'.' | b'[' | b']' | b'{' | b'}' | b'|' | b'^' | b'$' => {
                    return None
                }
                b => out.push(SepItem::Byte(b)),
            }
        }
        flush(&mut out, nodes);
        Some(())
    };
    let mut nodes = Vec::new();
    let mut open = None;
    let mut last = 0;
    for (k, m) in placeholder.find_iter(format).enumerate() {
        parse(&format[last..m.start()], &mut nodes, &mut open)?;
        nodes.push(Node::Field(k));
        last = m.end();
    }
    parse(&format[last..], &mut nodes, &mut open)?;
    if open.is_some() {
        return None;
    }
    nodes.push(Node::End);
    let firsts = (0..nodes.len()).map(|i| firsts(&nodes, i)).collect();
    Some(Program { nodes, firsts })
}

fn firsts(nodes: &[Node], i: usize) -> Firsts {
    match &nodes[i] {
        Node::End => Firsts::default(),
        Node::Field(_) => Firsts {
            any: true,
            ..Default::default()
        },
        Node::Lit(items) => match items.first() {
            Some(SepItem::Byte(b)) => Firsts {
                bytes: vec![*b],
                ..Default::default()
            },
            Some(SepItem::Space) => Firsts {
                space: true,
                ..Default::default()
            },
            None => firsts(nodes, i + 1),
        },
        Node::Opt(after) => {
            let (a, b) = (firsts(nodes, i + 1), firsts(nodes, *after));
            let mut bytes = a.bytes;
            for x in b.bytes {
                if !bytes.contains(&x) {
                    bytes.push(x);
                }
            }
            Firsts {
                bytes,
                space: a.space || b.space,
                any: a.any || b.any,
            }
        }
    }
}

/// Whether `line` (UTF-8) holds whitespace other than ASCII's \t \n \x0C
/// \r and space: \x0B or a Unicode space (U+0085, U+00A0, U+1680,
/// U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). Searched by
/// their first bytes, so an ASCII line costs two SIMD passes.
fn has_unicode_space(line: &[u8]) -> bool {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let hit = |i: usize| match line[i] {
        0x0B => true,
        0xC2 => matches!(at(i + 1), 0x85 | 0xA0),
        0xE1 => at(i + 1) == 0x9A && at(i + 2) == 0x80,
        0xE2 => match at(i + 1) {
            0x80 => matches!(at(i + 2), 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF),
            0x81 => at(i + 2) == 0x9F,
            _ => false,
        },
        0xE3 => at(i + 1) == 0x80 && at(i + 2) == 0x80,
        _ => false,
    };
    memchr::memchr3_iter(0x0B, 0xC2, 0xE1, line).any(hit)
        || memchr::memchr2_iter(0xE2, 0xE3, line).any(hit)
}

/// The first ASCII whitespace byte (`u8::is_ascii_whitespace`) at or after
/// `at`, or the end.
#[inline]
fn until_space(line: &[u8], at: usize) -> usize {
    crate::scan::until(line, at, |b| b <= b' ' && (0x1_0000_3600u64 >> b) & 1 == 1)
}

/// Where in `rest` the next node can first begin (not for `any`): memchr
/// for one or two bytes, a scan otherwise.
#[inline]
fn next_start(firsts: &Firsts, rest: &[u8]) -> Option<usize> {
    match (firsts.bytes.as_slice(), firsts.space) {
        ([b], false) => memchr::memchr(*b, rest),
        ([a, b], false) => memchr::memchr2(*a, *b, rest),
        // Fields between whitespace are short: a word-at-a-time scan beats
        // setting up SIMD searches (measured).
        ([], true) => Some(until_space(rest, 0)).filter(|&k| k < rest.len()),
        (bytes, space) => rest
            .iter()
            .position(|c| bytes.contains(c) || (space && c.is_ascii_whitespace())),
    }
}

/// Where a literal separator first occurs in `line` at or after `from`,
/// as the end of its shortest occurrence: a space item is a run of ASCII
/// whitespace, taken whole before a byte (bytes of a separator are never
/// whitespace) and as one byte at the separator's end (what follows may
/// start inside the run).
fn find_lit(line: &[u8], from: usize, items: &[SepItem]) -> Option<usize> {
    let at_ = |start: usize| -> Option<usize> {
        let mut p = start;
        for (k, item) in items.iter().enumerate() {
            match item {
                SepItem::Byte(b) => {
                    if line.get(p) != Some(b) {
                        return None;
                    }
                    p += 1;
                }
                SepItem::Space => {
                    let run = line[p.min(line.len())..]
                        .iter()
                        .take_while(|c| c.is_ascii_whitespace())
                        .count();
                    if run == 0 {
                        return None;
                    }
                    p += if k + 1 == items.len() { 1 } else { run };
                }
            }
        }
        Some(p)
    };
    let mut start = from;
    while start <= line.len() {
        let rest = &line[start..];
        let s = start
            + match items.first()? {
                SepItem::Byte(b) => memchr::memchr(*b, rest)?,
                SepItem::Space => rest.iter().position(|c| c.is_ascii_whitespace())?,
            };
        if let Some(end) = at_(s) {
            return Some(end);
        }
        start = s + 1;
    }
    None
}

/// A backtracking matcher for the [`Program`] of a format, exploring in
/// the regex's preference order (each field as short as possible, each
/// whitespace run as long as possible, an optional group before its
/// absence) so it finds the same match. `steps` bounds the work; past it
/// the caller uses the regex.
struct Plain<'a> {
    prog: &'a Program,
    line: &'a [u8],
    starts: [usize; 32],
    stops: [usize; 32],
    steps: u32,
}

/// Work bound of the fast matcher before it defers to the regex.
const MAX_STEPS: u32 = 4096;

impl<'a> Plain<'a> {
    fn new(prog: &'a Program, line: &'a str) -> Self {
        Plain {
            prog,
            line: line.as_bytes(),
            starts: [0; 32],
            stops: [0; 32],
            steps: 0,
        }
    }

    /// Follow only the first path the backtracking search would take (each
    /// field to the first place its separator can start, each whitespace
    /// run whole), in a loop rather than by recursion. Nearly every line
    /// matches on it; when it does, the search would have found the same
    /// match first. False means "not on this path": the caller searches.
    fn first_path(&mut self) -> bool {
        // ASCII whitespace as `u8::is_ascii_whitespace` (the search's
        // notion) sees it, as one bit test: \t \n \x0C \r and space.
        let ws = |b: u8| b <= b' ' && (0x1_0000_3600u64 >> b) & 1 == 1;
        let line = self.line;
        let len = line.len();
        let nodes = &self.prog.nodes;
        let mut at = 0;
        let mut i = 0;
        loop {
            match &nodes[i] {
                Node::End => return at == len,
                Node::Opt(after) => {
                    // The group is tried first. When its first byte is not
                    // here it fails at once and the search goes on without
                    // it, as here; any later failure goes back to the search.
                    match nodes.get(i + 1) {
                        Some(Node::Lit(items)) => match items.first() {
                            Some(SepItem::Byte(b)) => {
                                if line.get(at) != Some(b) {
                                    i = *after;
                                    continue;
                                }
                            }
                            _ => return false,
                        },
                        _ => return false,
                    }
                }
                Node::Lit(items) => {
                    for item in items {
                        match *item {
                            SepItem::Byte(b) => {
                                if at < len && line[at] == b {
                                    at += 1;
                                } else {
                                    return false;
                                }
                            }
                            SepItem::Space => {
                                let run_start = at;
                                while at < len && ws(line[at]) {
                                    at += 1;
                                }
                                if at == run_start {
                                    return false;
                                }
                            }
                        }
                    }
                }
                Node::Field(f) => {
                    let f = *f;
                    self.starts[f] = at;
                    match &nodes[i + 1] {
                        Node::End => {
                            self.stops[f] = len;
                            return true;
                        }
                        Node::Lit(items) => match items.first() {
                            Some(SepItem::Space) => {
                                at = until_space(line, at);
                                if at == len {
                                    return false;
                                }
                            }
                            Some(SepItem::Byte(b)) => match memchr::memchr(*b, &line[at..]) {
                                Some(k) => at += k,
                                None => return false,
                            },
                            None => return false,
                        },
                        _ => {
                            let firsts = &self.prog.firsts[i + 1];
                            if firsts.any {
                                return false;
                            }
                            match next_start(firsts, &line[at..]) {
                                Some(k) => at += k,
                                None => return false,
                            }
                        }
                    }
                    self.stops[f] = at;
                }
            }
            i += 1;
        }
    }

    /// A necessary condition for a match, cheap to test: the literal
    /// separators outside optional groups occur in the line in their
    /// order, each contiguous (its spaces as ASCII whitespace). Each is
    /// taken at its leftmost place and shortest end, which leaves the most
    /// room for the ones after it, so a line failing this has no match.
    fn possible(&self) -> bool {
        let nodes = &self.prog.nodes;
        let (mut i, mut at) = (0, 0);
        while i < nodes.len() {
            match &nodes[i] {
                Node::Opt(after) => {
                    i = *after;
                    continue;
                }
                Node::Lit(items) => match find_lit(self.line, at, items) {
                    Some(end) => at = end,
                    None => return false,
                },
                Node::Field(_) | Node::End => {}
            }
            i += 1;
        }
        true
    }

    /// Match from node `i` at byte `at`: Some(true/false) when decided,
    /// None when it gave up.
    fn go(&mut self, i: usize, at: usize) -> Option<bool> {
        match &self.prog.nodes[i] {
            Node::End => Some(at == self.line.len()),
            Node::Lit(_) => self.lit(i, 0, at),
            Node::Opt(after) => {
                let after = *after;
                if self.go(i + 1, at)? {
                    return Some(true);
                }
                // Without the group its fields are empty, as the regex
                // reports them, whatever a failed attempt left behind.
                for n in &self.prog.nodes[i + 1..after] {
                    if let Node::Field(f) = n {
                        self.starts[*f] = 0;
                        self.stops[*f] = 0;
                    }
                }
                self.go(after, at)
            }
            Node::Field(f) => self.field(i, *f, at),
        }
    }

    fn field(&mut self, i: usize, f: usize, start: usize) -> Option<bool> {
        self.starts[f] = start;
        // The last field before the end of the line runs to it.
        if self.prog.nodes[i + 1] == Node::End {
            self.stops[f] = self.line.len();
            return Some(true);
        }
        let firsts = &self.prog.firsts[i + 1];
        let mut end = start;
        while end <= self.line.len() {
            // Only positions where what follows can begin are worth a try:
            // jump straight to the next one (memchr for one or two bytes).
            let rest = &self.line[end..];
            let skip = if firsts.any {
                Some(0)
            } else {
                next_start(firsts, rest)
            };
            // Nowhere further: only the end of the line is left to try.
            end += skip.unwrap_or(rest.len());
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return None;
            }
            self.stops[f] = end;
            if self.go(i + 1, end)? {
                return Some(true);
            }
            end += 1;
        }
        Some(false)
    }

    fn lit(&mut self, i: usize, item: usize, at: usize) -> Option<bool> {
        let Node::Lit(items) = &self.prog.nodes[i] else {
            unreachable!("lit on a literal node")
        };
        if item == items.len() {
            return self.go(i + 1, at);
        }
        match items[item] {
            SepItem::Byte(b) => {
                if self.line.get(at) == Some(&b) {
                    self.lit(i, item + 1, at + 1)
                } else {
                    Some(false)
                }
            }
            SepItem::Space => {
                let mut run = 0;
                while self
                    .line
                    .get(at + run)
                    .is_some_and(|c| c.is_ascii_whitespace())
                {
                    run += 1;
                }
                for k in (1..=run).rev() {
                    if self.lit(i, item + 1, at + k)? {
                        return Some(true);
                    }
                }
                Some(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_loghub_line() {
        let f = HeaderFormat::new("<Date> <Time> <Pid> <Level> <Component>: <Content>").unwrap();
        let line = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating";
        let parts = f.parse(line).unwrap();
        assert_eq!(parts[0], ("Date", "081109"));
        assert_eq!(parts[3], ("Level", "INFO"));
        assert_eq!(parts[4], ("Component", "dfs.DataNode$PacketResponder"));
        assert_eq!(
            f.content(line),
            "PacketResponder 1 for block blk_38865049064139660 terminating"
        );
    }

    #[test]
    fn literal_brackets_and_optional_groups() {
        let f =
            HeaderFormat::new(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
                .unwrap();
        let with = "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname=";
        assert_eq!(f.content(with), "authentication failure; logname=");
        let without = "Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened";
        assert_eq!(f.content(without), "session opened");
        let apache = HeaderFormat::new(r"\[<Time>\] \[<Level>\] <Content>").unwrap();
        assert_eq!(
            apache.content("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok"),
            "workerEnv.init() ok"
        );
    }

    #[test]
    fn a_line_that_does_not_match_is_kept_whole() {
        let f = HeaderFormat::new("<Date> <Time> <Level> <Component>: <Content>").unwrap();
        assert!(f.parse("garbage").is_none());
        assert_eq!(f.content("garbage"), "garbage");
    }

    #[test]
    fn the_fast_matcher_agrees_with_the_regex() {
        let formats = [
            "<Date> <Time> <Pid> <Level> <Component>: <Content>",
            r"\[<Time>\] \[<Level>\] <Content>",
            "<Date> <Time> - <Level>  \\[<Node>:<Component>@<Id>\\] - <Content>",
            "<Content>",
            "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
            r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
            r"<Date>(\[<A>\])? (<B>:)?<Content>",
        ];
        let lines = [
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block terminating",
            "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties",
            "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
            "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
            "a: b: c",
            "",
            "no match here",
            "x  y   z: w",
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0",
            "Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)",
            "Jul  1 09:00:55 combo kernel: Linux version 2.6.5-1.358",
            "Jun 19 04:08:57 combo logrotate: ALERT exited abnormally with [1]",
            "Jun 20 03:40:59 combo ftpd[8829]: connection from 222.33.90.199 () at Mon Jun 20 03:40:59 2005",
            "a b c foo: bar[1]: baz",
            "a b c d[x]: e[2]: f",
            "a[1] b:c",
            "a b:c",
            "a[ b: c",
            "a[b c",
            "a[b] c",
            "x[1 y[2] z: w",
        ];
        for f in formats {
            let h = HeaderFormat::new(f).unwrap();
            assert!(
                h.plain.is_some() || f == "<Content>",
                "{f} should take the fast path"
            );
            let mut locs = h.locations();
            for l in lines {
                let slow = match h.regex.captures(l) {
                    Some(c) => c.name("Content").map_or(l, |m| m.as_str()),
                    None => l,
                };
                assert_eq!(h.content_with(l, &mut locs), slow, "{f} on {l:?}");
                assert_eq!(h.parse(l), h.parse_with_regex(l), "{f} on {l:?}");
            }
        }
        assert!(HeaderFormat::new(r"<Date> (\d+|x) <Content>")
            .unwrap()
            .plain
            .is_none());
    }

    #[test]
    fn bad_formats_name_the_problem() {
        let e = HeaderFormat::new("<Date> <Date> <Content>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
        let e = HeaderFormat::new("no placeholders")
            .unwrap_err()
            .to_string();
        assert!(e.contains("placeholder"), "{e}");
        let e = HeaderFormat::new("<Date> (<Content>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid log format"), "{e}");
    }
}
