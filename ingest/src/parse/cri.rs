//! Kubernetes container logs as the kubelet keeps them on a node: the CRI
//! logging format containerd and CRI-O write under `/var/log/pods` (and
//! link from `/var/log/containers`), one line per line the container
//! printed:
//!
//! ```text
//! 2023-01-30T08:00:01.123456789Z stdout F {"level":"error","msg":"payment declined"}
//! 2023-01-30T08:00:02.004512831Z stderr F 08:00:02.004 ERROR c.e.PaymentService - charge failed
//! ```
//!
//! Time (RFC 3339, nanoseconds), stream, a tag (`F` a full line, `P` a
//! part of one the runtime split, at 16 KiB by default) and the text. This
//! is what Fluent Bit's `cri` parser and Vector's `kubernetes_logs` source
//! read; before this format every such line was an `unknown_format` dead
//! letter. A line becomes the record a shipper would have sent (`time`,
//! `stream`, `logtag`, `message`, and the pod's coordinates from the
//! file's path), read by the JSON reader's mapping: an application layout
//! or a JSON record in the text is read as in a shipped `log` field.
//!
//! The service is the pod's workload ([`workload_of_pod`]:
//! `frontend-7d9f8b8c9-x2x4k` is `frontend`), the name metrics and
//! shippers' `app` labels usually give it; a container name is often the
//! same for every workload of a chart (`server`). A file outside the
//! kubelet's layout is named as application log files are (its name).
//!
//! A part line (`P`) is read as a record of its own, not joined to the
//! rest of its line: a line over 16 KiB is rare and nearly always a dump,
//! and joining across records would hold text back at the end of an input
//! (the next line may never come), which would lose it.

use crate::deadletter::DeadLetterReason;
use crate::parse::fields::{FieldList, FieldMapping};
use crate::parse::{ParseError, Parser};
use crate::record::RawRecord;
use models::{workload_of_pod, Event, FieldValue};

/// The CRI log parser.
#[derive(Debug, Clone, Default)]
pub struct CriParser {
    /// Shared by the parsers of every input (one per origin).
    mapping: std::sync::Arc<FieldMapping>,
    /// The pod coordinates of the last origin read, kept: every line of a
    /// file has the same (`origin` is shared per file).
    place: Option<(std::sync::Arc<str>, Place)>,
    /// Working space reused from line to line.
    fields: FieldList,
}

/// What a path says about the container whose log it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Place {
    namespace: Option<String>,
    pod: Option<String>,
    container: Option<String>,
    /// The service: the pod's workload, or the file's name.
    service: Option<String>,
}

impl CriParser {
    /// With a field mapping shared with other parsers.
    pub fn with_shared(mapping: std::sync::Arc<FieldMapping>) -> Self {
        CriParser {
            mapping,
            place: None,
            fields: FieldList::new(),
        }
    }

    /// Read `origin`'s path unless it is the one read last.
    fn locate(&mut self, origin: &std::sync::Arc<str>) {
        let fresh = !matches!(&self.place, Some((o, _)) if std::sync::Arc::ptr_eq(o, origin) || **o == **origin);
        if fresh {
            self.place = Some((origin.clone(), place_of_path(origin)));
        }
    }
}

/// A CRI line's parts: time, stream, tag, text; `None` when the line is
/// not one.
pub fn split(line: &str) -> Option<(&str, &str, &str, &str)> {
    let (time, rest) = line.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    // The text may be empty (an empty line printed): `... stdout F`.
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    // `F` and `P`, possibly followed by other `:`-separated tags (the
    // format reserves them).
    let first = tag.split(':').next().unwrap_or("");
    if first != "F" && first != "P" {
        return None;
    }
    // A time such as 2023-01-30T08:00:01.123456789Z or with an offset.
    let b = time.as_bytes();
    let looks_like_time = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit);
    looks_like_time.then_some((time, stream, tag, text))
}

impl Parser for CriParser {
    fn name(&self) -> &'static str {
        "cri"
    }

    fn parse(
        &mut self,
        text: &str,
        raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        let (time, stream, tag, message) = split(text).ok_or_else(|| {
            ParseError::new(
                DeadLetterReason::HeaderMismatch,
                "not a CRI log line (`<RFC 3339 time> <stdout|stderr> <F|P> <text>`)",
            )
        })?;
        self.locate(&raw.origin);
        let place = &self.place.as_ref().expect("located above").1;
        let fields = &mut self.fields;
        fields.clear();
        let s = |v: &str| FieldValue::Str(v.to_string());
        fields.push(("time".into(), s(time)));
        fields.push(("stream".into(), s(stream)));
        fields.push(("logtag".into(), s(tag)));
        fields.push(("message".into(), s(message)));
        // The pod is the record's container, as for a shipped record, but
        // not its host (the mapping would take a pod for a host when no
        // node is named, and a path names none).
        for (key, value) in [
            ("kubernetes.namespace_name", &place.namespace),
            ("kubernetes.container_name", &place.container),
            // Under the first of the mapping's service keys, so that it
            // wins over the container's name as a Kubernetes app label
            // would.
            ("service", &place.service),
        ] {
            if let Some(v) = value {
                fields.push((key.into(), s(v)));
            }
        }
        let mut event = crate::parse::json::record_to_event(fields, &self.mapping, raw, text)?;
        if let (Event::Log(r), Some(pod)) = (&mut event, &place.pod) {
            r.container.get_or_insert_with(|| pod.clone());
        }
        out.push(event);
        Ok(())
    }
}

/// The container a kubelet log path belongs to:
/// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` (and
/// rotated `<restart>.log.<time>`, compressed `.gz`), or the link
/// `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`.
/// Names in Kubernetes hold no `_`, so the parts split cleanly.
fn place_of_path(origin: &str) -> Place {
    let path = std::path::Path::new(origin);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = path.parent();
    fn dir(p: Option<&std::path::Path>) -> &str {
        p.and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("")
    }
    let restart = name.split('.').next().unwrap_or("");
    let pod_dir = dir(parent.and_then(|p| p.parent()));
    let pods_layout = !restart.is_empty()
        && restart.bytes().all(|b| b.is_ascii_digit())
        && pod_dir.split('_').count() == 3;
    if pods_layout {
        let mut parts = pod_dir.split('_');
        let (namespace, pod) = (parts.next(), parts.next());
        return place(namespace, pod, Some(dir(parent)));
    }
    // `/var/log/containers/<pod>_<namespace>_<container>-<64 hex>.log`
    if let Some(stem) = name.strip_suffix(".log") {
        let parts: Vec<&str> = stem.split('_').collect();
        if let [pod, namespace, container_id] = parts[..] {
            if let Some((container, id)) = container_id.rsplit_once('-') {
                if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return place(Some(namespace), Some(pod), Some(container));
                }
            }
        }
    }
    Place {
        service: crate::parse::plain::service_of_file(origin).map(str::to_string),
        ..Place::default()
    }
}

fn place(namespace: Option<&str>, pod: Option<&str>, container: Option<&str>) -> Place {
    let own = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    Place {
        namespace: own(namespace),
        service: own(pod.map(workload_of_pod)).or_else(|| own(container)),
        pod: own(pod),
        container: own(container),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Level, Timestamp};

    fn read(origin: &str, line: &str) -> models::LogRecord {
        let mut p = CriParser::default();
        let raw = RawRecord::line(origin.into(), 1, line.as_bytes().to_vec());
        let mut out = Vec::new();
        p.parse(line, &raw, &mut out).unwrap();
        match out.remove(0) {
            Event::Log(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// Lines in the shape containerd writes (the CRI logging format, as in
    /// Kubernetes' `kuberuntime` log tests and Fluent Bit's `cri` parser
    /// documentation), under both kubelet paths.
    #[test]
    fn a_kubelet_log_line_is_read_with_its_pods_coordinates() {
        let pods = "/var/log/pods/shop_frontend-7d9f8b8c9-x2x4k_0f1e2d3c-aaaa-bbbb-cccc-1234567890ab/server/0.log";
        let r = read(
            pods,
            r#"2023-01-30T08:00:01.123456789Z stdout F {"severity":"error","message":"failed to retrieve ads","timestamp":"2023-01-30T08:00:01.1Z"}"#,
        );
        assert_eq!(
            r.timestamp,
            Timestamp::parse_rfc3339("2023-01-30T08:00:01.123Z").unwrap()
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "failed to retrieve ads");
        assert_eq!(r.service.as_deref(), Some("frontend"));
        assert_eq!(r.container.as_deref(), Some("frontend-7d9f8b8c9-x2x4k"));
        let link = "/var/log/containers/ts-travel-service-5f55b6cf68-77cfw_train-ticket_ts-travel-service-3c5ba0a5d63e8e6b6b2fc5cbbb6b2b0e5c3b0a2f7f0d0c9b8a7f6e5d4c3b2a10.log";
        let r = read(
            link,
            "2023-01-29T10:04:02.074Z stderr F 18:04:02.074 ERROR o.a.c.c.C.[.[.[.[dispatcherServlet]#175 TraceID: 4b883e7beda6aaa54a9483ee75ffd601 SpanID: 05361b11ee3c354d Servlet.service() threw exception",
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.service.as_deref(), Some("ts-travel-service"));
        // The trace context the layout printed is the record's trace, and
        // not part of the statement templates are mined from.
        assert_eq!(r.message, "Servlet.service() threw exception");
        assert_eq!(
            r.trace_id.as_deref(),
            Some("4b883e7beda6aaa54a9483ee75ffd601")
        );
        assert_eq!(r.fields["stream"], FieldValue::Str("stderr".into()));
        // Anywhere else, the file names the service, as for any
        // application log file.
        let r = read(
            "/tmp/payments.log",
            "2023-01-30T08:00:01+01:00 stdout P the first 16 KiB of a long line",
        );
        assert_eq!(r.service.as_deref(), Some("payments"));
        assert_eq!(r.message, "the first 16 KiB of a long line");
        let r = read("/tmp/payments.log", "2023-01-30T08:00:01Z stdout F");
        assert_eq!(r.message, "");
    }

    #[test]
    fn what_is_not_a_cri_line_is_told_apart() {
        for line in [
            "2023-01-30T08:00:01Z stdin F x",
            "2023-01-30T08:00:01Z stdout X x",
            "2023-01-30 08:00:01 stdout F x",
            "stdout F x",
            "",
        ] {
            assert_eq!(split(line), None, "{line:?}");
        }
        assert_eq!(
            split("2023-01-30T08:00:01.5Z stdout F:x a b"),
            Some(("2023-01-30T08:00:01.5Z", "stdout", "F:x", "a b"))
        );
    }
}
