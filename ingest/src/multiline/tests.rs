//! Samples after public documentation and issue reports, shortened:
//! - Java: the `Throwable.printStackTrace` javadoc (nested `Caused by:`,
//!   `... n more`), logback's manual (`%d [%thread] %-5level %logger -
//!   %msg`, `... n common frames omitted`), Spring Boot's reference guide
//!   ("Logging": its console layout) and Tomcat's OneLineFormatter
//!   (tomcat.apache.org, "Logging in Tomcat").
//! - Python: the `logging.exception` and traceback examples of the Python
//!   documentation (`traceback` module), a `requests` ConnectionError as
//!   its users post it.
//! - Go: the runtime's panic output (`panic:`, `[signal SIGSEGV ...]`,
//!   `goroutine 1 [running]:`, frames, `exit status 2`) as the Go
//!   playground prints it.
//! - Shippers: Docker's json-file driver (`{"log":"...\n","stream":
//!   "stderr","time":...}`) and Fluent Bit's Kubernetes filter, one
//!   physical line per record.

use super::*;
use crate::decode::{Decoder, DecoderConfig};
use crate::parse::Format;
use crate::record::RawRecord;
use std::sync::Arc;

/// Decode `lines` of one origin in `format` and flush: the events, and
/// the decoder for its counts.
fn decode(format: &str, lines: &[&str]) -> (Vec<LogRecord>, Decoder) {
    decode_with(format, lines, DecoderConfig::default())
}

fn decode_with(format: &str, lines: &[&str], config: DecoderConfig) -> (Vec<LogRecord>, Decoder) {
    let mut d = Decoder::new(Format::from_name(format).unwrap(), config).unwrap();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let raw = RawRecord::line(Arc::from("app.log"), i as u64 + 1, l.as_bytes().to_vec());
        if let Err(dl) = d.decode(&raw, &mut out) {
            panic!("line {} dead-lettered: {dl:?}", i + 1);
        }
    }
    d.flush(&mut out);
    assert!(d.stats().balanced());
    let logs = out
        .into_iter()
        .map(|e| match e {
            Event::Log(r) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    (logs, d)
}

fn field<'a>(r: &'a LogRecord, k: &str) -> Option<&'a str> {
    r.fields.get(k).and_then(|v| v.as_str())
}

#[test]
fn a_logback_trace_with_nested_causes_is_one_error_record() {
    let (recs, d) = decode(
        "auto",
        &[
            "2023-01-29 16:42:22,380 [http-nio-8080-exec-1] INFO  com.example.web.OrderController - placing order 5531",
            "2023-01-29 16:42:22,382 [http-nio-8080-exec-1] ERROR com.example.service.OrderService - order 5531 could not be saved",
            "org.springframework.dao.DataAccessResourceFailureException: Unable to acquire JDBC Connection; nested exception is org.hibernate.exception.JDBCConnectionException: Unable to acquire JDBC Connection",
            "\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException(HibernateJpaDialect.java:275) ~[spring-orm-5.1.5.RELEASE.jar:5.1.5.RELEASE]",
            "\tat com.example.service.OrderService.save(OrderService.java:61) ~[classes/:na]",
            "Caused by: org.hibernate.exception.JDBCConnectionException: Unable to acquire JDBC Connection",
            "\tat org.hibernate.exception.internal.SQLStateConversionDelegate.convert(SQLStateConversionDelegate.java:115)",
            "\t... 12 common frames omitted",
            "Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms.",
            "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:676)",
            "\t... 12 more",
            "2023-01-29 16:42:22,390 [http-nio-8080-exec-2] INFO  com.example.web.OrderController - placing order 5532",
        ],
    );
    assert_eq!(recs.len(), 3, "{recs:#?}");
    let e = &recs[1];
    assert_eq!(e.level, Some(Level::Error));
    assert_eq!(
        e.message, "order 5531 could not be saved",
        "the first line only"
    );
    assert_eq!(field(e, "logger"), Some("com.example.service.OrderService"));
    assert_eq!(
        field(e, "exception.type"),
        Some("org.springframework.dao.DataAccessResourceFailureException")
    );
    assert!(field(e, "exception.message")
        .unwrap()
        .starts_with("Unable to acquire JDBC Connection"));
    assert_eq!(
        field(e, "exception.frame"),
        Some("org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException(HibernateJpaDialect.java:275)")
    );
    assert_eq!(
        field(e, "exception.cause"),
        Some("java.sql.SQLTransientConnectionException")
    );
    let trace = field(e, "exception.stacktrace").unwrap();
    assert_eq!(trace.lines().count(), 9);
    assert!(trace.ends_with("\t... 12 more"));
    assert!(!recs[2].fields.contains_key("exception.type"));
    let s = d.stats();
    assert_eq!(
        (s.read, s.parsed, s.dead_lettered, s.joined),
        (12, 12, 0, 9)
    );
}

/// An exception whose message runs over several lines (Spring's context
/// failures, an SQL error's text) before its frames: in a plain file the
/// lines between the exception line and the first frame have no header of
/// their own and were dead-lettered as `header_mismatch`; they are the
/// message's, and the record ends at the next header as before. After
/// the frames begin, such a line is not taken.
#[test]
fn an_exception_message_over_several_lines_joins_its_record() {
    let (recs, d) = decode(
        "auto",
        &[
            "2026-01-05 10:00:00.000  INFO 1234 --- [           main] com.example.App                          : Starting App v1.0 on host1",
            "2026-01-05 10:00:01.000 ERROR 1234 --- [           main] o.s.boot.SpringApplication               : Application run failed",
            "org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'dataSource': Invocation of init method failed;",
            "nested exception is java.lang.IllegalStateException: Cannot load driver class: org.h2.Driver",
            "Check the classpath and the driver name",
            "\tat org.springframework.beans.factory.support.AbstractAutowireCapableBeanFactory.initializeBean(AbstractAutowireCapableBeanFactory.java:1786)",
            "\tat org.springframework.boot.SpringApplication.run(SpringApplication.java:315)",
            "Caused by: java.lang.IllegalStateException: Cannot load driver class: org.h2.Driver",
            "\t... 2 common frames omitted",
            "2026-01-05 10:00:02.000  INFO 1234 --- [           main] com.example.App                          : Shutting down",
        ],
    );
    assert_eq!(recs.len(), 3, "{recs:#?}");
    let e = &recs[1];
    assert_eq!(e.level, Some(Level::Error));
    assert_eq!(
        field(e, "exception.type"),
        Some("org.springframework.beans.factory.BeanCreationException")
    );
    assert_eq!(
        field(e, "exception.frame"),
        Some("org.springframework.beans.factory.support.AbstractAutowireCapableBeanFactory.initializeBean(AbstractAutowireCapableBeanFactory.java:1786)")
    );
    let trace = field(e, "exception.stacktrace").unwrap();
    assert!(
        trace.contains("\nCheck the classpath and the driver name\n"),
        "{trace}"
    );
    let s = d.stats();
    assert_eq!(
        (s.read, s.parsed, s.dead_lettered, s.joined),
        (10, 10, 0, 7)
    );

    // Once the frames have begun, a headerless line is not the message.
    let mut d = Decoder::new(Format::Plain, DecoderConfig::default()).unwrap();
    let mut out = Vec::new();
    let raw = |n: u64, l: &str| RawRecord::line(Arc::from("a.log"), n, l.as_bytes().to_vec());
    for (n, l) in [
        "2026-01-05 10:00:00.000 ERROR inventory: save failed",
        "java.io.IOException: disk full",
        "\tat com.example.Store.save(Store.java:10)",
    ]
    .iter()
    .enumerate()
    {
        d.decode(&raw(n as u64 + 1, l), &mut out).unwrap();
    }
    let dl = d.decode(&raw(4, "stray text after the frames"), &mut out);
    assert_eq!(
        dl.unwrap_err().reason,
        crate::DeadLetterReason::HeaderMismatch
    );
}

/// Tomcat's catalina.out: JULI's one-line layout with its indented trace,
/// and Spring Boot's layout, in one file read with `--format auto`.
#[test]
fn catalina_out_mixes_tomcat_and_spring_boot_layouts() {
    let (recs, d) = decode(
        "auto",
        &[
            "05-Mar-2019 10:57:49.021 INFO [main] org.apache.catalina.startup.VersionLoggerListener.log Server version name:   Apache Tomcat/9.0.16",
            "2019-03-05 10:57:51.112  INFO 45469 --- [           main] com.example.shop.ShopApplication         : Starting ShopApplication v1.4.2",
            "05-Mar-2019 10:58:11.902 SEVERE [http-nio-8080-exec-6] org.apache.catalina.core.StandardWrapperValve.invoke Servlet.service() for servlet [jsp] threw exception",
            "\tjava.lang.NullPointerException",
            "\t\tat org.apache.jsp.cart_jsp._jspService(cart_jsp.java:141)",
            "\t\tat javax.servlet.http.HttpServlet.service(HttpServlet.java:741)",
            "2019-03-05 10:58:13.002 ERROR 45469 --- [nio-8080-exec-8] c.example.shop.client.InventoryClient    : stock lookup for sku 7 failed",
            "org.springframework.web.client.ResourceAccessException: I/O error on GET request for \"http://inventory:8080/api/stock/7\": Read timed out; nested exception is java.net.SocketTimeoutException: Read timed out",
            "\tat org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:744)",
            "Caused by: java.net.SocketTimeoutException: Read timed out",
            "\tat java.net.SocketInputStream.socketRead0(Native Method)",
            "\t... 9 more",
        ],
    );
    assert_eq!(d.format_name(), "plain");
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_eq!(
        recs[0].message,
        "Server version name:   Apache Tomcat/9.0.16"
    );
    assert_eq!(
        field(&recs[0], "logger"),
        Some("org.apache.catalina.startup.VersionLoggerListener.log")
    );
    assert_eq!(recs[1].message, "Starting ShopApplication v1.4.2");
    // Not the pid, the thread or the logger: the file the line came from
    // (this test's decoder reads from `app.log`).
    assert_eq!(recs[1].service.as_deref(), Some("app"));
    assert_eq!(field(&recs[1], "thread"), Some("main"));
    assert_eq!(recs[2].level, Some(Level::Error), "SEVERE");
    assert_eq!(
        field(&recs[2], "exception.type"),
        Some("java.lang.NullPointerException")
    );
    assert_eq!(
        field(&recs[2], "exception.frame"),
        Some("org.apache.jsp.cart_jsp._jspService(cart_jsp.java:141)")
    );
    assert_eq!(
        field(&recs[3], "exception.cause"),
        Some("java.net.SocketTimeoutException")
    );
    assert_eq!(
        recs.iter()
            .filter(|r| r.level == Some(Level::Error))
            .count(),
        2
    );
}

#[test]
fn a_python_traceback_joins_its_logged_record() {
    let (recs, _) = decode(
        "plain",
        &[
            "2023-01-29 16:42:22,382 - app.sync - ERROR - fetching inventory failed",
            "Traceback (most recent call last):",
            "  File \"/usr/lib/python3/site-packages/urllib3/connection.py\", line 174, in _new_conn",
            "    conn = connection.create_connection(",
            "urllib3.exceptions.NewConnectionError: <urllib3.connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] Connection refused",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"/srv/app/sync.py\", line 3, in fetch",
            "    r = requests.get(URL, timeout=5)",
            "      ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "requests.exceptions.ConnectionError: HTTPConnectionPool(host='inventory', port=80): Max retries exceeded",
            "2023-01-29 16:42:23,001 - app.sync - INFO - retrying in 5s",
        ],
    );
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let e = &recs[0];
    assert_eq!(e.message, "fetching inventory failed");
    assert_eq!(field(e, "logger"), Some("app.sync"));
    assert_eq!(
        field(e, "exception.type"),
        Some("requests.exceptions.ConnectionError"),
        "the last exception of a chain is the one raised"
    );
    assert_eq!(
        field(e, "exception.frame"),
        Some("File \"/srv/app/sync.py\", line 3, in fetch")
    );
    assert!(field(e, "exception.message")
        .unwrap()
        .starts_with("HTTPConnectionPool"));
}

/// A container's stderr as Docker's json-file driver ships it: one record
/// per physical line, the Go runtime's panic among them.
#[test]
fn a_go_panic_shipped_line_by_line_is_one_fatal_record() {
    let lines: Vec<String> = [
        "2023/01/29 16:42:22 serving on :8080",
        "panic: runtime error: invalid memory address or nil pointer dereference",
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4553d6]",
        "",
        "goroutine 1 [running]:",
        "main.(*Cart).Total(...)",
        "\t/app/cart.go:42",
        "main.main()",
        "\t/app/main.go:12 +0x1d",
        "exit status 2",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| {
        serde_json::json!({"log": format!("{l}\n"), "stream": "stderr", "time": format!("2023-01-29T08:42:22.{:03}Z", i)})
            .to_string()
    })
    .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (recs, d) = decode("auto", &lines);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let p = &recs[1];
    assert_eq!(p.level, Some(Level::Fatal));
    assert_eq!(field(p, "exception.type"), Some("runtime.Error"));
    assert_eq!(
        field(p, "exception.message"),
        Some("invalid memory address or nil pointer dereference")
    );
    assert_eq!(
        field(p, "exception.frame"),
        Some("main.(*Cart).Total(...) /app/cart.go:42")
    );
    assert_eq!(d.stats().joined, 8);
}

/// Fluent Bit's Kubernetes records of two pods, interleaved line by line:
/// each trace joins its own pod's record, never the other's.
#[test]
fn interleaved_streams_are_not_mixed() {
    let rec = |pod: &str, ms: u32, log: &str| {
        serde_json::json!({
            "time": format!("2023-01-29T08:43:26.{ms:03}Z"),
            "stream": "stdout",
            "log": format!("{log}\n"),
            "kubernetes": {"pod_name": pod, "container_name": "server", "host": "33.33.33.115",
                "labels": {"app": "ts-preserve-service"}},
        })
        .to_string()
    };
    let lines = [
        rec("preserve-a", 1, "16:43:26.379 ERROR c.s.PreserveServiceImpl#88 [preserve][failed]"),
        rec("preserve-b", 2, "16:43:26.380 ERROR c.s.PreserveServiceImpl#88 [preserve][failed]"),
        rec("preserve-a", 3, "java.lang.IllegalStateException: No instances available for ts-food-service"),
        rec("preserve-b", 4, "org.springframework.web.client.HttpServerErrorException: 500 null"),
        rec("preserve-a", 5, "\tat org.springframework.cloud.netflix.ribbon.RibbonLoadBalancerClient.execute(RibbonLoadBalancerClient.java:90)"),
        rec("preserve-b", 6, "\tat org.springframework.web.client.DefaultResponseErrorHandler.handleError(DefaultResponseErrorHandler.java:79)"),
        rec("preserve-a", 7, "\tat preserve.service.PreserveServiceImpl.preserve(PreserveServiceImpl.java:88)"),
        rec("preserve-b", 8, "16:43:26.390 INFO  c.s.PreserveServiceImpl#40 [preserve][retry]"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (recs, d) = decode("auto", &lines);
    let got: Vec<(Option<&str>, Option<&str>, Option<&str>)> = recs
        .iter()
        .map(|r| {
            (
                r.container.as_deref(),
                field(r, "exception.type"),
                field(r, "exception.frame"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                Some("preserve-a"),
                Some("java.lang.IllegalStateException"),
                Some("org.springframework.cloud.netflix.ribbon.RibbonLoadBalancerClient.execute(RibbonLoadBalancerClient.java:90)")
            ),
            (
                Some("preserve-b"),
                Some("org.springframework.web.client.HttpServerErrorException"),
                Some("org.springframework.web.client.DefaultResponseErrorHandler.handleError(DefaultResponseErrorHandler.java:79)")
            ),
            (Some("preserve-b"), None, None),
        ],
        "records leave in the order they came"
    );
    assert_eq!(
        field(&recs[0], "exception.stacktrace")
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert_eq!(d.stats().joined, 5);
}

/// A trace after an info record is a crash of its own, not that record's
/// detail; a line that continues nothing stays a record (JSON) or a dead
/// letter (plain text).
#[test]
fn what_does_not_continue_stays_apart() {
    let docker = |l: &str| {
        serde_json::json!({"log": l, "stream": "stderr", "time": "2023-01-29T08:42:22Z"})
            .to_string()
    };
    let lines = [
        docker("16:42:22.100 INFO  c.e.App - started"),
        docker("Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space"),
        docker("\tat java.util.Arrays.copyOf(Arrays.java:3332)"),
        docker("TimeoutError: the upstream did not answer"),
        docker("done"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (recs, _) = decode("auto", &lines);
    let types: Vec<Option<&str>> = recs.iter().map(|r| field(r, "exception.type")).collect();
    assert_eq!(
        types,
        [
            None,
            Some("java.lang.OutOfMemoryError"),
            Some("TimeoutError"),
            None
        ],
        "{recs:#?}"
    );
    assert_eq!(recs[1].level, Some(Level::Error));

    let mut d = Decoder::new(Format::Plain, DecoderConfig::default()).unwrap();
    let mut out = Vec::new();
    let raw = |n: u64, l: &str| RawRecord::line(Arc::from("a.log"), n, l.as_bytes().to_vec());
    let dl = d.decode(
        &raw(1, "\tat com.example.Orphan.run(Orphan.java:1)"),
        &mut out,
    );
    assert!(dl.is_err(), "nothing to continue yet");
    d.decode(
        &raw(2, "2026-01-05 10:00:00.000 INFO inventory: ok"),
        &mut out,
    )
    .unwrap();
    let dl = d.decode(&raw(3, "not a header, not indented"), &mut out);
    assert_eq!(
        dl.unwrap_err().reason,
        crate::DeadLetterReason::HeaderMismatch
    );
    d.decode(&raw(4, "    indented detail"), &mut out).unwrap();
    d.flush(&mut out);
    let Event::Log(r) = &out[0] else { panic!() };
    assert_eq!(field(r, "log.continuation"), Some("    indented detail"));
    assert!(!r.fields.contains_key("exception.type"));
    assert!(d.stats().balanced());
}

#[test]
fn a_record_takes_a_bounded_number_of_lines_and_bytes() {
    let mut lines = vec!["2026-01-05 10:00:00.000 ERROR worker: job failed".to_string()];
    lines.push("java.lang.StackOverflowError".into());
    for i in 0..(MAX_LINES + 10) {
        lines.push(format!(
            "\tat com.example.Recursive.call(Recursive.java:{i})"
        ));
    }
    lines.push("2026-01-05 10:00:01.000 INFO worker: next".into());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (recs, d) = decode("plain", &lines);
    assert_eq!(recs.len(), 2);
    let trace = field(&recs[0], "exception.stacktrace").unwrap();
    assert_eq!(trace.lines().count(), MAX_LINES as usize);
    assert_eq!(d.stats().joined, u64::from(MAX_LINES) + 11);
    assert_eq!(d.stats().join_truncated, 11);

    let small = DecoderConfig {
        max_line_bytes: 200,
        ..DecoderConfig::default()
    };
    let (recs, d) = decode_with("plain", &lines[..8], small);
    assert!(field(&recs[0], "exception.stacktrace").unwrap().len() < 200);
    assert!(d.stats().join_truncated > 0);
}

/// A held record leaves when its origin moves on in event time, even if
/// its own stream says nothing more, and the held state survives a
/// hand-over to another decoder.
#[test]
fn holding_is_bounded_by_event_time_and_survives_a_checkpoint() {
    let rec = |pod: &str, s: u32, log: &str| {
        serde_json::json!({"time": format!("2023-01-29T08:43:{s:02}Z"), "log": log,
            "kubernetes": {"pod_name": pod}})
        .to_string()
    };
    let raw = |n: u64, l: String| RawRecord::line(Arc::from("k8s"), n, l.into_bytes());
    let mut d = Decoder::new(Format::Json, DecoderConfig::default()).unwrap();
    let mut out = Vec::new();
    d.decode(&raw(1, rec("a", 0, "ERROR c.e.A - boom")), &mut out)
        .unwrap();
    d.decode(&raw(2, rec("b", 1, "INFO c.e.B - fine")), &mut out)
        .unwrap();
    assert!(out.is_empty(), "a's record may still get its trace");
    let state = d.state();
    let mut d = Decoder::restore(state, DecoderConfig::default()).unwrap();
    d.decode(
        &raw(3, rec("a", 1, "java.io.IOException: broken pipe")),
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
    d.decode(&raw(4, rec("b", 5, "INFO c.e.B - later")), &mut out)
        .unwrap();
    assert_eq!(out.len(), 2, "both are over {HOLD_GAP_MS} ms old");
    let Event::Log(a) = &out[0] else { panic!() };
    assert_eq!(field(a, "exception.type"), Some("java.io.IOException"));
    assert!(d.holds());
    d.flush(&mut out);
    assert_eq!(out.len(), 3);
    assert!(!d.holds());
}

#[test]
fn exception_lines() {
    assert_eq!(
        exception_class("java.net.SocketTimeoutException: Read timed out"),
        Some(("java.net.SocketTimeoutException", Some("Read timed out")))
    );
    assert_eq!(
        exception_class("HighLevelException: MidLevelException: LowLevelException"),
        Some((
            "HighLevelException",
            Some("MidLevelException: LowLevelException")
        ))
    );
    assert_eq!(
        exception_class("java.lang.NullPointerException"),
        Some(("java.lang.NullPointerException", None))
    );
    for not in [
        "ERROR: disk full",
        "Error",
        "16:42:22.382 ERROR c.s.Foo",
        "the Exception: x",
        "com..FooException: x",
        "FooException occurred",
    ] {
        assert_eq!(exception_class(not), None, "{not}");
    }
}

/// Traefik's JSON access log writes `"msg":""` on every request: a
/// blank message joins the record before it when a shipper split a
/// trace's blank line off, but a record with an HTTP status is a whole
/// request of its own (sample after Traefik's access-log documentation).
#[test]
fn a_request_record_with_a_blank_message_is_its_own_record() {
    let (recs, _) = decode(
        "json",
        &[
            r#"{"ClientHost":"10.0.0.7","DownstreamStatus":200,"Duration":12000000,"RequestHost":"shop.example.com","RequestMethod":"GET","RequestPath":"/api/cart","level":"info","msg":"","time":"2023-01-29T16:42:22Z"}"#,
            r#"{"ClientHost":"10.0.0.7","DownstreamStatus":502,"Duration":3001000000,"RequestHost":"shop.example.com","RequestMethod":"POST","RequestPath":"/api/pay","level":"info","msg":"","time":"2023-01-29T16:42:25Z"}"#,
        ],
    );
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].fields["status"], FieldValue::Int(502));
    assert_eq!(recs[1].fields["duration_seconds"], FieldValue::Float(3.001));
}
