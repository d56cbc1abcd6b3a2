//! Multi-line records: an exception's stack trace and other continuation
//! lines join the record that starts them.
//!
//! A Java `logger.error("...", e)` writes one header line and then the
//! trace (`java.net.SocketTimeoutException: ...`, `\tat ...`, `Caused by:
//! ...`, `... 12 more`); Python's `logging.exception` a header and a
//! `Traceback (most recent call last):` block; a Go panic a `panic:` line
//! and `goroutine N [running]:` frames. Read line by line, every one of
//! those lines would be a record of its own (or a dead letter in a plain
//! file), an exception would count as a dozen log records and its class
//! would be invisible. Here they become one record: the message stays the
//! first line (so templates are mined from the message, not the trace),
//! and the trace becomes evidence on it (`exception.type`,
//! `exception.message`, `exception.stacktrace` as the OpenTelemetry
//! semantic conventions name them, plus the top frame as `exception.frame`
//! and the innermost `Caused by:` class as `exception.cause`).
//!
//! *Method followed:* the built-in `java`, `python` and `go` multiline
//! parsers of Fluent Bit (`src/multiline/flb_ml_parser_{java,python,go}.c`,
//! themselves from Google's fluent-plugin-detect-exceptions): a small state
//! machine per stream, each state naming which lines continue the trace.
//! For plain files, where a line that does not parse has no header of its
//! own, an indented line also continues the record before it, as Vector's
//! `multiline` with `start_pattern = '^[^\s]'` and `mode =
//! "continue_through"` does. Lines join only a record of the same stream:
//! the origin for plain text, and for structured records the same service,
//! host, container, `stream`, process and file (a Kubernetes topic interleaves
//! many pods line by line).
//!
//! *Why the decision is the data's:* a record is complete when the next
//! record of its stream arrives (a continuation cannot come after that),
//! when its origin's newest record is [`HOLD_GAP_MS`] later in event time,
//! when more than [`MAX_HELD`] records or [`MAX_HELD_BYTES`] of their
//! lines are held, or when the input ends
//! ([`Joiner::flush`]). Shippers decide by a wall-clock timeout instead
//! (Fluent Bit's `flush_timeout`, Vector's `timeout_ms`); a timeout would
//! make replay and streaming disagree, this does not. Records leave in the
//! order they arrived, so joining never reorders what the analysis sees.
//! Bounds: a record takes at most [`MAX_LINES`] continuation lines and
//! `max_bytes` (the decoder's record cap) of their text; lines past either
//! still belong to the record (they are not records of their own) but
//! their text is left out and counted.

use models::{Event, FieldValue, Level, LogRecord, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A held record is complete once its origin has a record this much later
/// (event time): a trace's lines are written together, milliseconds apart.
pub const HOLD_GAP_MS: i64 = 2_000;

/// At most this many records are held per origin (a topic interleaving
/// many streams); beyond it the oldest is complete.
pub const MAX_HELD: usize = 1024;

/// Continuation text held per origin, all records together; beyond it
/// the oldest records are complete (a hostile stream of long traces must
/// not hold [`MAX_HELD`] times the record cap).
pub const MAX_HELD_BYTES: usize = 16 << 20;

/// Continuation lines kept per record (a deep Spring trace is a few
/// hundred); later ones are counted, not kept.
pub const MAX_LINES: u32 = 1000;

/// Where a record's trace is: which lines may come next. The states of
/// Fluent Bit's built-in parsers, merged into one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Java (or .NET): after an exception line, a frame, `Caused by:`.
    Java,
    /// Python: after `Traceback (most recent call last):` or a code line.
    Python,
    /// Python: after `  File "...", line N, in f`; its code line follows.
    PythonCode,
    /// Python: after the final `Type: message`; a chained traceback may
    /// follow (`During handling of the above exception ...`).
    PythonEnd,
    /// Go: after `panic:`, in the goroutine dump.
    Go,
    /// Indented lines of a plain file, no exception recognised.
    Indented,
}

/// What a record's continuation lines told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Current state; `None` while the record has no trace.
    pub state: Option<State>,
    /// The continuation lines, joined by `\n` (capped).
    pub text: String,
    /// Continuation lines taken.
    pub lines: u32,
    /// The exception's class (Java: the first exception line; Python: the
    /// final line of the last traceback; Go: `panic`).
    pub exception_type: Option<String>,
    /// Its message.
    pub exception_message: Option<String>,
    /// The top frame: where it was thrown (Java's first `at`, Python's
    /// last `File` line, Go's first function of the panicking goroutine).
    pub frame: Option<String>,
    /// Java: the innermost `Caused by:` class.
    pub cause: Option<String>,
}

/// What [`Joiner::step`] made of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The line continues the record, now in this state.
    Continue(State),
    /// Not a continuation.
    No,
}

/// One record waiting to see whether lines follow it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// Its stream (see [`stream_key`]).
    pub key: u64,
    /// The record (or another event, held only to keep the order).
    pub event: Event,
    /// Its trace so far (`None`: no continuation line yet).
    pub trace: Option<Box<Trace>>,
    /// Whether lines may still join it.
    pub open: bool,
}

/// What happened to a line offered to the [`Joiner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// It joined the open record of its stream.
    Joined,
    /// It joined, but the record was full: its text was left out.
    Truncated,
    /// It started a record of its own.
    Started,
    /// Not a continuation and not a start (plain text only: the caller
    /// dead-letters it).
    No,
}

/// The records of one origin held for their continuation lines. See the
/// module docs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Joiner {
    /// Held records, in arrival order.
    pub held: VecDeque<Held>,
    /// Newest event time of the origin.
    pub newest: Option<Timestamp>,
    /// Bytes of continuation text held.
    pub bytes: usize,
}

impl Joiner {
    /// A parsed event of a structured origin (JSON, logfmt, syslog): a
    /// log record whose message continues the open record of its stream
    /// joins it; anything else is held (a log record may be followed by
    /// its trace) and the complete records before it go to `out`.
    pub fn push_structured(
        &mut self,
        event: Event,
        max_bytes: usize,
        out: &mut Vec<Event>,
    ) -> Joined {
        let key = match &event {
            Event::Log(r) => Some(stream_key(r)),
            _ => None,
        };
        // A record with an HTTP status is a whole request (Traefik's
        // access log writes `"msg":""` on every one), never a line of
        // another record's trace, blank message or not.
        let request = matches!(&event, Event::Log(r) if r.fields.contains_key("status"));
        if let (Event::Log(r), Some(k), false) = (&event, key, request) {
            if let Some(i) = self.open_of(k) {
                let joined = self.join(i, &r.message, false, max_bytes);
                if joined != Joined::No {
                    self.release(out);
                    return joined;
                }
                self.held[i].open = false;
            }
        }
        self.hold(event, key, out);
        Joined::Started
    }

    /// A parsed record of a plain-text origin: a line with a header of its
    /// own starts a record, always.
    pub fn push_plain(&mut self, event: Event, out: &mut Vec<Event>) {
        if let Some(h) = self.held.back_mut() {
            h.open = false;
        }
        self.hold(event, None, out);
    }

    /// A line of a plain-text origin that its parser could not read: it
    /// joins the open record when it continues it, or starts a record of
    /// its own when it starts a trace that record cannot take (a second
    /// trace, a Go panic), with the time, service and host of the record
    /// before it. [`Joined::No`] otherwise.
    pub fn push_unparsed(&mut self, line: &str, max_bytes: usize, out: &mut Vec<Event>) -> Joined {
        let Some(last) = self.held.len().checked_sub(1) else {
            return Joined::No;
        };
        if self.held[last].open {
            let joined = self.join(last, line, true, max_bytes);
            if joined != Joined::No {
                self.release(out);
                return joined;
            }
        }
        let Some((state, level)) = starts(line) else {
            return Joined::No;
        };
        let Event::Log(before) = &self.held[last].event else {
            return Joined::No;
        };
        let mut r = LogRecord::new(before.timestamp, line.trim());
        r.service = before.service.clone();
        r.host = before.host.clone();
        r.container = before.container.clone();
        r.level = Some(level);
        let mut trace = Trace::default();
        evidence(&mut trace, state, line.trim());
        trace.state = Some(state);
        self.held[last].open = false;
        let key = self.held[last].key;
        self.held.push_back(Held {
            key,
            event: Event::Log(r),
            trace: Some(Box::new(trace)),
            open: true,
        });
        self.release(out);
        Joined::Started
    }

    /// Every held record, complete or not: the end of the input.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        while let Some(h) = self.held.pop_front() {
            out.push(finish(h));
        }
        self.bytes = 0;
    }

    /// Whether any record is held.
    pub fn holds(&self) -> bool {
        !self.held.is_empty()
    }

    /// The open record of stream `key`: the newest held one, if open.
    fn open_of(&self, key: u64) -> Option<usize> {
        let i = self.held.iter().rposition(|h| h.key == key)?;
        self.held[i].open.then_some(i)
    }

    /// Hold `event` (open when it is a log record) and release what is
    /// complete. `key`: its [`stream_key`] when the caller has it already
    /// (it hashes several fields, and every structured record comes here).
    fn hold(&mut self, mut event: Event, key: Option<u64>, out: &mut Vec<Event>) {
        let ts = event.timestamp();
        self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
        let (key, trace, open) = match &mut event {
            Event::Log(r) => {
                // A record may start a trace itself (a shipped line
                // `java.lang.IllegalStateException: ...`, `panic: ...`).
                let trace = starts(&r.message).map(|(state, level)| {
                    r.level.get_or_insert(level);
                    let mut t = Trace::default();
                    evidence(&mut t, state, r.message.trim());
                    t.state = Some(state);
                    Box::new(t)
                });
                (key.unwrap_or_else(|| stream_key(r)), trace, true)
            }
            _ => (u64::MAX, None, false),
        };
        self.held.push_back(Held {
            key,
            event,
            trace,
            open,
        });
        self.release(out);
    }

    /// Send the complete records at the front to `out`, in order.
    fn release(&mut self, out: &mut Vec<Event>) {
        let newest = self.newest.map_or(i64::MIN, |t| t.as_millis());
        while let Some(h) = self.held.front() {
            let late = newest.saturating_sub(h.event.timestamp().as_millis()) > HOLD_GAP_MS;
            if h.open && !late && self.held.len() <= MAX_HELD && self.bytes <= MAX_HELD_BYTES {
                break;
            }
            let h = self.held.pop_front().expect("front exists");
            if let Some(t) = &h.trace {
                self.bytes = self.bytes.saturating_sub(t.text.len());
            }
            out.push(finish(h));
        }
    }

    /// Join `line` to held record `i` if it continues it. `plain`: the line
    /// has no header of its own (a plain file's line its parser could not
    /// read), so indentation alone continues.
    fn join(&mut self, i: usize, line: &str, plain: bool, max_bytes: usize) -> Joined {
        let h = &mut self.held[i];
        let state = h.trace.as_ref().and_then(|t| t.state);
        // Only a warning or worse (or a record that states no level) is
        // followed by its exception: a trace after an info line is a
        // crash of its own.
        let takes_trace = match &h.event {
            Event::Log(r) => r.level.is_none_or(|l| l >= Level::Warn),
            _ => false,
        };
        // A Java exception whose frames have not begun: its message may
        // run over several lines (`nested exception is ...`, an SQL
        // error's text, a Spring context failure).
        let head = h.trace.as_ref().is_some_and(|t| {
            t.state == Some(State::Java) && t.frame.is_none() && t.cause.is_none()
        });
        let line = line.trim_end_matches(['\n', '\r']);
        let Step::Continue(next) = step(state, line, plain, takes_trace, head) else {
            return Joined::No;
        };
        let t = h.trace.get_or_insert_with(Default::default);
        evidence(t, next, line.trim());
        t.state = Some(next);
        t.lines += 1;
        let room = t.lines <= MAX_LINES && t.text.len() + line.len() < max_bytes;
        if !room {
            return Joined::Truncated;
        }
        if t.text.is_empty() && line.trim().is_empty() {
            return Joined::Joined;
        }
        if !t.text.is_empty() {
            t.text.push('\n');
            self.bytes += 1;
        }
        t.text.push_str(line);
        self.bytes += line.len();
        Joined::Joined
    }
}

/// The record, with what its trace told written into its fields.
fn finish(h: Held) -> Event {
    let mut event = h.event;
    let Some(t) = h.trace else {
        return event;
    };
    if let Event::Log(r) = &mut event {
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                r.fields.insert(k.to_string(), FieldValue::Str(v.clone()));
            }
        };
        put("exception.type", &t.exception_type);
        put("exception.message", &t.exception_message);
        put("exception.frame", &t.frame);
        put("exception.cause", &t.cause);
        if !t.text.is_empty() {
            let key = if t.exception_type.is_some() {
                "exception.stacktrace"
            } else {
                "log.continuation"
            };
            r.fields.insert(key.into(), FieldValue::Str(t.text));
        }
        if r.level.is_none() && t.exception_type.is_some() {
            // An exception printed without a stated level (System.err, an
            // uncaught exception) is an error.
            r.level = Some(Level::Error);
        }
    }
    event
}

/// The fields shippers tell streams apart by (Docker, Fluent Bit and
/// Vector's `stream`, syslog's `pid`, Filebeat's file).
pub const STREAM_KEYS: [&str; 3] = ["stream", "pid", "log.file.path"];

/// The stream a structured record belongs to: lines of one stream may
/// continue each other, lines of two never do.
pub fn stream_key(r: &LogRecord) -> u64 {
    use std::hash::{Hash, Hasher};
    // Fx, not SipHash: this runs on every structured record (SipHash was
    // 4% of a replay), and needs no defence against chosen collisions (a
    // collision joins nothing that does not also continue the record).
    // Unseeded, so a held record's key means the same after a hand-over.
    let mut h = rustc_hash::FxHasher::default();
    r.service.hash(&mut h);
    r.host.hash(&mut h);
    r.container.hash(&mut h);
    // Looked up on every record: a short list.
    for k in STREAM_KEYS {
        match r.field(k) {
            Some(FieldValue::Str(s)) => s.hash(&mut h),
            Some(FieldValue::Int(i)) => i.hash(&mut h),
            _ => 0u8.hash(&mut h),
        }
    }
    h.finish()
}

/// Whether `line` starts a trace by itself, in which state, and the level
/// a record it starts gets: a Java exception line (`java.io.IOException:
/// msg`, `Exception in thread "main" ...`), Python's `Traceback (most
/// recent call last):`, Go's `panic: ...` / `fatal error: ...`.
fn starts(line: &str) -> Option<(State, Level)> {
    let t = line.trim();
    if t.starts_with("Traceback (most recent call last)") {
        return Some((State::Python, Level::Error));
    }
    if t.starts_with("panic: ") || t.starts_with("fatal error: ") {
        return Some((State::Go, Level::Fatal));
    }
    if t.starts_with("Exception in thread \"") || exception_class(t).is_some() {
        return Some((State::Java, Level::Error));
    }
    None
}

/// What `line` does to a record whose trace is in `state` (`None`: no
/// trace yet). Rules after Fluent Bit's `java`, `python` and `go` parsers;
/// an unambiguous frame (`\tat a.B.c(B.java:1)`, `Caused by:`, `... 3
/// more`, `  File "x.py", line 3`) and a blank line continue whatever came
/// before; a trace's first line continues a record only when
/// `takes_trace`. `head`: the record's Java exception has no frame yet,
/// so a plain file's line without a header of its own is more of the
/// exception's message (Vector's `continue_through` up to the first frame;
/// Fluent Bit's `java` rule stops at such a line and loses it).
fn step(state: Option<State>, line: &str, plain: bool, takes_trace: bool, head: bool) -> Step {
    let t = line.trim_start();
    let indented = t.len() < line.len();
    let blank = t.trim_end().is_empty();
    use State::*;
    // Java frames and cause chains, in any state.
    if (indented && (t.starts_with("at ") || t.starts_with("eval at ")))
        || t.starts_with("Caused by: ")
        || t.starts_with("Suppressed: ")
        || more_frames(t)
        || t.starts_with("--- End of ")
    {
        return Step::Continue(Java);
    }
    // Python frames, in any state.
    if indented && t.starts_with("File \"") {
        return Step::Continue(PythonCode);
    }
    if blank {
        return Step::Continue(state.unwrap_or(Indented));
    }
    match state {
        None | Some(Indented) if !takes_trace => {}
        None | Some(Indented) => {
            // The first line of a trace joins the record that logged it
            // (`logger.error("...", e)`, `logging.exception`); a Go panic
            // is a crash of its own, never a logged record's detail.
            if t.starts_with("Traceback (most recent call last)") {
                return Step::Continue(Python);
            }
            if exception_class(t).is_some() || t.starts_with("Exception in thread \"") {
                return Step::Continue(Java);
            }
        }
        Some(Java) => {
            if t.starts_with("nested exception is") {
                return Step::Continue(Java);
            }
            if indented && exception_class(t).is_some() {
                return Step::Continue(Java);
            }
            if plain && head {
                return Step::Continue(Java);
            }
        }
        Some(Python) | Some(PythonCode) => {
            if indented {
                // A frame's code line, Python 3.11's `^^^^` markers.
                return Step::Continue(Python);
            }
            if python_final(t) {
                return Step::Continue(PythonEnd);
            }
        }
        Some(PythonEnd) => {
            if t.starts_with("During handling of the above exception")
                || t.starts_with("The above exception was the direct cause")
            {
                return Step::Continue(PythonEnd);
            }
            if t.starts_with("Traceback (most recent call last)") {
                return Step::Continue(Python);
            }
        }
        Some(Go) => {
            if indented
                || t.starts_with("[signal ")
                || goroutine_header(t)
                || t.starts_with("created by ")
                || t.starts_with("exit status ")
                || go_function(t)
            {
                return Step::Continue(Go);
            }
        }
    }
    if plain && indented {
        return Step::Continue(match state {
            Some(s) => s,
            None => Indented,
        });
    }
    Step::No
}

/// Take what `line` (trimmed) tells into `t`, now in `state`.
fn evidence(t: &mut Trace, state: State, line: &str) {
    match state {
        State::Java => {
            if let Some(rest) = line
                .strip_prefix("Caused by: ")
                .or_else(|| line.strip_prefix("Suppressed: "))
            {
                if line.starts_with("Caused by: ") {
                    if let Some((class, _)) = exception_class(rest) {
                        t.cause = Some(class.to_string());
                    }
                }
                return;
            }
            if let Some(frame) = line.strip_prefix("at ") {
                if t.frame.is_none() && t.cause.is_none() {
                    // Up to the closing parenthesis: logback appends the
                    // jar (`~[spring-web-5.1.5.jar:5.1.5]`).
                    let end = frame.find(')').map_or(frame.len(), |i| i + 1);
                    t.frame = Some(frame[..end].to_string());
                }
                return;
            }
            let line = match line.strip_prefix("Exception in thread \"") {
                Some(rest) => rest.split_once("\" ").map_or(rest, |(_, e)| e),
                None => line,
            };
            if t.exception_type.is_none() {
                if let Some((class, msg)) = exception_class(line) {
                    t.exception_type = Some(class.to_string());
                    t.exception_message = msg.map(str::to_string);
                }
            }
        }
        State::PythonCode => {
            if line.starts_with("File \"") {
                // Most recent call last: the last frame is where it was raised.
                t.frame = Some(line.to_string());
            }
        }
        State::PythonEnd => {
            if python_final(line)
                && !line.starts_with("During handling")
                && !line.starts_with("The above exception")
            {
                let (class, msg) = match line.split_once(':') {
                    Some((c, m)) => (c, Some(m.trim())),
                    None => (line, None),
                };
                // A chained traceback's last exception is the one raised.
                t.exception_type = Some(class.to_string());
                t.exception_message = msg.filter(|m| !m.is_empty()).map(str::to_string);
            }
        }
        State::Go => {
            if let Some(msg) = line.strip_prefix("panic: ") {
                let (class, msg) = match msg.strip_prefix("runtime error: ") {
                    Some(m) => ("runtime.Error", m),
                    None => ("panic", msg),
                };
                t.exception_type = Some(class.to_string());
                t.exception_message = Some(msg.to_string());
            } else if let Some(msg) = line.strip_prefix("fatal error: ") {
                t.exception_type = Some("fatal error".to_string());
                t.exception_message = Some(msg.to_string());
            } else if t.frame.is_none() && go_function(line) && !line.starts_with("panic(") {
                t.frame = Some(line.to_string());
            } else if let Some(f) = t.frame.as_mut() {
                // The frame's file line (`/app/main.go:12 +0x1d`) follows it.
                if !f.contains(".go:") && line.contains(".go:") {
                    let at = line.split(" +0x").next().unwrap_or(line);
                    f.push(' ');
                    f.push_str(at);
                }
            }
        }
        State::Python | State::Indented => {}
    }
}

/// `pkg.Class[Exception|Error|Throwable]` at the start of `t`, followed by
/// `:` and the message or by nothing: the class and the message.
pub fn exception_class(t: &str) -> Option<(&str, Option<&str>)> {
    let end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '$')))
        .unwrap_or(t.len());
    let (class, rest) = t.split_at(end);
    let name = class.rsplit('.').next().unwrap_or(class);
    // A class named for what it is (`...Exception`, `...Error`), not the
    // bare word (`Error: ...` is how much else begins).
    let shaped = ["Exception", "Error", "Throwable"]
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s))
        || name == "Throwable";
    if !shaped || !class.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    if class.split('.').any(str::is_empty) {
        return None;
    }
    if rest.is_empty() {
        return Some((class, None));
    }
    let msg = rest.strip_prefix(':')?;
    let msg = msg.trim();
    Some((class, (!msg.is_empty()).then_some(msg)))
}

/// `... 12 more`, `... 21 common frames omitted`.
fn more_frames(t: &str) -> bool {
    let Some(rest) = t.strip_prefix("... ") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && {
        let tail = &rest[digits..];
        tail.starts_with(" more") || tail.starts_with(" common frames omitted")
    }
}

/// Python's final line: `Type: message` with a dotted name of no spaces
/// or parentheses (Fluent Bit's `^(?:[^\s.():]+\.)*[^\s.():]+:`), or a bare
/// exception name (`KeyboardInterrupt`).
fn python_final(t: &str) -> bool {
    let head = t.split(':').next().unwrap_or(t);
    head.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && head
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

/// `goroutine 1 [running]:`
fn goroutine_header(t: &str) -> bool {
    t.strip_prefix("goroutine ")
        .and_then(|r| r.split_once(" ["))
        .is_some_and(|(n, rest)| n.bytes().all(|b| b.is_ascii_digit()) && rest.ends_with("]:"))
}

/// A Go frame's function line: `main.main()`, `net/http.(*conn).serve(0xc000)`.
fn go_function(t: &str) -> bool {
    let Some(open) = t.find('(') else {
        return false;
    };
    let name = &t[..open];
    !name.is_empty() && !name.contains(char::is_whitespace) && t.ends_with(')')
}

#[cfg(test)]
mod tests;
