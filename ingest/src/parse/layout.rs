//! The level an application wrote into its own message text.
//!
//! A shipper that runs no parser (Fluent Bit's Kubernetes filter, Vector's
//! `kubernetes_logs` source, Docker's json-file driver) sends the raw line
//! as `log` or `message`, so a record arrives with no level field while the
//! text starts `16:42:22.382 ERROR c.s.ContactsServiceImpl#37 ...`. Without
//! the level, errors are invisible to every error-rate signal. This module
//! reads it back from the common application layouts, cheaply and without
//! regular expressions (it runs on every record that lacks a level):
//!
//! - logback / log4j / Spring Boot: `[date] time LEVEL [thread] logger ...`,
//!   `date time  LEVEL pid --- [thread] logger : ...`, `[thread] LEVEL ...`;
//! - Python `logging`: `LEVEL:logger:msg` (basicConfig) and
//!   `date time,ms - name - LEVEL - msg`;
//! - Go: zap's console encoder (`time\tLEVEL\tlogger\tmsg`), logrus' text
//!   formatter (`time="..." level=error msg=...`), klog/glog
//!   (`E0129 16:42:22.382123 1 file.go:12] msg`);
//! - nginx and Apache error logs (`[error]`, `[core:error]`), and any
//!   bracketed level (`[WARN]`, `<error>`).
//!
//! Only the first few tokens are read, and a bare word counts only in
//! upper case (`ERROR`, `WARN`), so a message that merely mentions an
//! error ("retrying after error ...") is not read as one.

use models::Level;

/// `s.split_once(char::is_whitespace)`, a byte at a time while the text is
/// ASCII (a layout's header nearly always is) and by chars from the first
/// other byte on: the same split, without decoding every character of
/// every record's header.
fn split_ws(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut from = 0;
    loop {
        // Printable ASCII (`!` to `~`) is neither: one comparison per
        // byte for nearly every byte.
        let i = from + b[from..].iter().position(|c| !(b'!'..0x7F).contains(c))?;
        match b[i] {
            // `char::is_whitespace` in ASCII: space, \t, \n, \v, \f, \r.
            b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' => return Some((&s[..i], &s[i + 1..])),
            0x80.. => {
                let (head, tail) = s[i..].split_once(char::is_whitespace)?;
                return Some((&s[..i + head.len()], tail));
            }
            // Another control character, or DEL: part of the token.
            _ => from = i + 1,
        }
    }
}

/// The non-empty pieces of `s` between ASCII whitespace, with where each
/// starts: `s.split(|c: char| c.is_ascii_whitespace())` without the empty
/// ones, read a byte at a time (a UTF-8 sequence never holds an ASCII
/// byte, so every cut is a character boundary).
fn ascii_tokens(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            return None;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        Some((start, &s[start..i]))
    })
}

/// How many leading tokens may precede the level (date, time, pid,
/// thread, `---`): Spring Boot puts it third, log4j's `%t %p` second.
const MAX_TOKENS: usize = 6;

/// The level a message's layout states, if it states one.
pub fn level_in_text(msg: &str) -> Option<Level> {
    let head = msg.trim_start();
    if let Some(l) = klog(head) {
        return Some(l);
    }
    if let Some((l, _)) = redis(head) {
        return Some(l);
    }
    split_level(past_bracketed_time(head)).map(|(l, _)| l)
}

/// [`level_in_text`] and, in the same pass, the parts of an application
/// layout after the level when the header is one (see
/// [`split_app_layout`]): the level is read once, whether or not the rest
/// of the layout is there.
pub fn layout_in_text(msg: &str) -> Option<(Level, Option<AppTail<'_>>)> {
    let head = msg.trim_start();
    if let Some(k) = klog_line(head) {
        let tail = AppTail {
            logger: Some(k.logger),
            thread: Some(k.thread),
            message: k.message,
        };
        return Some((k.level, Some(tail)));
    }
    if let Some(l) = klog(head) {
        return Some((l, None));
    }
    if let Some((level, message)) = redis(head) {
        let tail = AppTail {
            logger: None,
            thread: None,
            message,
        };
        return Some((level, Some(tail)));
    }
    let head = past_bracketed_time(head);
    let (level, after) = split_level(head)?;
    let tail = python_tail(head, after).or_else(|| app_layout_tail(head, after));
    Some((level, tail))
}

/// Python logging's common layout after its level,
/// `2023-01-29 16:42:22,382 - app.db - WARNING - msg`: the logger between
/// the dashes before the level, the statement after the one following it
/// (as the `plain` preset reads such a line from a file).
pub(crate) fn python_tail(head: &str, after: usize) -> Option<AppTail<'_>> {
    let message = head[after..].trim_start().strip_prefix("- ")?.trim_start();
    let (before, token) = head[..after].trim_end().rsplit_once(char::is_whitespace)?;
    if !token.bytes().all(|b| b.is_ascii_uppercase()) || message.is_empty() {
        return None;
    }
    let before = before.trim_end().strip_suffix(" -")?.trim_end();
    let logger = match before.rsplit_once(" - ") {
        Some((_, l)) => Some(l.trim()).filter(|l| !l.is_empty()),
        // `%(asctime)s - %(levelname)s - %(message)s`: no logger, the
        // time right before the level. Only after a time, so that prose
        // such as `ERROR - something broke` is not read as this layout.
        None => ends_with_time(before).then_some(None)?,
    };
    if logger.is_some_and(|l| l.contains(char::is_whitespace)) {
        return None;
    }
    Some(AppTail {
        logger,
        thread: None,
        message,
    })
}

/// Whether the last token of `s` is a clock time (`08:00:01,123`,
/// `2023-01-30T08:00:01.123Z`): a digit first, a colon in it.
fn ends_with_time(s: &str) -> bool {
    let last = s
        .rsplit(|c: char| c.is_ascii_whitespace())
        .next()
        .unwrap_or("");
    last.starts_with(|c: char| c.is_ascii_digit()) && last.contains(':')
}

/// Redis' own layout, `pid:role dd Mon yyyy hh:mm:ss.mmm <mark> msg`
/// (before 3.0 `[pid] dd Mon hh:mm:ss.mmm <mark> msg`), whose level is a
/// mark (`server.c`'s `serverLogRaw`: `.` debug, `-` verbose, `*` notice,
/// `#` warning), and the statement after it. Read only after the pid
/// token Redis starts every line with, so a `#` or `-` in prose is not a
/// level.
pub(crate) fn redis(head: &str) -> Option<(Level, &str)> {
    redis_line(head).map(|(level, _, message)| (level, message))
}

/// [`redis`], with the date and time between the pid and the mark
/// (`29 Jan 2023 16:42:22.382`, or `14 Nov 07:01:22.119` before 3.0).
pub(crate) fn redis_line(head: &str) -> Option<(Level, &str, &str)> {
    let mut tokens = ascii_tokens(head);
    let (at, first) = tokens.next()?;
    let date_from = at + first.len();
    let pid = match first.split_once(':') {
        Some((pid, "M" | "S" | "C" | "X")) => pid,
        _ => first.strip_prefix('[')?.strip_suffix(']')?,
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The date's three or two tokens, then the time, then the mark.
    let mut seen_time = false;
    for (at, t) in tokens.take(5) {
        if seen_time {
            let level = match t {
                "#" => Level::Warn,
                "*" => Level::Info,
                "-" | "." => Level::Debug,
                _ => return None,
            };
            let when = head[date_from..at].trim();
            return Some((level, when, head[at + 1..].trim_start()));
        }
        seen_time = t.starts_with(|c: char| c.is_ascii_digit()) && t.contains(':');
    }
    None
}

/// `head` after a leading bracketed time with spaces in it (Apache's
/// error log, `[Mon Jan 05 10:00:00.382123 2026] [core:error] ...`), which
/// would otherwise be five tokens of prose before the level; else `head`.
fn past_bracketed_time(head: &str) -> &str {
    let Some(inner) = head.strip_prefix('[') else {
        return head;
    };
    match inner.find(']') {
        Some(close)
            if close <= 40
                && inner[..close].contains(' ')
                && inner[..close].bytes().filter(u8::is_ascii_digit).count() >= 6 =>
        {
            inner[close + 1..].trim_start()
        }
        _ => head,
    }
}

/// A klog/glog line (Kubernetes components, Go programs using glog) read
/// whole: see [`klog_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Klog<'a> {
    /// From the header's letter.
    pub level: Level,
    /// Month (klog writes no year).
    pub month: u32,
    /// Day of the month.
    pub day: u32,
    /// `hh:mm:ss.uuuuuu`.
    pub time: &'a str,
    /// The thread id.
    pub thread: &'a str,
    /// `file.go:line`, where the statement is.
    pub logger: &'a str,
    /// After the header's `] `.
    pub message: &'a str,
}

/// `Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg` split into its parts,
/// or `None` when the line is not klog's or a part is missing.
pub fn klog_line(s: &str) -> Option<Klog<'_>> {
    let level = klog(s)?;
    let month = s.get(1..3)?.parse().ok().filter(|m| (1..=12).contains(m))?;
    let day = s.get(3..5)?.parse().ok().filter(|d| (1..=31).contains(d))?;
    let (time, rest) = s.get(6..)?.split_once(' ')?;
    let (thread, rest) = rest.trim_start().split_once(' ')?;
    let (logger, message) = rest.split_once(']')?;
    if logger.is_empty() || logger.contains(char::is_whitespace) {
        return None;
    }
    Some(Klog {
        level,
        month,
        day,
        time,
        thread,
        logger,
        message: message.strip_prefix(' ').unwrap_or(message),
    })
}

/// The level a layout states in its first few tokens (as
/// [`level_in_text`], without klog's), and the byte offset just after the
/// level's token: where the rest of the line (thread, logger, message)
/// starts.
pub fn split_level(head: &str) -> Option<(Level, usize)> {
    let mut tokens = ascii_tokens(head).take(MAX_TOKENS).peekable();
    let mut first = true;
    while let Some((start, token)) = tokens.next() {
        let end = start + token.len();
        // Between tabs, a level word may be lower case: zap's console
        // encoder writes `time\tinfo\tcaller\tmessage` (prose does not put
        // tabs around its words).
        let tabbed = start > 0
            && head.as_bytes()[start - 1] == b'\t'
            && head.as_bytes().get(end) == Some(&b'\t');
        let level = level_token(token, first)
            .or_else(|| tabbed.then(|| word_level(token, false)).flatten());
        if let Some(l) = level {
            return Some((l, end));
        }
        first = false;
        // A logger name between ` - ` separators (Python's
        // `%(asctime)s - %(name)s - %(levelname)s`) is part of the header.
        let separated = tokens.peek().is_some_and(|(_, t)| *t == "-");
        if !is_prefix_token(token) && !separated {
            // Free text has started: a level later on is prose.
            return None;
        }
    }
    None
}

/// What follows the level in an application layout: Spring Boot's
/// `pid --- [thread]` (`[app] [thread]` since 3.2), bracketed threads or
/// contexts (`[main]`, `[   main]`), then the logger (a dotted name:
/// `c.s.ContactsServiceImpl#37`, `org.apache.catalina.core.StandardEngine`)
/// and the message after its `: ` or `- `. The thread is the last
/// bracketed group before the logger, trimmed; the logger is None when the
/// next token is no dotted name, and the message is then everything after
/// the brackets.
pub fn logger_and_message(after_level: &str) -> AppTail<'_> {
    let mut rest = after_level.trim_start();
    // Spring Boot: `45469 --- [thread]` (and `[app]` since 3.2). Byte
    // tests, not a substring search: this runs on every shipped record.
    let pid = rest.bytes().take_while(u8::is_ascii_digit).count();
    if pid > 0 && rest.as_bytes()[pid..].starts_with(b" --- ") {
        rest = rest[pid + 5..].trim_start();
    }
    let mut thread = None;
    while rest.starts_with('[') {
        // A thread name may be padded inside its brackets (`[   main]`).
        match rest.as_bytes().windows(2).position(|w| w == b"] ") {
            Some(close) => {
                thread = Some(rest[1..close].trim()).filter(|t| !t.is_empty());
                rest = rest[close + 2..].trim_start();
            }
            None => break,
        }
    }
    if let Some((logger, msg)) = split_ws(rest) {
        if logger.contains('.') && !logger.starts_with('.') {
            let msg = msg.trim_start();
            let msg = msg
                .strip_prefix(": ")
                .or_else(|| msg.strip_prefix("- "))
                .unwrap_or(msg);
            return AppTail {
                logger: Some(logger),
                thread,
                message: msg,
            };
        }
    }
    AppTail {
        logger: None,
        thread,
        message: rest,
    }
}

/// The parts of an application layout after its level (see
/// [`logger_and_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppTail<'a> {
    /// The logger's dotted name, when one follows the threads.
    pub logger: Option<&'a str>,
    /// The last bracketed group before the logger, trimmed.
    pub thread: Option<&'a str>,
    /// The statement: after the logger's separator, or everything after
    /// the threads when there is no logger.
    pub message: &'a str,
}

/// What follows the level that ends at `after` in `head` (see
/// [`split_level`]), as [`logger_and_message`] reads it, with the thread
/// log4j's and logback's `%d [%t] %-5p` put before the level when none
/// follows it: the last bracketed token of the header, the level's own
/// token (`[ERROR]`) not counted.
pub fn app_tail(head: &str, after: usize) -> AppTail<'_> {
    let mut tail = logger_and_message(&head[after..]);
    if tail.thread.is_none() {
        let header = head[..after]
            .trim_end()
            .rsplit_once(|c: char| c.is_ascii_whitespace())
            .map_or("", |(h, _)| h);
        tail.thread = header
            .split(|c: char| c.is_ascii_whitespace())
            .filter(|t| t.len() > 2 && t.starts_with('[') && t.ends_with(']'))
            .map(|t| &t[1..t.len() - 1])
            .next_back();
    }
    tail
}

/// A message that starts with an application layout's header (a time, an
/// upper-case level word, threads, a dotted logger), split into its level,
/// its logger and the statement after them: what a shipper's parser
/// (Fluent Bit's `multiline.parser java`, Vector's `parse_regex`) would
/// have made of it. None when the text states no level this way or names
/// no logger after it: a `level=error` pair, a bracketed `[error]` or prose
/// keep their text whole.
///
/// Why it matters beyond the level: a template miner that sees the header
/// sees every line start with the same masked time, level and logger and
/// a constant `TraceID: <*> SpanID: <*>`; those shared tokens outweigh the
/// statement's own words, and unrelated statements fuse into one template.
/// loghub's benchmarks mine the `Content` after the header for this reason.
pub fn split_app_layout(msg: &str) -> Option<(Level, AppTail<'_>)> {
    match layout_in_text(msg)? {
        (level, Some(tail)) => Some((level, tail)),
        (_, None) => None,
    }
}

/// The parts after the level of `head` (ending at `after`) when the
/// header is an application layout's: the level an upper-case word, a
/// dotted logger after it, a statement after that.
fn app_layout_tail(head: &str, after: usize) -> Option<AppTail<'_>> {
    let token = head[..after]
        .rsplit(|c: char| c.is_ascii_whitespace())
        .next()
        .unwrap_or_default();
    if !token.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let tail = app_tail(head, after);
    (tail.logger.is_some() && !tail.message.is_empty()).then_some(tail)
}

/// A token without the brackets, quotes and separators a layout prints
/// around an id (`[6f3c...]`, `(576f...)`, `6f3c...,`).
fn without_id_punctuation(t: &str) -> &str {
    t.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')' | ',' | ';' | '"' | '\''))
}

/// A statement without the trace context a layout printed before it
/// (`TraceID: 6f3c... SpanID: 576f... [query]...`, `trace_id=6f3c span_id=...`,
/// `[6f3c,576f]`): leading tokens that are one of the record's own trace or
/// span ids, with the label before each. The record carries the ids as
/// fields already; in the text they are values every line has, which a
/// template miner would weigh as much as the statement's words. Only
/// leading tokens go: an id quoted inside the statement is part of it.
pub fn strip_trace_context<'a>(msg: &'a str, ids: &[&str]) -> &'a str {
    if !ids.iter().any(|i| i.len() >= 8) {
        return msg;
    }
    let known = |v: &[u8]| ids.iter().any(|i| i.len() >= 8 && i.as_bytes() == v);
    // Byte tests only: this runs on every shipped record with a layout.
    let is_id = |t: &str| {
        let t = without_id_punctuation(t).as_bytes();
        if t.len() < 8 {
            return false;
        }
        let v = match t.iter().position(|&c| c == b'=' || c == b':') {
            Some(p) => &t[p + 1..],
            None => t,
        };
        known(v) || (t.contains(&b',') && t.split(|&c| c == b',').all(known))
    };
    let mut rest = msg.trim_start();
    loop {
        let (first, tail) = split_ws(rest).unwrap_or((rest, ""));
        if first.is_empty() {
            return rest;
        }
        if is_id(first) {
            rest = tail.trim_start();
            continue;
        }
        // A label (`TraceID:`, `trace_id=`) followed by an id.
        if first.ends_with(':') || first.ends_with('=') {
            let tail = tail.trim_start();
            let (next, after) = split_ws(tail).unwrap_or((tail, ""));
            if !next.is_empty() && is_id(next) {
                rest = after.trim_start();
                continue;
            }
        }
        return rest;
    }
}

/// `s` without its terminal escape sequences: the colours a console
/// layout writes (Spring Boot with `spring.output.ansi.enabled=always`,
/// winston's `colorize`, zap's and logrus' coloured levels,
/// `\x1b[31mERROR\x1b[0m`) hide the level from every layout test and put
/// escape codes into templates. CSI sequences (`ESC [` parameters,
/// intermediates, a final byte) and two-byte escapes go; every cut is at
/// an ASCII byte, so the rest stays valid UTF-8. Call it only on text
/// holding an ESC (`\x1b`).
pub fn strip_ansi(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut i, mut seg) = (0, 0);
    while i < b.len() {
        if b[i] != 0x1b {
            i += 1;
            continue;
        }
        out.push_str(&s[seg..i]);
        let mut j = i + 1;
        match b.get(j) {
            Some(b'[') => {
                j += 1;
                while b.get(j).is_some_and(|c| (0x30..=0x3f).contains(c)) {
                    j += 1;
                }
                while b.get(j).is_some_and(|c| (0x20..=0x2f).contains(c)) {
                    j += 1;
                }
                if b.get(j).is_some_and(|c| (0x40..=0x7e).contains(c)) {
                    j += 1;
                }
            }
            Some(c) if (0x40..=0x5f).contains(c) => j += 1,
            _ => {}
        }
        i = j;
        seg = j;
    }
    out.push_str(&s[seg..]);
    out
}

/// The trace and span ids a layout printed before its statement, labelled
/// (`TraceID: 6f3c... SpanID: 576f...`, `trace_id=6f3c... span_id=...`,
/// `traceId:6f3c...`), for a record that carries none as fields (a line
/// read from a file rather than shipped with its trace context). Only the
/// leading tokens are read, as [`strip_trace_context`] strips them; an id
/// is at least 8 characters of hex digits or `-`. The span is empty when
/// none is printed.
pub fn printed_trace_ids(msg: &str) -> Option<(&str, &str)> {
    // The label's letters and digits, lower-cased, against each name
    // (no allocation: this runs on records without trace fields).
    let label = |t: &str| -> Option<bool> {
        let is = |name: &str| {
            t.bytes()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| b.to_ascii_lowercase())
                .eq(name.bytes())
        };
        if ["traceid", "trace", "xb3traceid", "ddtraceid"]
            .into_iter()
            .any(is)
        {
            Some(true)
        } else if ["spanid", "span", "xb3spanid", "ddspanid"]
            .into_iter()
            .any(is)
        {
            Some(false)
        } else {
            None
        }
    };
    fn id(v: &str) -> Option<&str> {
        let v = without_id_punctuation(v);
        (v.len() >= 8 && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(v)
    }
    let (mut trace, mut span) = (None, "");
    let mut rest = msg.trim_start();
    for _ in 0..4 {
        let (first, tail) = split_ws(rest).unwrap_or((rest, ""));
        // `label: id` (two tokens) or `label=id` / `label:id` (one).
        let (name, value, after) = match first.find(['=', ':']) {
            Some(p) if p + 1 < first.len() => (&first[..p], &first[p + 1..], tail),
            Some(p) => {
                let tail = tail.trim_start();
                let (next, after) = split_ws(tail).unwrap_or((tail, ""));
                (&first[..p], next, after)
            }
            None => break,
        };
        let (Some(is_trace), Some(value)) = (label(name), id(value)) else {
            break;
        };
        if is_trace {
            trace = Some(value);
        } else {
            span = value;
        }
        rest = after.trim_start();
    }
    trace.map(|t| (t, span))
}

/// One token as a level: `ERROR`, `[error]`, `<warn>`, `level=error`,
/// `ERROR:root:msg` (Python's basicConfig, first token only).
fn level_token(token: &str, first: bool) -> Option<Level> {
    if let Some(v) = token
        .strip_prefix("level=")
        .or_else(|| token.strip_prefix("lvl="))
        .or_else(|| token.strip_prefix("severity="))
    {
        return Level::parse(v.trim_matches('"'));
    }
    // `[warn]`, and `[warn]:` as winston's and log4js' layouts write it.
    let bracketed = |open: char, close: char| {
        token.strip_prefix(open).and_then(|t| {
            t.strip_suffix(close)
                .or_else(|| t.strip_suffix(':').and_then(|t| t.strip_suffix(close)))
        })
    };
    if let Some(inner) = bracketed('[', ']').or_else(|| bracketed('<', '>')) {
        // Apache 2.4 writes `[module:level]`.
        let word = inner.rsplit(':').next().unwrap_or(inner);
        return word_level(word, false);
    }
    let bare = token.trim_end_matches([':', ',', '|']);
    if let Some(l) = word_level(bare, true) {
        return Some(l);
    }
    if first {
        // `ERROR:root:message`
        if let Some((w, rest)) = token.split_once(':') {
            // winston's default `${level}: ${message}` (`error: ...`), in
            // lower case but only as the whole first token.
            if rest.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()) {
                return word_level(w, false);
            }
            return word_level(w, true);
        }
    }
    None
}

/// A level word. Bare words must be upper case, and one-letter forms are
/// never taken: `I`, `E` or `A` are words too.
fn word_level(w: &str, need_upper: bool) -> Option<Level> {
    if w.len() < 3 || w.len() > 9 {
        return None;
    }
    if need_upper && !w.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    match Level::parse(w)? {
        // `Level::parse` also takes words such as `failure` and `alert`
        // that are common in prose; as a layout token only the usual names
        // count.
        l if KNOWN.iter().any(|k| k.eq_ignore_ascii_case(w)) => Some(l),
        _ => None,
    }
}

const KNOWN: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "SEVERE", "FATAL",
    "CRITICAL", "CRIT", "EMERG", "PANIC", "FINE", "FINER", "FINEST",
    // PostgreSQL's `LOG:`, MySQL 8's `[System]` and `[Note]`.
    "LOG", "SYSTEM", "NOTE",
];

/// A token that may stand before the level in a layout: dates, times,
/// numbers (pids), `---`, `-`, `[thread]`, `time="..."`, timezone names.
fn is_prefix_token(t: &str) -> bool {
    let t = t.trim_end_matches([',', ':', '|']);
    if t.is_empty() || t.bytes().all(|b| b == b'-') {
        return true;
    }
    if t.starts_with('[') && t.ends_with(']') {
        return true;
    }
    if t.starts_with("time=") || t.starts_with("ts=") {
        return true;
    }
    if t.len() <= 4 && t.bytes().all(|b| b.is_ascii_uppercase()) {
        // `UTC`, `CET`, `Z`
        return true;
    }
    let b = t.as_bytes();
    // Tomcat JULI's date: 05-Mar-2019.
    if b.len() == 11
        && b[2] == b'-'
        && b[6] == b'-'
        && b[..2].iter().chain(&b[7..]).all(u8::is_ascii_digit)
        && b[3..6].iter().all(u8::is_ascii_alphabetic)
    {
        return true;
    }
    // Mostly digits with date/time punctuation: 2023-01-29, 16:42:22.382,
    // 2023-01-29T16:42:22.382Z, 12345, +0000, 2023/01/29.
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    digits > 0
        && b.iter().all(|c| {
            c.is_ascii_digit() || matches!(c, b'-' | b':' | b'.' | b',' | b'/' | b'+' | b'T' | b'Z')
        })
}

/// klog/glog: `Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg` with `L` one
/// of I, W, E, F.
fn klog(s: &str) -> Option<Level> {
    let b = s.as_bytes();
    if b.len() < 15 || !b[1..5].iter().all(u8::is_ascii_digit) || b[5] != b' ' {
        return None;
    }
    if !(b[6].is_ascii_digit() && b[7].is_ascii_digit() && b[8] == b':') {
        return None;
    }
    // The header ends with `file.go:line]` before the message.
    let head = &s[..s.len().min(80)];
    if !head.contains("] ") && !head.ends_with(']') {
        return None;
    }
    Some(match b[0] {
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' => Level::Fatal,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The byte scans cut where the char scans they replace cut, on
        /// any text (Unicode spaces, vertical tabs, multi-byte letters).
        #[test]
        fn byte_scans_cut_where_char_scans_do(s in "[ \t\n\x0B\x0C\r\x01\x7Fa-z.:\u{a0}\u{3000}\u{85}é日]{0,24}") {
            proptest::prop_assert_eq!(split_ws(&s), s.split_once(char::is_whitespace));
            let by_char: Vec<&str> = s
                .split(|c: char| c.is_ascii_whitespace())
                .filter(|t| !t.is_empty())
                .collect();
            let by_byte: Vec<&str> = ascii_tokens(&s).map(|(_, t)| t).collect();
            proptest::prop_assert_eq!(&by_byte, &by_char);
            for (start, t) in ascii_tokens(&s) {
                proptest::prop_assert_eq!(&s[start..start + t.len()], t);
            }
        }
    }

    fn lv(s: &str) -> Option<Level> {
        level_in_text(s)
    }

    #[test]
    fn java_layouts() {
        // TrainTicket's logback pattern (Nezha dataset, as Fluent Bit ships it).
        assert_eq!(
            lv("16:42:22.382 ERROR c.s.ContactsServiceImpl#37 TraceID: 6f3c SpanID: 576f [findContactsById]"),
            Some(Level::Error)
        );
        assert_eq!(
            lv("16:42:09.486 INFO  t.c.Travel2Controller#115 TraceID: 6f3c [query]"),
            Some(Level::Info)
        );
        // Spring Boot's default console pattern (Spring Boot reference, "Logging").
        assert_eq!(
            lv("2019-03-05 10:57:51.112  INFO 45469 --- [           main] org.apache.catalina.core.StandardEngine  : Starting Servlet Engine"),
            Some(Level::Info)
        );
        assert_eq!(
            lv("2023-10-05T14:48:00.000+02:00  WARN 1 --- [main] o.s.b.StartupInfoLogger : slow start"),
            Some(Level::Warn)
        );
        // log4j's `%d [%t] %-5p %c - %m%n` and logback's default.
        assert_eq!(
            lv("2023-01-29 16:42:22,382 [http-nio-8080-exec-1] ERROR com.example.Foo - boom"),
            Some(Level::Error)
        );
        assert_eq!(
            lv("17:12:44.123 [main] DEBUG com.example.App - starting"),
            Some(Level::Debug)
        );
        // Tomcat's OneLineFormatter (catalina.out), shipped as it is.
        assert_eq!(
            lv("05-Mar-2019 10:58:11.902 SEVERE [http-nio-8080-exec-6] o.a.c.c.StandardWrapperValve.invoke boom"),
            Some(Level::Error)
        );
        // java.util.logging's SEVERE.
        assert_eq!(
            lv("SEVERE: Servlet.service() threw exception"),
            Some(Level::Error)
        );
    }

    #[test]
    fn python_and_go_layouts() {
        // Python logging.basicConfig default and a common formatter.
        assert_eq!(lv("ERROR:root:connection refused"), Some(Level::Error));
        assert_eq!(
            lv("2023-01-29 16:42:22,382 - app.db - WARNING - pool exhausted"),
            Some(Level::Warn)
        );
        // zap's console encoder writes lower-case levels between tabs;
        // a bare lower-case word between spaces is prose, not a level.
        assert_eq!(
            lv("2023-01-29T16:42:22.382Z\terror\tpayments/charge.go:88\tcharge failed"),
            Some(Level::Error)
        );
        assert_eq!(lv("2023-01-29T16:42:22.382Z info about the job"), None);
        assert_eq!(lv("2023-01-29 16:42:22 error while reading"), None);
        assert_eq!(
            lv("2023-01-29T16:42:22.382Z\tERROR\tpayments\tcharge failed"),
            Some(Level::Error)
        );
        // logrus' text formatter.
        assert_eq!(
            lv("time=\"2023-01-29T16:42:22Z\" level=warning msg=\"slow query\""),
            Some(Level::Warn)
        );
        // Apache 2.4's error log and nginx's, as a shipper sends them.
        assert_eq!(
            lv("[Mon Jan 05 10:00:00.382123 2026] [core:error] [pid 123:tid 456] [client 10.0.0.1:5555] AH00037: Symbolic link not allowed"),
            Some(Level::Error)
        );
        assert_eq!(
            lv("[Mon Jan 05 10:00:01.000000 2026] [mpm_event:notice] [pid 1:tid 1] AH00489: resuming normal operations"),
            Some(Level::Info)
        );
        assert_eq!(
            lv("2026/01/05 10:00:00 [error] 29#29: *1 connect() failed (111: Connection refused)"),
            Some(Level::Error)
        );
        // A bracketed note is not a time to skip.
        assert_eq!(lv("[see below] error in the config"), None);
        // klog (Kubernetes components).
        assert_eq!(
            lv("E0129 16:42:22.382123       1 reflector.go:138] failed to list"),
            Some(Level::Error)
        );
        assert_eq!(
            lv("I0129 16:42:22.382123   12345 main.go:12] started"),
            Some(Level::Info)
        );
    }

    #[test]
    fn web_server_error_logs() {
        assert_eq!(
            lv("2023/01/29 16:42:22 [error] 29#29: *1 connect() failed (111: Connection refused)"),
            Some(Level::Error)
        );
        // Apache's bracketed date is passed over: shipped inside a JSON
        // record, the line has no parser of its own to read its level.
        assert_eq!(
            lv("[Sun Jan 29 16:42:22.382 2023] [core:error] [pid 123] AH00037: Symbolic link not allowed"),
            Some(Level::Error)
        );
        assert_eq!(lv("[WARN] disk almost full"), Some(Level::Warn));
    }

    fn tail<'a>(logger: Option<&'a str>, thread: Option<&'a str>, message: &'a str) -> AppTail<'a> {
        AppTail {
            logger,
            thread,
            message,
        }
    }

    #[test]
    fn an_application_header_splits_into_level_logger_and_statement() {
        assert_eq!(
            split_app_layout(
                "16:42:22.382 ERROR c.s.ContactsServiceImpl#37 TraceID: a SpanID: b [x]"
            ),
            Some((
                Level::Error,
                tail(
                    Some("c.s.ContactsServiceImpl#37"),
                    None,
                    "TraceID: a SpanID: b [x]"
                )
            ))
        );
        // log4j's `%d [%t] %-5p %c - %m%n`: the thread before the level.
        assert_eq!(
            split_app_layout(
                "2023-01-29 16:42:22,382 [http-nio-8080-exec-1] ERROR com.example.Foo - boom"
            ),
            Some((
                Level::Error,
                tail(
                    Some("com.example.Foo"),
                    Some("http-nio-8080-exec-1"),
                    "boom"
                )
            ))
        );
        // Spring Boot, its thread padded; 3.2's `[app]` before the thread.
        assert_eq!(
            split_app_layout("2019-03-05 10:57:51.112  INFO 45469 --- [           main] org.apache.catalina.core.StandardEngine  : Starting Servlet Engine"),
            Some((Level::Info, tail(Some("org.apache.catalina.core.StandardEngine"), Some("main"), "Starting Servlet Engine")))
        );
        assert_eq!(
            split_app_layout("2023-11-23T09:00:00.000Z  INFO 1 --- [myapp] [           main] o.s.b.SpringApplication : Started"),
            Some((Level::Info, tail(Some("o.s.b.SpringApplication"), Some("main"), "Started")))
        );
        // A bracketed level is no thread (plain files read it too).
        let head = "2023-01-29 16:42:22,382 [ERROR] com.example.Foo - boom";
        let (level, after) = split_level(head).unwrap();
        assert_eq!(level, Level::Error);
        assert_eq!(
            app_tail(head, after),
            tail(Some("com.example.Foo"), None, "boom")
        );
        let head = "2023-01-29 16:42:22,382 [exec-1] [ERROR] com.example.Foo - boom";
        let (_, after) = split_level(head).unwrap();
        assert_eq!(app_tail(head, after).thread, Some("exec-1"));
        // No dotted logger after the level, a `key=value` level, a
        // bracketed level, prose: nothing to split.
        assert_eq!(split_app_layout("17:12:44.123 INFO starting up"), None);
        assert_eq!(split_app_layout("level=error msg=boom"), None);
        assert_eq!(split_app_layout("[error] c.e.Foo boom"), None);
        assert_eq!(split_app_layout("retrying after ERROR c.e.Foo"), None);
    }

    /// Node's loggers: winston's default `level: message` and bracketed
    /// `[level]:` (winston's and log4js' printf layouts).
    #[test]
    fn node_layouts_state_their_level() {
        assert_eq!(level_in_text("error: charge failed"), Some(Level::Error));
        assert_eq!(
            level_in_text("2023-01-30T08:00:01.123Z [warn]: slow charge"),
            Some(Level::Warn)
        );
        assert_eq!(
            level_in_text("[2023-01-30T08:00:01.123] [ERROR] cheese - boom"),
            Some(Level::Error)
        );
        // Lower case only as the whole first token before its colon.
        assert_eq!(level_in_text("errors: 0 so far"), None);
        assert_eq!(level_in_text("info:root:message"), None);
    }

    /// Coloured console layouts: the colours go, the level is read.
    #[test]
    fn terminal_colours_are_not_text() {
        assert_eq!(
            strip_ansi("\x1b[31merror\x1b[39m: charge failed \u{e9}\x1b[0m"),
            "error: charge failed \u{e9}"
        );
        assert_eq!(strip_ansi("a\x1b[1;31mb\x1bMc\x1b"), "abc");
        let spring = strip_ansi(
            "2023-01-30 08:00:01.123 \x1b[31mERROR\x1b[0;39m \x1b[35m1\x1b[0;39m \x1b[2m---\x1b[0;39m \x1b[2m[main]\x1b[0;39m \x1b[36mc.e.PaymentService\x1b[0;39m \x1b[2m:\x1b[0;39m charge failed",
        );
        let (level, tail) = layout_in_text(&spring).unwrap();
        assert_eq!(level, Level::Error);
        assert_eq!(tail.unwrap().message, "charge failed");
    }

    /// Redis marks its level with a character after the time.
    #[test]
    fn redis_marks_its_level() {
        for (line, level, message) in [
            (
                "1:M 29 Jan 2023 16:42:22.382 # WARNING overcommit_memory is set to 0!",
                Level::Warn,
                "WARNING overcommit_memory is set to 0!",
            ),
            (
                "1:C 29 Jan 2023 16:42:22.382 * Ready to accept connections",
                Level::Info,
                "Ready to accept connections",
            ),
            (
                "7:S 29 Jan 2023 16:42:22.382 - Accepted 10.0.0.7:52312",
                Level::Debug,
                "Accepted 10.0.0.7:52312",
            ),
            (
                "[4018] 14 Nov 07:01:22.119 # Can't save in background: fork: Cannot allocate memory",
                Level::Warn,
                "Can't save in background: fork: Cannot allocate memory",
            ),
        ] {
            assert_eq!(level_in_text(line), Some(level), "{line}");
            let (l, tail) = layout_in_text(line).unwrap();
            assert_eq!((l, tail.unwrap().message), (level, message), "{line}");
        }
        // A pid-like first token alone is not Redis' layout.
        assert_eq!(level_in_text("1:M of 3 shards # not a level"), None);
        assert_eq!(level_in_text("12:30 29 Jan 2023 16:42:22.382 # x"), None);
    }

    /// Python logging's `asctime - name - LEVEL - message`, as a shipper
    /// that ran no parser sends it: the statement and the logger.
    #[test]
    fn python_logging_in_a_shipped_text() {
        let (level, tail) = layout_in_text(
            "2023-01-30 08:00:01,123 - app.payment - ERROR - charge failed - retrying",
        )
        .unwrap();
        assert_eq!(level, Level::Error);
        let tail = tail.unwrap();
        assert_eq!(tail.logger, Some("app.payment"));
        assert_eq!(tail.message, "charge failed - retrying");
        // `%(asctime)s - %(levelname)s - %(message)s`: no logger.
        for line in [
            "2023-01-30 08:00:01,123 - WARNING - pool exhausted",
            "2023-01-30T08:00:01.123Z - WARNING - pool exhausted",
        ] {
            let (level, tail) = layout_in_text(line).unwrap();
            assert_eq!(level, Level::Warn);
            let tail = tail.unwrap();
            assert_eq!((tail.logger, tail.message), (None, "pool exhausted"));
        }
        // Not that layout: a dash in prose after a level.
        let (_, tail) = layout_in_text("ERROR - something broke").unwrap();
        assert!(
            tail.is_none_or(|t| t.message != "something broke"),
            "{tail:?}"
        );
    }

    /// A line read from a file carries no trace fields: the ids its
    /// layout printed first are its trace.
    #[test]
    fn printed_trace_context_names_the_trace() {
        let (t, s) = ("6f3cbf058c2765548a39ad724905d6a1", "576f9c38fc25e197");
        for line in [
            format!("TraceID: {t} SpanID: {s} [query] ok"),
            format!("trace_id={t} span_id={s} [query] ok"),
            format!("traceId:{t} spanId:{s} [query] ok"),
        ] {
            assert_eq!(printed_trace_ids(&line), Some((t, s)), "{line}");
        }
        assert_eq!(printed_trace_ids(&format!("trace={t} x")), Some((t, "")));
        // Not leading, not labelled as a trace, or not an id: none.
        for line in [
            format!("lookup TraceID: {t}"),
            format!("user_id={t} x"),
            "TraceID: n/a x".to_string(),
            "TraceID: 1234 x".to_string(),
        ] {
            assert_eq!(printed_trace_ids(&line), None, "{line}");
        }
    }

    #[test]
    fn only_leading_trace_context_leaves_the_statement() {
        let ids = ["6f3cbf058c2765548a39ad724905d6a1", "576f9c38fc25e197"];
        assert_eq!(
            strip_trace_context(
                "TraceID: 6f3cbf058c2765548a39ad724905d6a1 SpanID: 576f9c38fc25e197 [query] ok",
                &ids
            ),
            "[query] ok"
        );
        assert_eq!(
            strip_trace_context(
                "trace_id=6f3cbf058c2765548a39ad724905d6a1 span_id=576f9c38fc25e197 GET /cart",
                &ids
            ),
            "GET /cart"
        );
        assert_eq!(
            strip_trace_context(
                "[6f3cbf058c2765548a39ad724905d6a1,576f9c38fc25e197] done",
                &ids
            ),
            "done"
        );
        // An id inside the statement stays; other ids are not the record's.
        assert_eq!(
            strip_trace_context("lookup of 576f9c38fc25e197 failed", &ids),
            "lookup of 576f9c38fc25e197 failed"
        );
        assert_eq!(
            strip_trace_context("TraceID: 0000000000000000 x", &ids),
            "TraceID: 0000000000000000 x"
        );
        // Short ids (a `1`) are never taken for context.
        assert_eq!(strip_trace_context("1 apple", &["1"]), "1 apple");
    }

    #[test]
    fn prose_is_not_a_level() {
        assert_eq!(lv("retrying after error in upstream"), None);
        assert_eq!(lv("GET /api/error 200"), None);
        assert_eq!(lv("user logged in, no ERROR"), None);
        assert_eq!(lv("Error: something"), None, "a capitalised word is prose");
        assert_eq!(lv("ALERT the operator"), None);
        assert_eq!(lv(""), None);
        assert_eq!(lv("E1234"), None);
    }
}
