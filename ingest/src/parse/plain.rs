//! Plain-text logs: a loghub-style header format, or a named preset
//! (`plain`, `syslog`, `apache`/`nginx` access, `apache-error`,
//! `nginx-error`).
//!
//! Header fields map to the record by name: `Date` + `Time` (or
//! `Timestamp`, or `Month` `Date` `Time` as in syslog) give the time,
//! `Level` the severity, `Service`/`App` (else `Component`) the service,
//! `Host`/`Node` the host, `Content` the message; every other field is kept
//! in `fields` under its lower-cased name.

use crate::deadletter::DeadLetterReason;
use crate::parse::fields::parse_timestamp;
use crate::parse::header::HeaderFormat;
use crate::parse::layout::{app_tail, split_level, AppTail};
use crate::parse::{ParseError, Parser};
use crate::record::RawRecord;
use chrono::{NaiveDateTime, TimeZone, Utc};
use models::{Event, FieldValue, Level, LogRecord, Timestamp};
use regex::Regex;
use std::sync::LazyLock;

/// The default header of the `plain` preset.
pub const PLAIN_FORMAT: &str = "<Date> <Time> <Level> <Component>: <Content>";

/// Which layout a [`PlainParser`] reads.
#[derive(Debug, Clone)]
enum Layout {
    Header(HeaderFormat),
    Syslog,
    Access,
    ApacheError,
    NginxError,
}

/// Parser for every plain-text layout.
#[derive(Debug, Clone)]
pub struct PlainParser {
    name: &'static str,
    layout: Layout,
    /// Year for timestamps that carry none (RFC 3164 syslog, loghub's
    /// `Jun 14 15:16:01`): the transport's year when it has one, else this.
    default_year: i32,
    re: Option<Regex>,
}

/// The names [`PlainParser::preset`] knows.
const PRESET_NAMES: [&str; 6] = [
    "plain",
    "syslog",
    "apache",
    "nginx",
    "apache-error",
    "nginx-error",
];

static MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A syslog line carried as another record's text (a JSON record whose
/// `message` or `log` is the raw line, as a shipper that ran no syslog
/// parser sends it): the record the syslog preset reads from it, whose
/// level (from the priority), program, host and message the caller
/// takes. Only text that starts like syslog (`<PRI>`, or a month and a
/// day) is tried.
pub(crate) fn syslog_in_text(text: &str) -> Option<LogRecord> {
    let t = text.trim_start();
    let b = t.as_bytes();
    let looks = match b.first()? {
        b'<' => b.get(1).is_some_and(u8::is_ascii_digit),
        _ => b.len() > 16 && b[3] == b' ' && t.get(..3).is_some_and(|m| MONTHS.contains(&m)),
    };
    if !looks {
        return None;
    }
    // The year only places a BSD line's time, which the caller does not
    // take (its record has its own); 2000 is a leap year, so `Feb 29`
    // reads too.
    let mut p = PlainParser::preset("syslog", 2000)?;
    let mut out = Vec::new();
    p.parse(t.trim_end(), &RawRecord::default(), &mut out)
        .ok()?;
    match out.pop()? {
        Event::Log(r) => Some(r),
        _ => None,
    }
}

impl PlainParser {
    /// A custom loghub-style header format.
    pub fn header(format: &str, default_year: i32) -> crate::Result<Self> {
        Ok(PlainParser {
            name: "header",
            layout: Layout::Header(HeaderFormat::new(format)?),
            default_year,
            re: None,
        })
    }

    /// A named preset: `plain`, `syslog`, `apache`, `nginx`, `apache-error`,
    /// `nginx-error`.
    ///
    /// Compiling a preset's regex costs about a millisecond, more than
    /// reading thousands of lines with it, and sniffing (`--format auto`)
    /// asks for presets once per record it has not recognised yet. So each
    /// preset is compiled once per process and handed out as a clone (a
    /// `Regex` clone shares the compiled program).
    pub fn preset(name: &str, default_year: i32) -> Option<Self> {
        static PRESETS: LazyLock<Vec<PlainParser>> = LazyLock::new(|| {
            PRESET_NAMES
                .iter()
                .map(|n| PlainParser::compile(n).expect("every preset name compiles"))
                .collect()
        });
        let i = PRESET_NAMES.iter().position(|n| *n == name)?;
        let mut p = PRESETS[i].clone();
        p.default_year = default_year;
        Some(p)
    }

    /// Build a preset from scratch (see [`PlainParser::preset`]).
    fn compile(name: &str) -> Option<Self> {
        let default_year = 1970;
        let (name, layout, re): (&'static str, Layout, Option<&str>) = match name {
            "plain" => (
                "plain",
                Layout::Header(HeaderFormat::new(PLAIN_FORMAT).expect("static format")),
                None,
            ),
            "syslog" => (
                "syslog",
                Layout::Syslog,
                Some(
                    r"^(?:<(?P<pri>\d{1,3})>)?(?:(?P<v5424>1) (?P<ts5424>\S+) (?P<host5424>\S+) (?P<app5424>\S+) (?P<pid5424>\S+) (?P<msgid>\S+) (?P<sd>-|(?:\[.*?\])+) ?(?P<msg5424>.*)|(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d{2}:\d{2}:\d{2}) (?P<host>\S+) (?P<tag>[^:\[\s]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*))$",
                ),
            ),
            "apache" | "nginx" => (
                if name == "apache" { "apache" } else { "nginx" },
                Layout::Access,
                Some(
                    r#"^(?:(?P<vhost>[^\s:]+):\d+ )?(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+|-)(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?(?: (?P<rt>\d+(?:\.\d+)?))?.*$"#,
                ),
            ),
            "apache-error" => (
                "apache-error",
                Layout::ApacheError,
                Some(
                    r"^\[(?P<time>[^\]]+)\] \[(?:(?P<module>[\w-]+):)?(?P<level>\w+)\](?: \[pid (?P<pid>\d+)(?::tid \d+)?\])?(?: \[client (?P<client>[^\]]+)\])? ?(?P<msg>.*)$",
                ),
            ),
            "nginx-error" => (
                "nginx-error",
                Layout::NginxError,
                Some(
                    r"^(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?P<level>\w+)\] (?P<pid>\d+)#(?P<tid>\d+): (?P<msg>.*)$",
                ),
            ),
            _ => return None,
        };
        Some(PlainParser {
            name,
            layout,
            default_year,
            re: re.map(|r| Regex::new(r).expect("static regex")),
        })
    }

    fn year(&self, raw: &RawRecord) -> i32 {
        raw.transport_time
            .and_then(|t| t.to_datetime())
            .map(|d| chrono::Datelike::year(&d))
            .unwrap_or(self.default_year)
    }

    fn parse_header(
        &self,
        f: &HeaderFormat,
        text: &str,
        raw: &RawRecord,
    ) -> Result<LogRecord, ParseError> {
        let parts = f.parse(text).ok_or_else(|| {
            ParseError::new(
                DeadLetterReason::HeaderMismatch,
                format!("line does not match the header format {:?}", f.as_str()),
            )
        })?;
        let get = |n: &str| parts.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        let ts = if let Some(t) =
            get("Timestamp").and_then(|t| parse_loose_time(t, None, self.year(raw)))
        {
            Some(t)
        } else {
            let date = get("Date").unwrap_or("");
            let time = get("Time").unwrap_or("");
            parse_loose_time(&format!("{date} {time}"), get("Month"), self.year(raw))
        };
        let ts = ts.or(raw.transport_time).ok_or_else(|| {
            ParseError::new(
                DeadLetterReason::BadTimestamp,
                format!(
                    "cannot read a time from the header fields {:?}",
                    parts
                        .iter()
                        .filter(|(k, _)| *k != "Content")
                        .collect::<Vec<_>>()
                ),
            )
        })?;
        let mut r = LogRecord::new(ts, get("Content").unwrap_or(text));
        r.level = get("Level").and_then(Level::parse);
        r.service = get("Service")
            .or_else(|| get("App"))
            .or_else(|| get("Component"))
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        r.host = get("Host").or_else(|| get("Node")).map(str::to_string);
        for (k, v) in &parts {
            if !matches!(
                *k,
                "Content"
                    | "Date"
                    | "Time"
                    | "Timestamp"
                    | "Level"
                    | "Service"
                    | "App"
                    | "Host"
                    | "Node"
            ) {
                r.fields
                    .insert(k.to_ascii_lowercase(), FieldValue::Str(v.to_string()));
            }
        }
        Ok(r)
    }
}

/// A line in the layout application loggers write by default: a date
/// and time (`2019-03-05 10:57:51.112`, ISO 8601, log4j's comma, Tomcat
/// JULI's `05-Mar-2019 10:57:51.112`, optionally in brackets), then a
/// level among the next few tokens (see [`split_level`]), then the thread,
/// the logger and the message:
///
/// - Spring Boot: `2019-03-05 10:57:51.112  INFO 45469 --- [main] o.s.Foo : msg`
/// - logback / log4j: `2023-01-29 16:42:22,382 [exec-1] ERROR com.example.Foo - msg`
/// - Tomcat's OneLineFormatter: `05-Mar-2019 10:57:49.021 INFO [main] o.a.c.Catalina.start msg`
/// - Python logging: `2023-01-29 16:42:22,382 - app.db - WARNING - msg`
/// - Redis: `1:M 29 Jan 2023 16:42:22.382 # msg` (its level a mark)
///
/// The message is what follows the logger (kept in `logger`); the service
/// is not in such a line. `None` when the line does not start so.
fn app_line(text: &str, year: i32) -> Option<LogRecord> {
    let line = text.trim_start();
    if let Some(k) = crate::parse::layout::klog_line(line) {
        // klog writes no year: the run's, as for syslog's `Jan  5`.
        let date = chrono::NaiveDate::from_ymd_opt(year, k.month, k.day)?;
        let time = chrono::NaiveTime::parse_from_str(k.time, "%H:%M:%S%.f").ok()?;
        let ts = Timestamp::from_millis(date.and_time(time).and_utc().timestamp_millis());
        let tail = AppTail {
            logger: Some(k.logger),
            thread: Some(k.thread),
            message: k.message,
        };
        return Some(app_record(ts, k.level, tail));
    }
    if let Some((level, when, message)) = crate::parse::layout::redis_line(line) {
        // Redis before 3.0 wrote no year: the run's, as for syslog.
        let dt = NaiveDateTime::parse_from_str(when, "%d %b %Y %H:%M:%S%.f")
            .or_else(|_| {
                NaiveDateTime::parse_from_str(&format!("{when} {year}"), "%d %b %H:%M:%S%.f %Y")
            })
            .ok()?;
        let ts = Timestamp::from_millis(dt.and_utc().timestamp_millis());
        let tail = AppTail {
            logger: None,
            thread: None,
            message,
        };
        return Some(app_record(ts, level, tail));
    }
    let (ts, rest) = leading_time(line, year)?;
    let (level, after) = split_level(rest)?;
    // Python's `time - [logger -] LEVEL - message`, read as in shipped
    // text: from the line's start, so the time is before the level.
    let tail = crate::parse::layout::python_tail(line, line.len() - rest.len() + after)
        .unwrap_or_else(|| app_tail(rest, after));
    Some(app_record(ts, level, tail))
}

/// An application layout's record: the statement as its message, the
/// logger and thread (when the layout has them) as fields.
fn app_record(ts: Timestamp, level: Level, tail: AppTail<'_>) -> LogRecord {
    let mut r = LogRecord::new(ts, tail.message);
    r.level = Some(level);
    for (key, value) in [("logger", tail.logger), ("thread", tail.thread)] {
        if let Some(v) = value {
            r.fields.insert(key.into(), FieldValue::Str(v.to_string()));
        }
    }
    r
}

/// The date and time a line starts with (one token, two, or bracketed),
/// and the rest of the line.
fn leading_time(line: &str, year: i32) -> Option<(Timestamp, &str)> {
    if let Some(inner) = line.strip_prefix('[') {
        let close = inner.find(']').filter(|&i| i <= 40)?;
        let ts = parse_loose_time(&inner[..close], None, year)?;
        return Some((ts, &inner[close + 1..]));
    }
    if !line.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut ends = line
        .match_indices(char::is_whitespace)
        .map(|(i, _)| i)
        .filter(|&i| i > 0 && !line[..i].ends_with(char::is_whitespace));
    let first = ends.next()?;
    if let Some(second) = ends.next() {
        if let Some(ts) = parse_loose_time(&line[..second], None, year) {
            return Some((ts, &line[second..]));
        }
    }
    parse_loose_time(&line[..first], None, year).map(|ts| (ts, &line[first..]))
}

/// Time texts of plain logs: everything [`parse_timestamp`] reads, plus
/// loghub's compact `yymmdd HHMMSS`, `Mon dd HH:MM:SS` (with the given year),
/// Apache's `Sun Dec 04 04:47:44 2005` and `yyyy-mm-dd-HH.MM.SS.ffffff`.
fn parse_loose_time(s: &str, month: Option<&str>, year: i32) -> Option<Timestamp> {
    let s = s.trim();
    if let Some(t) = parse_timestamp(s) {
        return Some(t);
    }
    let utc = |dt: NaiveDateTime| {
        Some(Timestamp::from_millis(
            Utc.from_utc_datetime(&dt).timestamp_millis(),
        ))
    };
    let with_month = match month {
        Some(m) => format!("{m} {s}"),
        None => s.to_string(),
    };
    for f in [
        "%y%m%d %H%M%S",
        "%Y-%m-%d-%H.%M.%S%.f",
        "%a %b %d %H:%M:%S%.f %Y",
        "%a %b %e %H:%M:%S%.f %Y",
        "%Y/%m/%d %H:%M:%S",
        // Tomcat JULI's OneLineFormatter (catalina.out).
        "%d-%b-%Y %H:%M:%S%.f",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(&with_month, f) {
            return utc(dt);
        }
    }
    // No year in the text: "Jun 14 15:16:01".
    let mut it = with_month.split_whitespace();
    if let (Some(m), Some(d), Some(t)) = (it.next(), it.next(), it.next()) {
        if MONTHS.contains(&m) {
            let text = format!("{year} {m} {d} {t}");
            if let Ok(dt) = NaiveDateTime::parse_from_str(&text, "%Y %b %d %H:%M:%S%.f") {
                return utc(dt);
            }
        }
    }
    None
}

impl Parser for PlainParser {
    fn name(&self) -> &'static str {
        self.name
    }

    fn parse(
        &mut self,
        text: &str,
        raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        let mismatch = || {
            ParseError::new(
                DeadLetterReason::HeaderMismatch,
                format!("line is not in {} format", self.name),
            )
        };
        let bad_time = |t: &str| {
            ParseError::new(
                DeadLetterReason::BadTimestamp,
                format!("cannot read time {t:?}"),
            )
        };
        let r = match &self.layout {
            // The `plain` preset also reads the layouts Java, Python and
            // Go loggers write by default (see [`app_line`]), so a
            // catalina.out or a Spring Boot log is read with `--format
            // auto`: its header alone would dead-letter them, or take a
            // Spring Boot line's pid, thread and logger for a service.
            Layout::Header(f) if self.name == "plain" => match self.parse_header(f, text, raw) {
                Ok(r) if !r.service.as_deref().is_some_and(|s| s.contains(' ')) => r,
                header => match app_line(text, self.year(raw)) {
                    // An application's own layout names no service: the
                    // file does (`orders.log` is orders', as a web
                    // server's access log is its site's), which a user
                    // reads in the report and can rename by renaming the
                    // file. Standard input names none; a Kafka topic's
                    // name stands for the file, as for access lines.
                    Some(mut r) => {
                        r.service = service_of_file(&raw.origin).map(str::to_string);
                        r
                    }
                    // Read by the header after all, but what stood where
                    // its component goes is words, not a name (Go's
                    // standard `log`: `2026/01/05 10:00:01 http: Accept
                    // error: ...`): the file names the service, as for
                    // the application layouts.
                    None => {
                        let mut r = header?;
                        r.service = service_of_file(&raw.origin).map(str::to_string);
                        r
                    }
                },
            },
            Layout::Header(f) => self.parse_header(f, text, raw)?,
            Layout::Syslog => {
                // RFC 5424 lines are split by hand when they can be: the
                // regular expression's captures cost about 20,000
                // instructions a line (its backtracker), a third of a
                // replay's decoding of a syslog file. The split answers
                // as the expression does (property-tested) or steps aside.
                let level_of = |pri: Option<&str>| {
                    pri.and_then(|p| p.parse::<u16>().ok())
                        .map(|p| Level::from_syslog_severity((p % 8) as u8))
                };
                if let Some(f) = Rfc5424::split(text) {
                    let mut r = f.record().map_err(&bad_time)?;
                    r.level = level_of(f.pri);
                    out.push(Event::Log(r));
                    return Ok(());
                }
                let c = self
                    .re
                    .as_ref()
                    .expect("regex")
                    .captures(text)
                    .ok_or_else(mismatch)?;
                let level = level_of(c.name("pri").map(|m| m.as_str()));
                let mut r = if let Some(f) = Rfc5424::from_captures(&c) {
                    f.record().map_err(&bad_time)?
                } else {
                    let t = format!("{} {}", &c["day"], &c["time"]);
                    let ts = parse_loose_time(&t, Some(&c["mon"]), self.year(raw))
                        .ok_or_else(|| bad_time(&t))?;
                    let mut r = LogRecord::new(ts, &c["msg"]);
                    r.host = Some(c["host"].to_string());
                    r.service = Some(c["tag"].to_string());
                    if let Some(pid) = c.name("pid") {
                        r.fields
                            .insert("pid".into(), FieldValue::Str(pid.as_str().into()));
                    }
                    r
                };
                r.level = level;
                r
            }
            Layout::Access if text.starts_with('[') => {
                // Envoy's default access log (Istio's sidecars, Envoy
                // gateways) starts with its bracketed time, which no
                // combined line does.
                let e = Envoy::split(text).ok_or_else(mismatch)?;
                let ts = parse_timestamp(e.time).ok_or_else(|| bad_time(e.time))?;
                e.record(ts, service_of_file(&raw.origin))
            }
            Layout::Access => {
                let captures;
                let a = match Access::split(text) {
                    Some(a) => a,
                    None => {
                        captures = self
                            .re
                            .as_ref()
                            .expect("regex")
                            .captures(text)
                            .ok_or_else(mismatch)?;
                        Access::from_captures(&captures)
                    }
                };
                let ts = parse_timestamp(a.time).ok_or_else(|| bad_time(a.time))?;
                let mut r = LogRecord::new(ts, a.request);
                let status: i64 = a.status.parse().unwrap_or(0);
                r.fields.insert("status".into(), FieldValue::Int(status));
                r.fields
                    .insert("client".into(), FieldValue::Str(a.client.into()));
                if let Ok(b) = a.bytes.parse::<i64>() {
                    r.fields.insert("bytes".into(), FieldValue::Int(b));
                }
                if let Some(agent) = a.agent {
                    r.fields
                        .insert("user_agent".into(), FieldValue::Str(agent.into()));
                }
                if let Some((rt, secs)) = a.rt.and_then(|t| Some((t, t.parse::<f64>().ok()?))) {
                    // nginx `$request_time` is seconds with a fraction;
                    // Apache `%D` is whole microseconds.
                    let secs = if rt.contains('.') { secs } else { secs / 1e6 };
                    r.fields
                        .insert("duration_seconds".into(), FieldValue::Float(secs));
                }
                r.level = Some(level_of_status(status));
                r.service = match a.vhost {
                    Some(v) => Some(v.to_string()),
                    None => service_of_file(&raw.origin).map(str::to_string),
                };
                r
            }
            Layout::ApacheError | Layout::NginxError => {
                let c = self
                    .re
                    .as_ref()
                    .expect("regex")
                    .captures(text)
                    .ok_or_else(mismatch)?;
                let t = &c["time"];
                let ts = parse_loose_time(t, None, self.year(raw)).ok_or_else(|| bad_time(t))?;
                let mut r = LogRecord::new(ts, &c["msg"]);
                r.level = Level::parse(&c["level"]);
                if let Some(pid) = c.name("pid") {
                    r.fields
                        .insert("pid".into(), FieldValue::Str(pid.as_str().into()));
                }
                if let Some(cl) = c.name("client") {
                    r.fields
                        .insert("client".into(), FieldValue::Str(cl.as_str().into()));
                }
                r.service = service_of_file(&raw.origin).map(str::to_string);
                r
            }
        };
        out.push(Event::Log(r));
        Ok(())
    }
}

/// The service of a web server's records (access and error logs) and of
/// an application's own log file (its layout names no service): the
/// file they came from, never the server's format name (an estate runs
/// many nginx sites, and "nginx" names none of them); an access line that
/// names its virtual host (Apache's `vhost_combined`, `%v:%p` first) is
/// that host's instead. From the file: its name without compression,
/// `.log`/`.txt`/`.out` and rotation suffixes and without an `access`/`error`
/// word (`shop-access.log.1.gz` and `www.shop.com_access_log` name `shop`
/// and `www.shop.com`); when that leaves nothing (`shop/access.log`), the
/// directory it is in; with no directory either, the bare name (`access`).
/// None for an origin that is no file name at all.
pub(crate) fn service_of_file(origin: &str) -> Option<&str> {
    if origin == "-" {
        // Standard input names nothing.
        return None;
    }
    let path = std::path::Path::new(origin);
    let name = path.file_name()?.to_str()?;
    let mut stem = name;
    loop {
        let before = stem;
        for ext in [
            ".gz", ".bz2", ".zst", ".xz", ".log", ".txt", ".out", ".json", ".jsonl", ".ndjson",
        ] {
            stem = stem.strip_suffix(ext).unwrap_or(stem);
        }
        // Rotation: `.1`, `-20260105`.
        if let Some(i) = stem.rfind(['.', '-']) {
            let tail = &stem[i + 1..];
            if i > 0 && !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
                stem = &stem[..i];
            }
        }
        if stem == before {
            break;
        }
    }
    let bare = stem;
    for word in ["access_log", "error_log", "access", "error"] {
        if stem == word {
            stem = "";
            break;
        }
        if let Some(rest) = stem.strip_suffix(word) {
            if let Some(rest) = rest.strip_suffix(['-', '_', '.']) {
                stem = rest;
                break;
            }
        }
    }
    if !stem.is_empty() {
        return Some(stem);
    }
    match path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
    {
        Some(dir) if !dir.is_empty() && dir != "." && dir != ".." => Some(dir),
        _ => (!bare.is_empty()).then_some(bare),
    }
}

/// The parts of a combined access line (Apache's and nginx's `combined`,
/// `vhost_combined`, an optional request time after the agent) that a
/// record keeps.
#[derive(Debug, PartialEq)]
struct Access<'a> {
    vhost: Option<&'a str>,
    client: &'a str,
    time: &'a str,
    request: &'a str,
    status: &'a str,
    bytes: &'a str,
    agent: Option<&'a str>,
    rt: Option<&'a str>,
}

impl<'a> Access<'a> {
    /// Split an access line as the `apache`/`nginx` expression does, for
    /// the lines where that is plain: ASCII without a line break, fields
    /// separated by single spaces. Anything else gives `None` and the
    /// expression decides (its backtracker spent half of the CPU of a
    /// replay of nginx logs; this split answers the same, property-tested).
    fn split(text: &'a str) -> Option<Self> {
        let b = text.as_bytes();
        if !text.is_ascii() || b.contains(&b'\n') {
            return None;
        }
        // `\S+`: one or more bytes that are not ASCII whitespace (the
        // line is ASCII, so that is what the expression's `\S` is here).
        let token = |i: usize| -> Option<usize> {
            let end = b[i..]
                .iter()
                .position(|c| c.is_ascii_whitespace() || *c == 0x0b)
                .map_or(b.len(), |p| i + p);
            (end > i).then_some(end)
        };
        let space = |i: usize| (b.get(i) == Some(&b' ')).then_some(i + 1);
        let mut i = 0;
        let mut vhost = None;
        // `(?:(?P<vhost>[^\s:]+):\d+ )?`: taken when the first token is
        // `name:port`; if the rest then fails, the expression would try
        // the line without it: step aside.
        let first = token(0)?;
        if let Some(colon) = b[..first].iter().position(|&c| c == b':') {
            let port = &b[colon + 1..first];
            if colon > 0 && !port.is_empty() && port.iter().all(u8::is_ascii_digit) {
                vhost = Some(&text[..colon]);
                i = space(first)?;
            }
        }
        let client_end = token(i)?;
        let client = &text[i..client_end];
        let ident_end = token(space(client_end)?)?;
        let user_end = token(space(ident_end)?)?;
        i = space(user_end)?;
        if b.get(i) != Some(&b'[') {
            return None;
        }
        let close = i + 1 + b[i + 1..].iter().position(|&c| c == b']')?;
        if close == i + 1 {
            return None;
        }
        let time = &text[i + 1..close];
        if b.get(close + 1..close + 3) != Some(b" \"".as_slice()) {
            return None;
        }
        let (request, after) = quoted(text, close + 3)?;
        i = space(after)?;
        let status = b.get(i..i + 3)?;
        if !status.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let status = &text[i..i + 3];
        i = space(i + 3)?;
        // `(?P<bytes>\d+|-)`
        let bytes_end = if b.get(i) == Some(&b'-') {
            i + 1
        } else {
            let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            i + n
        };
        let bytes = &text[i..bytes_end];
        i = bytes_end;
        // `(?: "referer" "agent")?`: taken whenever it is there.
        let mut agent = None;
        if b.get(i..i + 2) == Some(b" \"".as_slice()) {
            if let Some((_, ref_end)) = quoted(text, i + 2) {
                if b.get(ref_end..ref_end + 2) == Some(b" \"".as_slice()) {
                    if let Some((a, agent_end)) = quoted(text, ref_end + 2) {
                        agent = Some(a);
                        i = agent_end;
                    }
                }
            }
        }
        // `(?: (?P<rt>\d+(?:\.\d+)?))?`, then anything.
        let mut rt = None;
        if b.get(i) == Some(&b' ') {
            let d = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if d > 0 {
                let mut end = i + 1 + d;
                if b.get(end) == Some(&b'.') {
                    let f = b[end + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    if f > 0 {
                        end += 1 + f;
                    }
                }
                rt = Some(&text[i + 1..end]);
            }
        }
        Some(Access {
            vhost,
            client,
            time,
            request,
            status,
            bytes,
            agent,
            rt,
        })
    }

    /// The same parts from the expression's captures.
    fn from_captures(c: &regex::Captures<'a>) -> Self {
        Access {
            vhost: c.name("vhost").map(|m| m.as_str()),
            client: c.name("client").map_or("", |m| m.as_str()),
            time: c.name("time").map_or("", |m| m.as_str()),
            request: c.name("request").map_or("", |m| m.as_str()),
            status: c.name("status").map_or("", |m| m.as_str()),
            bytes: c.name("bytes").map_or("", |m| m.as_str()),
            agent: c.name("agent").map(|m| m.as_str()),
            rt: c.name("rt").map(|m| m.as_str()),
        }
    }
}

/// The parts of Envoy's default access log line a record keeps:
/// `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
/// %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
/// %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%"
/// "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%"
/// "%UPSTREAM_HOST%"`, and Istio's, which puts the response details, the
/// connection's end and a quoted failure reason before the byte counts and
/// the upstream cluster and addresses after the upstream host.
#[derive(Debug, PartialEq)]
struct Envoy<'a> {
    time: &'a str,
    request: &'a str,
    status: &'a str,
    flags: &'a str,
    duration_ms: Option<&'a str>,
    agent: Option<&'a str>,
    request_id: Option<&'a str>,
    authority: Option<&'a str>,
    upstream: Option<&'a str>,
}

impl<'a> Envoy<'a> {
    fn split(text: &'a str) -> Option<Self> {
        let rest = text.strip_prefix('[')?;
        let close = rest.find(']')?;
        let time = &rest[..close];
        let rest = rest[close + 1..].strip_prefix(" \"")?;
        let (request, after) = quoted(rest, 0)?;
        // The rest: bare words and quoted fields, in order.
        let mut fields: Vec<(&str, bool)> = Vec::with_capacity(24);
        let mut i = after;
        let b = rest.as_bytes();
        while i < b.len() {
            match b[i] {
                b' ' => i += 1,
                b'"' => {
                    let (q, end) = quoted(rest, i + 1)?;
                    fields.push((q, true));
                    i = end;
                }
                _ => {
                    let end = b[i..]
                        .iter()
                        .position(|&c| c == b' ')
                        .map_or(b.len(), |p| i + p);
                    fields.push((&rest[i..end], false));
                    i = end;
                }
            }
        }
        let (status, flags) = (fields.first()?, fields.get(1)?);
        let number =
            |f: &(&str, bool)| !f.1 && !f.0.is_empty() && f.0.bytes().all(|c| c.is_ascii_digit());
        if status.0.len() != 3 || !number(status) || flags.1 {
            return None;
        }
        // The byte counts and the duration are the first three bare
        // numbers in a row after the flags (Istio's details come between).
        let run = (2..fields.len())
            .find(|&k| fields[k..].iter().take(3).filter(|f| number(f)).count() == 3)?;
        let duration = fields[run + 2].0;
        // Then the upstream time (a number or `-`), and four quoted fields:
        // forwarded-for, user agent, request id, authority, upstream host.
        let quoted_after: Vec<&str> = fields[run + 3..]
            .iter()
            .filter(|f| f.1)
            .map(|f| f.0)
            .take(5)
            .collect();
        let present = |v: Option<&&'a str>| v.copied().filter(|v| !v.is_empty() && *v != "-");
        Some(Envoy {
            time,
            request,
            status: status.0,
            flags: flags.0,
            duration_ms: Some(duration),
            agent: present(quoted_after.get(1)),
            request_id: present(quoted_after.get(2)),
            authority: present(quoted_after.get(3)),
            upstream: present(quoted_after.get(4)),
        })
    }

    /// The record: the request as its message, the status, flags and
    /// duration as fields, the request id (which Envoy generates and
    /// passes on through the mesh) as its trace, and the authority's host
    /// (`orders:8080`, `orders.shop.svc.cluster.local`: `orders`) as its
    /// service, as a virtual host names a site; else the file's.
    fn record(&self, ts: Timestamp, file_service: Option<&str>) -> LogRecord {
        let mut r = LogRecord::new(ts, self.request);
        let status: i64 = self.status.parse().unwrap_or(0);
        r.fields.insert("status".into(), FieldValue::Int(status));
        if self.flags != "-" {
            r.fields
                .insert("response_flags".into(), FieldValue::Str(self.flags.into()));
        }
        if let Some(ms) = self.duration_ms.and_then(|d| d.parse::<f64>().ok()) {
            r.fields
                .insert("duration_seconds".into(), FieldValue::Float(ms / 1e3));
        }
        if let Some(a) = self.agent {
            r.fields
                .insert("user_agent".into(), FieldValue::Str(a.into()));
        }
        if let Some(u) = self.upstream {
            r.fields
                .insert("upstream".into(), FieldValue::Str(u.into()));
        }
        r.trace_id = self.request_id.map(str::to_string);
        r.level = Some(level_of_status(status));
        let host = self.authority.map(|a| {
            let host = a
                .rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit()))
                .map_or(a, |(h, _)| h);
            match host.split_once(".svc") {
                // A Kubernetes service's name: `name.namespace.svc...`.
                Some((name, _)) => name.split('.').next().unwrap_or(name),
                None => host,
            }
        });
        r.service = host
            .filter(|h| !h.is_empty())
            .or(file_service)
            .map(str::to_string);
        r
    }
}

/// An access record's level from its HTTP status: a server error (or
/// status 0, a request that got no response at all, as Envoy logs an
/// upstream that refused or reset it: flags `UF`, `UH`, `URX`) is an
/// error, a client error a warning.
fn level_of_status(status: i64) -> Level {
    match status {
        500..=599 | 0 => Level::Error,
        400..=499 => Level::Warn,
        _ => Level::Info,
    }
}

/// A quoted field starting after its opening quote at `start`: the text
/// up to the first quote no backslash escapes (`(?:[^"\\]|\\.)*"`), and
/// where the byte after the closing quote is.
fn quoted(text: &str, start: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' => return Some((&text[start..i], i + 1)),
            // An escape takes the next byte, whatever it is (the line has
            // no line break, which the expression's `.` would refuse).
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// The parts of an RFC 5424 line that a record keeps.
#[derive(Debug, PartialEq)]
struct Rfc5424<'a> {
    pri: Option<&'a str>,
    ts: &'a str,
    host: &'a str,
    app: &'a str,
    pid: &'a str,
    msgid: &'a str,
    msg: &'a str,
}

impl<'a> Rfc5424<'a> {
    /// Split `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]` as the
    /// syslog preset's expression does, for the lines where that is plain:
    /// ASCII header fields separated by single spaces, structured data `-`
    /// or `[...]` groups. Anything else (other whitespace, non-ASCII in the
    /// header, an unclosed group, a BSD line) gives `None`, and the
    /// expression decides.
    fn split(text: &'a str) -> Option<Self> {
        let b = text.as_bytes();
        let mut i = 0;
        let mut pri = None;
        if b.first() == Some(&b'<') {
            let end = b.iter().take(5).position(|&c| c == b'>')?;
            if !(2..=4).contains(&end) || !b[1..end].iter().all(u8::is_ascii_digit) {
                return None;
            }
            pri = Some(&text[1..end]);
            i = end + 1;
        }
        if !b[i..].starts_with(b"1 ") {
            return None;
        }
        i += 2;
        // Five fields of one or more printable ASCII bytes, each followed
        // by one space (what `\S+ ` matches when nothing exotic is there).
        let mut field = || {
            let start = i;
            while i < b.len() && b[i] != b' ' {
                if !b[i].is_ascii_graphic() {
                    return None;
                }
                i += 1;
            }
            if i == start || i == b.len() {
                return None;
            }
            i += 1;
            Some(&text[start..i - 1])
        };
        let (ts, host, app, pid, msgid) = (field()?, field()?, field()?, field()?, field()?);
        // Structured data: `-`, or as many `[...]` groups as follow each
        // other, each closed by the first `]` after its `[`.
        match b.get(i) {
            Some(b'-') => i += 1,
            Some(b'[') => {
                while b.get(i) == Some(&b'[') {
                    match b[i..].iter().position(|&c| c == b']') {
                        Some(close) => i += close + 1,
                        // After at least one group (the byte before the
                        // first is the space), an unclosed `[` starts the
                        // message.
                        None if b[i - 1] == b']' => break,
                        None => return None,
                    }
                }
            }
            _ => return None,
        }
        if b.get(i) == Some(&b' ') {
            i += 1;
        }
        Some(Rfc5424 {
            pri,
            ts,
            host,
            app,
            pid,
            msgid,
            msg: &text[i..],
        })
    }

    /// The parts the syslog preset's expression captured, when it took
    /// its RFC 5424 branch.
    fn from_captures(c: &regex::Captures<'a>) -> Option<Self> {
        c.name("v5424")?;
        let part = |n: &str| c.name(n).map_or("", |m| m.as_str());
        Some(Rfc5424 {
            pri: c.name("pri").map(|m| m.as_str()),
            ts: part("ts5424"),
            host: part("host5424"),
            app: part("app5424"),
            pid: part("pid5424"),
            msgid: part("msgid"),
            msg: part("msg5424"),
        })
    }

    /// The record (no level: that is the caller's, from the priority), or
    /// the time text that could not be read.
    fn record(&self) -> Result<LogRecord, &'a str> {
        let ts = parse_timestamp(self.ts).ok_or(self.ts)?;
        let mut r = LogRecord::new(ts, self.msg.trim_start_matches('\u{feff}'));
        r.host = nil_dash(Some(self.host));
        r.service = nil_dash(Some(self.app));
        if let Some(pid) = nil_dash(Some(self.pid)) {
            r.fields.insert("pid".into(), FieldValue::Str(pid));
        }
        if let Some(id) = nil_dash(Some(self.msgid)) {
            r.fields.insert("msgid".into(), FieldValue::Str(id));
        }
        Ok(r)
    }
}

fn nil_dash(s: Option<&str>) -> Option<String> {
    s.filter(|s| *s != "-").map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one log record `p` reads from `line` of the file `origin`.
    fn read_line(p: &mut PlainParser, origin: &str, line: &str) -> LogRecord {
        let raw = RawRecord::line(origin.into(), 1, line.as_bytes().to_vec());
        let mut out = vec![];
        p.parse(line, &raw, &mut out).unwrap();
        match out.remove(0) {
            Event::Log(r) => r,
            other => panic!("{other:?}"),
        }
    }
    use proptest::prelude::*;

    /// What the syslog expression captures for the RFC 5424 branch.
    fn by_regex(text: &str) -> Option<Rfc5424<'_>> {
        let p = PlainParser::preset("syslog", 2026).unwrap();
        let c = p.re.as_ref().unwrap().captures(text)?;
        Rfc5424::from_captures(&c)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Lines made of the pieces that matter (spaces, tabs, brackets,
        /// dashes, digits, a non-breaking space, non-ASCII): where the hand
        /// split answers, the expression answers the same.
        #[test]
        fn the_rfc5424_split_agrees_with_the_expression(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("<134>"), Just("<1>"), Just("<1234>"), Just("<x>"), Just("1 "), Just("1"),
                    Just(" "), Just("  "), Just("\t"), Just("-"), Just("["), Just("]"),
                    Just("[a=\"b\"]"), Just("2026-01-05T00:00:00.664Z"), Just("node-4"),
                    Just("db"), Just("1000"), Just("ID47"), Just("\u{a0}"), Just("é"), Just("x"),
                    Just("\u{feff}msg"), Just(":"),
                ],
                0..16,
            )
        ) {
            let line: String = parts.concat();
            if let Some(fast) = Rfc5424::split(&line) {
                prop_assert_eq!(Some(fast), by_regex(&line), "{:?}", line);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Lines shaped like RFC 5424 with a mutation here and there: the
        /// hand split takes most of them, and agrees where it does.
        #[test]
        fn shaped_lines_split_as_the_expression_splits_them(
            pri in prop_oneof![3 => Just(""), 3 => Just("<134>"), 3 => Just("<7>"), 1 => Just("<9999>"), 1 => Just("<a>")],
            version in prop_oneof![10 => Just("1 "), 1 => Just("1  "), 1 => Just("2 ")],
            fields in proptest::collection::vec(
                prop_oneof![20 => Just("node-4"), 20 => Just("-"), 20 => Just("2026-01-05T00:00:00Z"),
                    5 => Just("a]b"), 5 => Just("[x"), 1 => Just("é"), 1 => Just("x\u{a0}y"), 1 => Just("")],
                5,
            ),
            seps in proptest::collection::vec(prop_oneof![40 => Just(" "), 1 => Just("  "), 1 => Just("\t")], 5),
            sd in prop_oneof![Just("-"), Just("[a=\"1\"]"), Just("[a][b]"), Just("[a"), Just("[a] [b]"),
                Just("[a]]"), Just("-x"), Just("[]"), Just("[a][b"), Just("x"), Just("")],
            msg in prop_oneof![Just(""), Just(" hello"), Just("  two"), Just(" [c] d"), Just("\u{feff}bom"), Just(" é ]")],
        ) {
            let mut line = format!("{pri}{version}");
            for (f, sep) in fields.iter().zip(&seps) {
                line.push_str(f);
                line.push_str(sep);
            }
            line.push_str(sd);
            line.push_str(msg);
            if let Some(fast) = Rfc5424::split(&line) {
                prop_assert_eq!(Some(fast), by_regex(&line), "{:?}", line);
            }
        }
    }

    /// What the access expression captures.
    fn access_by_regex(text: &str) -> Option<Access<'_>> {
        let p = PlainParser::preset("nginx", 2026).unwrap();
        let c = p.re.as_ref().unwrap().captures(text)?;
        Some(Access::from_captures(&c))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Access lines with a mutation here and there (a vhost, quotes
        /// and escapes, missing fields, odd whitespace, non-ASCII, a line
        /// break): where the hand split answers, the expression answers
        /// the same; and the split never takes a line the expression
        /// refuses.
        #[test]
        fn the_access_split_agrees_with_the_expression(
            vhost in prop_oneof![6 => Just(""), 2 => Just("www.shop.com:443 "), 1 => Just("a:b "), 1 => Just(":80 "), 1 => Just("h:80  ")],
            client in prop_oneof![Just("10.0.0.1"), Just("::1"), Just("2001:db8::1"), Just("h:80"), Just("é"), Just("")],
            seps in proptest::collection::vec(prop_oneof![40 => Just(" "), 1 => Just("  "), 1 => Just("\t"), 1 => Just("\u{a0}")], 4),
            user in prop_oneof![Just("-"), Just("bob"), Just("[x]"), Just("")],
            time in prop_oneof![Just("[05/Jan/2026:10:00:00 +0000]"), Just("[]"), Just("[05/Jan/2026:10:00:00 +0000"), Just("[a]b]")],
            request in prop_oneof![Just("\"GET /a HTTP/1.1\""), Just("\"GET /\\\"q\\\" HTTP/1.1\""), Just("\"-\""), Just("\"\""),
                Just("\"GET /a"), Just("\"a\\\""), Just("\"x\ny\""), Just("\"caf\u{e9}\"")],
            status in prop_oneof![Just(" 200"), Just(" 503"), Just(" 2000"), Just(" 20"), Just(" abc"), Just("200")],
            bytes in prop_oneof![Just(" 19"), Just(" -"), Just(" 1x"), Just(" "), Just("")],
            tail in prop_oneof![Just(""), Just(" \"-\" \"curl/8.0\""), Just(" \"-\" \"curl/8.0\" 0.250"), Just(" \"r\" \"a\" 1234"),
                Just(" \"r\" \"a"), Just(" \"r\""), Just(" 0.5"), Just(" 12abc"), Just(" 1.2.3"), Just(" .5"), Just(" 1."),
                Just(" \"r\" \"a\\\"b\" 7"), Just("x"), Just(" \"r\"  \"a\""), Just("\n")],
        ) {
            let line = format!(
                "{vhost}{client}{}-{}{user}{}{time}{}{request}{status}{bytes}{tail}",
                seps[0], seps[1], seps[2], seps[3]
            );
            let fast = Access::split(&line);
            let slow = access_by_regex(&line);
            if fast.is_some() {
                prop_assert_eq!(fast, slow, "{:?}", line);
            }
        }
    }

    #[test]
    fn the_access_split_takes_the_common_lines() {
        for line in [
            r#"10.0.0.1 - - [05/Jan/2026:10:00:00 +0000] "GET /api/cart HTTP/1.1" 503 19 "-" "curl/8.0" 0.250"#,
            r#"192.168.2.20 - - [28/Jul/2006:10:27:10 -0300] "GET /cgi-bin/try/ HTTP/1.0" 200 3395"#,
            r#"www.shop.com:443 10.0.0.1 - bob [05/Jan/2026:10:00:00 +0000] "POST /pay HTTP/2.0" 201 - "https://shop/" "Mozilla/5.0 (X11; Linux x86_64)" 1234"#,
            r#"::1 - - [05/Jan/2026:10:00:00 +0000] "GET /\"q\" HTTP/1.1" 404 0 "-" "-""#,
        ] {
            let fast = Access::split(line);
            assert!(fast.is_some(), "{line}");
            assert_eq!(fast, access_by_regex(line), "{line}");
        }
    }

    #[test]
    fn the_rfc5424_split_takes_the_common_lines() {
        for line in [
            "<134>1 2026-01-05T00:00:00.664Z node-4 database 1000 - - autovacuum: done",
            "<2>1 2026-01-05T01:35:45.500Z node-2 kernel - - - Memory cgroup out of memory",
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\"][x@1 a=\"b\"] \u{feff}An application event",
            "1 2026-01-05T00:00:00Z h a p m -",
        ] {
            let fast = Rfc5424::split(line);
            assert!(fast.is_some(), "{line}");
            assert_eq!(fast, by_regex(line), "{line}");
        }
    }

    fn parse(p: &mut PlainParser, line: &str) -> Result<LogRecord, ParseError> {
        let mut out = vec![];
        p.parse(line, &RawRecord::default(), &mut out)?;
        match out.remove(0) {
            Event::Log(r) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn the_plain_preset() {
        let mut p = PlainParser::preset("plain", 2026).unwrap();
        let r = parse(
            &mut p,
            "2026-01-05 10:00:00.250 ERROR inventory: stock lookup failed for sku=42",
        )
        .unwrap();
        assert_eq!(r.timestamp, ts("2026-01-05T10:00:00.250Z"));
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.service.as_deref(), Some("inventory"));
        assert_eq!(r.message, "stock lookup failed for sku=42");
        let e = parse(&mut p, "garbage").unwrap_err();
        assert_eq!(e.reason, DeadLetterReason::HeaderMismatch);
    }

    #[test]
    fn loghub_headers() {
        let mut p = PlainParser::header("<Date> <Time> <Pid> <Level> <Component>: <Content>", 2026)
            .unwrap();
        let r = parse(
            &mut p,
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
        )
        .unwrap();
        assert_eq!(r.timestamp, ts("2008-11-09T20:36:15Z"));
        assert_eq!(r.fields["pid"], FieldValue::Str("148".into()));
        let mut p = PlainParser::header(
            r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
            2005,
        )
        .unwrap();
        let r = parse(
            &mut p,
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure",
        )
        .unwrap();
        assert_eq!(r.timestamp, ts("2005-06-14T15:16:01Z"));
        assert_eq!(r.message, "authentication failure");
    }

    #[test]
    fn syslog_5424_and_3164() {
        let mut p = PlainParser::preset("syslog", 2026).unwrap();
        let r = parse(&mut p, "<165>1 2026-01-05T10:00:00.003Z db-1 postgres 811 ID47 [exampleSDID@32473 iut=\"3\"] checkpoint starting").unwrap();
        assert_eq!(r.level, Some(Level::Info));
        assert_eq!(r.host.as_deref(), Some("db-1"));
        assert_eq!(r.service.as_deref(), Some("postgres"));
        assert_eq!(r.message, "checkpoint starting");
        let r = parse(
            &mut p,
            "<11>Jan  5 10:00:00 node-1 kernel: Out of memory: Killed process 4242 (java)",
        )
        .unwrap();
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.timestamp, ts("2026-01-05T10:00:00Z"));
        assert_eq!(r.service.as_deref(), Some("kernel"));
        let r = parse(
            &mut p,
            "Jan 15 10:00:00 node-1 sshd[99]: Accepted publickey",
        )
        .unwrap();
        assert_eq!(r.fields["pid"], FieldValue::Str("99".into()));
    }

    /// klog, as Kubernetes components and glog programs write it (lines
    /// in the shape of klog's README and the Kubernetes structured
    /// logging docs): the level from the header's letter, the year the
    /// run's, the file and line as the logger, the thread id, and the
    /// statement without the header; the file names the service.
    #[test]
    fn a_klog_line_is_read_whole() {
        let mut p = PlainParser::preset("plain", 2026).unwrap();
        let read = |p: &mut PlainParser, line: &str| read_line(p, "logs/kube-scheduler.log", line);
        let r = read(
            &mut p,
            r#"E0607 22:30:44.574291       1 reflector.go:138] "Failed to watch" err="connection refused""#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.timestamp, ts("2026-06-07T22:30:44.574Z"));
        assert_eq!(r.message, r#""Failed to watch" err="connection refused""#);
        assert_eq!(
            r.fields["logger"],
            FieldValue::Str("reflector.go:138".into())
        );
        assert_eq!(r.fields["thread"], FieldValue::Str("1".into()));
        assert_eq!(r.service.as_deref(), Some("kube-scheduler"));
        let r = read(
            &mut p,
            "I1025 00:15:15.525108   73 example.go:79] This is a message",
        );
        assert_eq!(r.level, Some(Level::Info));
        assert_eq!(r.message, "This is a message");
        // Not klog: a month that is none, a logger with a space.
        for line in [
            "I1325 00:15:15.525108 1 a.go:1] x",
            "I0125 00:15:15.525108 1 a b.go:1] x",
        ] {
            assert_eq!(crate::parse::layout::klog_line(line), None, "{line}");
        }
    }

    /// zap's console encoder (Go), as its production configuration
    /// writes it: tab-separated, the level in lower case, then the caller.
    #[test]
    fn a_zap_console_line_with_a_lower_case_level_is_read() {
        let mut p = PlainParser::preset("plain", 2026).unwrap();
        let line = "2026-01-05T10:00:02.000Z\terror\tpayments/charge.go:88\tcharge failed again";
        let raw = RawRecord::line("logs/payments.log".into(), 1, line.into());
        let mut out = vec![];
        p.parse(line, &raw, &mut out).unwrap();
        let Event::Log(r) = out.remove(0) else {
            panic!()
        };
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.timestamp, ts("2026-01-05T10:00:02Z"));
        assert!(r.message.ends_with("charge failed again"), "{}", r.message);
        assert_eq!(r.service.as_deref(), Some("payments"));
    }

    /// An application's own layout names no service; the file it was
    /// read from does, and standard input none.
    #[test]
    fn an_application_line_belongs_to_its_file() {
        let mut p = PlainParser::preset("plain", 2026).unwrap();
        let line =
            "2026-01-05 10:00:00,112 [exec-1] ERROR com.shop.OrderService - payment declined";
        let read = |p: &mut PlainParser, origin: &str| {
            let raw = RawRecord::line(origin.into(), 1, line.as_bytes().to_vec());
            let mut out = vec![];
            p.parse(line, &raw, &mut out).unwrap();
            match out.remove(0) {
                Event::Log(r) => r,
                other => panic!("{other:?}"),
            }
        };
        let r = read(&mut p, "/var/log/shop/orders.log.1");
        assert_eq!(r.service.as_deref(), Some("orders"));
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "payment declined");
        assert_eq!(r.fields["thread"], FieldValue::Str("exec-1".into()));
        assert_eq!(read(&mut p, "-").service, None);
    }

    /// A Redis server's log file: the mark after the time is its level.
    /// (Lines as Redis 7's `server.c` writes them; the older
    /// `[pid] dd Mon time` form has no year.)
    #[test]
    fn a_redis_log_is_read_with_its_levels() {
        let mut p = PlainParser::preset("plain", 2026).unwrap();
        for (line, when, level, message) in [
            (
                "1:M 29 Jan 2023 16:42:22.384 # Server initialized",
                "2023-01-29T16:42:22.384Z",
                Level::Warn,
                "Server initialized",
            ),
            (
                "1:M 29 Jan 2023 16:42:22.385 * Ready to accept connections",
                "2023-01-29T16:42:22.385Z",
                Level::Info,
                "Ready to accept connections",
            ),
            (
                "[4018] 14 Nov 07:01:22.119 # Can't save in background: fork: Cannot allocate memory",
                "2026-11-14T07:01:22.119Z",
                Level::Warn,
                "Can't save in background: fork: Cannot allocate memory",
            ),
        ] {
            let r = read_line(&mut p, "logs/redis.log", line);
            assert_eq!(r.timestamp, ts(when), "{line}");
            assert_eq!(r.level, Some(level), "{line}");
            assert_eq!(r.message, message, "{line}");
            assert_eq!(r.service.as_deref(), Some("redis"));
        }
        // And a file of them is sniffed as plain, not as logfmt for the
        // `version=7.0.8, bits=64` pairs in its start-up lines.
        assert_eq!(
            crate::parse::Format::detect(
                "1:C 29 Jan 2023 16:42:22.382 # Redis version=7.0.8, bits=64, commit=00000000, modified=0, pid=1, just started"
            ),
            Some(crate::parse::Format::Plain)
        );
    }

    /// Envoy's default access log and Istio's (the line from Istio's
    /// "Envoy Access Logs" task): the request, status, duration in
    /// milliseconds, the request id as the trace and the authority as the
    /// service.
    #[test]
    fn envoy_and_istio_access_lines() {
        let mut p = PlainParser::preset("apache", 2026).unwrap();
        let read = |p: &mut PlainParser, line: &str| read_line(p, "logs/istio-proxy.log", line);
        let r = read(
            &mut p,
            r#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default"#,
        );
        assert_eq!(r.timestamp, ts("2020-11-25T21:26:18.409Z"));
        assert_eq!(r.message, "GET /status/418 HTTP/1.1");
        assert_eq!(r.fields["status"], FieldValue::Int(418));
        assert_eq!(r.fields["duration_seconds"], FieldValue::Float(0.004));
        assert_eq!(r.level, Some(Level::Warn));
        assert_eq!(r.service.as_deref(), Some("httpbin"));
        assert_eq!(
            r.trace_id.as_deref(),
            Some("84961386-6d84-929d-98bd-c5aee93b5c88")
        );
        let r = read(
            &mut p,
            r#"[2023-01-29T16:42:25.101Z] "POST /api/v1/pay HTTP/1.1" 503 UF 120 91 3 - "-" "okhttp/4.9" "d4e5f6" "payments.shop.svc.cluster.local:8080" "10.0.0.10:8080""#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.fields["response_flags"], FieldValue::Str("UF".into()));
        assert_eq!(r.fields["duration_seconds"], FieldValue::Float(0.003));
        assert_eq!(r.service.as_deref(), Some("payments"));
        // And a file of them is sniffed as an access log.
        assert_eq!(
            crate::parse::Format::detect(
                r#"[2023-01-29T16:42:25.101Z] "POST /api/v1/pay HTTP/1.1" 503 UF 120 91 3 - "-" "okhttp/4.9" "d4e5f6" "payments:8080" "10.0.0.10:8080""#
            ),
            Some(crate::parse::Format::Apache)
        );
    }

    /// The logs an estate's own infrastructure writes, each line as its
    /// documentation shows: a Kafka broker's `server.log` (log4j's
    /// `[%d] %p %m (%c)%n`, sniffed as plain although it starts with a
    /// bracket), PostgreSQL's `LOG:` and MySQL 8's `[System]` and `[Note]`.
    #[test]
    fn broker_and_database_logs_are_read_with_their_levels() {
        let mut p = PlainParser::preset("plain", 2026).unwrap();
        for (line, level, file) in [
            (
                "[2023-01-29 16:42:25,101] ERROR [ReplicaFetcher replicaId=1, leaderId=2, fetcherId=0] Error for partition orders-0 at offset 10 (kafka.server.ReplicaFetcherThread)",
                Level::Error,
                "server",
            ),
            (
                "2023-01-29 16:42:22.390 UTC [1] LOG:  database system is ready to accept connections",
                Level::Info,
                "postgresql",
            ),
            (
                "2023-01-29 16:42:25.101 UTC [87] ERROR:  relation \"orders\" does not exist at character 15",
                Level::Error,
                "postgresql",
            ),
            (
                "2023-01-29T16:42:22.382012Z 0 [System] [MY-010116] [Server] /usr/sbin/mysqld (mysqld 8.0.32) starting as process 1",
                Level::Info,
                "mysqld",
            ),
            (
                "2023-01-29T16:42:26.101012Z 0 [Note] [MY-010914] [Server] Aborted connection 12 to db: 'ts'",
                Level::Info,
                "mysqld",
            ),
        ] {
            assert_eq!(crate::parse::Format::detect(line), Some(crate::parse::Format::Plain), "{line}");
            let r = read_line(&mut p, &format!("logs/{file}.log"), line);
            assert_eq!(r.level, Some(level), "{line}");
            assert!(
                r.timestamp.to_rfc3339().starts_with("2023-01-29T16:42:2"),
                "{line}"
            );
            assert_eq!(r.service.as_deref(), Some(file));
        }
    }

    /// Python logging's layouts in a file, with and without the logger
    /// (`%(asctime)s - %(name)s - %(levelname)s - %(message)s` and the
    /// same without `%(name)s`, as the logging cookbook writes them):
    /// the statement alone is the message, whatever dashes it holds.
    #[test]
    fn python_logging_lines_are_read_with_or_without_a_logger() {
        let mut p = PlainParser::preset("plain", 2026).unwrap();
        for (line, logger) in [
            (
                "2026-01-05 10:00:00,112 - app.sync - ERROR - fetch failed - retrying",
                Some("app.sync"),
            ),
            (
                "2026-01-05 10:00:00,112 - ERROR - fetch failed - retrying",
                None,
            ),
        ] {
            let r = read_line(&mut p, "logs/sync.log", line);
            assert_eq!(r.timestamp, ts("2026-01-05T10:00:00.112Z"), "{line}");
            assert_eq!(r.level, Some(Level::Error), "{line}");
            assert_eq!(r.message, "fetch failed - retrying", "{line}");
            assert_eq!(
                r.fields.get("logger"),
                logger.map(|l| FieldValue::Str(l.into())).as_ref(),
                "{line}"
            );
            assert_eq!(r.service.as_deref(), Some("sync"));
        }
    }

    #[test]
    fn a_web_servers_records_belong_to_their_site_not_to_the_server() {
        for (origin, service) in [
            ("/var/log/nginx/shop-access.log", Some("shop")),
            ("logs/shop-access.log.1.gz", Some("shop")),
            ("logs/www.shop.com_access_log", Some("www.shop.com")),
            ("logs/www.shop.com-error.log-20260105", Some("www.shop.com")),
            ("logs/cart/access.log", Some("cart")),
            ("/var/log/nginx/access.log.2.gz", Some("nginx")),
            ("access.log", Some("access")),
            ("./error_log", Some("error_log")),
            ("billing.log", Some("billing")),
            ("/opt/tomcat/logs/catalina.out", Some("catalina")),
            ("logs/billing.jsonl.gz", Some("billing")),
            ("logs/app.json", Some("app")),
            ("-", None),
            ("", None),
        ] {
            assert_eq!(service_of_file(origin), service, "{origin}");
        }
        // One access line read from file `origin`.
        let read = |origin: &str, line: &str| {
            let mut p = PlainParser::preset("apache", 2026).unwrap();
            let raw = RawRecord::line(origin.into(), 1, line.into());
            let mut out = Vec::new();
            p.parse(line, &raw, &mut out).unwrap();
            match out.pop() {
                Some(Event::Log(r)) if out.is_empty() => r,
                other => panic!("{other:?}"),
            }
        };
        // A line that names its virtual host is that host's.
        let r = read(
            "logs/other_vhosts_access.log",
            r#"shop.example.com:443 10.0.0.1 - - [05/Jan/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8.0""#,
        );
        assert_eq!(r.service.as_deref(), Some("shop.example.com"));
        assert_eq!(r.fields["client"], FieldValue::Str("10.0.0.1".into()));
        assert_eq!(r.fields["status"], FieldValue::Int(200));
        // An IPv6 client is a client, not a virtual host.
        let r = read(
            "logs/cart/access.log",
            r#"2001:db8::1 - - [05/Jan/2026:10:00:00 +0000] "GET / HTTP/1.1" 502 0"#,
        );
        assert_eq!(r.service.as_deref(), Some("cart"));
        assert_eq!(r.fields["client"], FieldValue::Str("2001:db8::1".into()));
    }

    #[test]
    fn access_and_error_logs() {
        let mut p = PlainParser::preset("nginx", 2026).unwrap();
        let r = parse(&mut p, r#"10.0.0.1 - - [05/Jan/2026:10:00:00 +0000] "GET /api/cart HTTP/1.1" 503 19 "-" "curl/8.0" 0.250"#).unwrap();
        assert_eq!(r.fields["status"], FieldValue::Int(503));
        assert_eq!(r.fields["duration_seconds"], FieldValue::Float(0.25));
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "GET /api/cart HTTP/1.1");
        let mut p = PlainParser::preset("apache-error", 2026).unwrap();
        let r = parse(
            &mut p,
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
        )
        .unwrap();
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.timestamp, ts("2005-12-04T04:47:44Z"));
        let mut p = PlainParser::preset("nginx-error", 2026).unwrap();
        let r = parse(
            &mut p,
            "2026/01/05 10:00:00 [error] 31#31: *1 connect() failed (111: Connection refused)",
        )
        .unwrap();
        assert_eq!(r.level, Some(Level::Error));
        assert!(r.message.contains("Connection refused"));
    }
}
