//! Parser and miner throughput (MB/s) on the bundled datasets:
//! `cargo bench -p ingest --no-default-features --bench parsers`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ingest::decode::{Decoder, DecoderConfig};
use ingest::mining::{MinerConfig, TemplateMiner};
use ingest::parse::header::HeaderFormat;
use ingest::source::file::LineReader;
use ingest::{Format, RawRecord};
use std::path::Path;

fn lines(rel: &str) -> Vec<RawRecord> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    LineReader::open(&path, 1 << 20)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .map(Result::unwrap)
        .collect()
}

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, file, format) in [
        ("json-ecs", "datasets/demo/logs/gateway.ecs.json.gz", "json"),
        (
            "json-otel",
            "datasets/demo/logs/checkout.otel.json.gz",
            "json",
        ),
        ("logfmt", "datasets/demo/logs/payments.logfmt.gz", "logfmt"),
        ("plain", "datasets/demo/logs/inventory.log.gz", "plain"),
        ("syslog", "datasets/demo/logs/database.syslog.gz", "syslog"),
        (
            "prometheus",
            "datasets/demo/metrics/node-1.prom.gz",
            "prometheus",
        ),
        (
            "prom-json",
            "datasets/demo/metrics/adapter.jsonl.gz",
            "prom-json",
        ),
    ] {
        let recs = lines(file);
        let bytes: usize = recs.iter().map(|r| r.bytes.len() + 1).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        let fmt = Format::from_name(format).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(name), &recs, |b, recs| {
            b.iter(|| {
                let mut d = Decoder::new(fmt.clone(), DecoderConfig::default()).unwrap();
                let mut out = Vec::with_capacity(4);
                for r in recs {
                    out.clear();
                    let _ = d.decode(r, &mut out);
                }
                d.stats().parsed
            })
        });
    }
    // Lines no format recognises, read with `--format auto`: each is
    // sniffed against every format before it is dead-lettered, so this is
    // the cost of a file the sniffer cannot place.
    let unrecognised: Vec<RawRecord> = (0..2_000u64)
        .map(|i| RawRecord {
            bytes: format!("{i} something happened with id {:x} and words", i * 7919).into_bytes(),
            ..Default::default()
        })
        .collect();
    let bytes: usize = unrecognised.iter().map(|r| r.bytes.len() + 1).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_with_input(
        BenchmarkId::from_parameter("auto-unrecognised"),
        &unrecognised,
        |b, recs| {
            b.iter(|| {
                let mut d = Decoder::new(Format::Auto, DecoderConfig::default()).unwrap();
                let mut out = Vec::with_capacity(4);
                for r in recs {
                    out.clear();
                    let _ = d.decode(r, &mut out);
                }
                d.stats().dead_lettered
            })
        },
    );
    g.finish();
}

fn mining(c: &mut Criterion) {
    let mut g = c.benchmark_group("mine");
    let settings: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/loghub-2k/settings.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for system in ["HDFS", "Linux", "OpenSSH"] {
        let cfg = &settings[system];
        let format = HeaderFormat::new(cfg["log_format"].as_str().unwrap()).unwrap();
        let masks: Vec<String> = cfg["masks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        let text: Vec<String> = lines(&format!("datasets/loghub-2k/{system}/{system}_2k.log"))
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .collect();
        let contents: Vec<&str> = text.iter().map(|l| format.content(l)).collect();
        g.throughput(Throughput::Elements(contents.len() as u64));
        g.bench_function(system, |b| {
            b.iter(|| {
                let mut m = TemplateMiner::new(MinerConfig {
                    masks: masks.clone(),
                    ..MinerConfig::default()
                })
                .unwrap();
                for c in &contents {
                    m.add(c);
                }
                m.stats().templates
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parsers, mining);
criterion_main!(benches);
