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
        Ok(HeaderFormat {
            source: format.to_string(),
            regex,
            fields,
            has_content,
        })
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.source
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
