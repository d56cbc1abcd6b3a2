//! The offload executor: cold files under configured roots move to another
//! storage tier (`object_store`: a local directory by default, S3-compatible
//! stores with the `s3` feature), each one copied, verified by checksum and
//! only then deleted at the source.
//!
//! A journal (JSON lines, fsynced before each step takes effect) makes an
//! offload resumable and idempotent: per file the steps are
//! `copied` (sha256 and size recorded) -> `verified` (the copy read back,
//! and the source read again, match that checksum) -> `deleted`. After a
//! crash at any point the next run of the same offload id picks each file
//! up at its last step: a copy is overwritten at the same key (never
//! duplicated), a source is deleted only after a `verified` record, and a
//! file whose source changed since its copy is copied again. A completed
//! offload run again changes nothing. Status per offload (`pending`,
//! `running`, `complete`, `failed`) is a fold over the journal
//! ([`OffloadExecutor::status`], `remedy offload-status`).
//!
//! Files are read, copied and checked in pieces ([`CHUNK_BYTES`]): a large
//! file goes up as a multipart upload and its checksums are computed as it
//! streams, so memory does not grow with file size.

use super::config::{ExecutionConfig, Settings};
use super::{wall_now, BoxFuture, Built, Executor, Outcome, Registration, Report};
use crate::policy::Policy;
use crate::Error;
use models::{Action, ActionKind, ActionName, OffloadMode, Timestamp};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const NAME: &str = "object_store";

/// The offload executor in the registry: cold-data offloads, the default
/// for `offload` (a load offload it refuses: only a webhook receiver can
/// move load).
pub const EXECUTOR: Registration = Registration {
    name: NAME,
    actions: &[ActionName::Offload],
    default_for: &[ActionName::Offload],
    check: |config, _| config.settings::<ObjectStoreConfig>().map(|_| ()),
    build,
};

/// `[execution.object_store]`: where cold data goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectStoreConfig {
    /// Directories whose files may be offloaded; nothing outside them is
    /// ever read or deleted.
    pub roots: Vec<PathBuf>,
    /// The other tier as a URL: `file:///dir` (default kind), or
    /// `s3://bucket/prefix` when built with the `s3` feature.
    pub destination: String,
    /// Options handed to the store builder (`aws_endpoint`, `aws_region`...).
    pub options: BTreeMap<String, String>,
    /// The journal that makes offloads resumable (JSON lines, fsynced).
    pub journal: PathBuf,
}

impl Settings for ObjectStoreConfig {
    const SECTION: &'static str = NAME;
}

/// No destination means no cold tier is set up: not built (offloads are
/// refused with `no_executor`); a destination with bad roots or an
/// unreachable store is an error.
fn build(config: &ExecutionConfig) -> Built {
    let o: ObjectStoreConfig = config.settings()?;
    if o.destination.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(OffloadExecutor::from_config(&o)?)))
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The offload id (the action id, or a scheduled run's id).
    pub offload: String,
    /// `pending`, `copied`, `verified`, `deleted`, `complete`, `failed`.
    pub step: String,
    /// The source file (file steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Its key in the other tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Its sha256 (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// When (wall clock).
    pub at: Timestamp,
    /// A note (`pending`: files found; `failed`: the error).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Where an offload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffloadState {
    /// Files chosen, none moved yet.
    Pending,
    /// Under way, or interrupted (run it again to resume).
    Running,
    /// Every chosen file copied, verified and deleted at the source.
    Complete,
    /// Stopped on an error (run it again to resume).
    Failed,
}

/// One offload's status, folded from the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffloadStatus {
    /// The offload id.
    pub offload: String,
    /// Its state.
    pub state: OffloadState,
    /// Files it has touched.
    pub files: usize,
    /// Files moved (deleted at the source after verification).
    pub moved: usize,
    /// Bytes moved.
    pub bytes_moved: u64,
    /// The last error, when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Moves cold data to another tier.
pub struct OffloadExecutor {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    roots: Vec<PathBuf>,
    journal: PathBuf,
    /// Pause after each step: lets tests stop the process mid-offload.
    step_delay: Duration,
}

impl OffloadExecutor {
    /// From the policy's `[execution.object_store]`: the destination URL
    /// (`file:///dir` is created if missing), the roots (must exist) and
    /// the journal path.
    pub fn from_config(config: &ObjectStoreConfig) -> crate::Result<OffloadExecutor> {
        if config.roots.is_empty() {
            return Err(Error::exec(
                NAME,
                "execution.object_store.roots is empty: nothing may be offloaded",
            ));
        }
        let url = url::Url::parse(&config.destination).map_err(|e| {
            Error::exec(
                NAME,
                format!(
                    "execution.object_store.destination {:?}: {e}",
                    config.destination
                ),
            )
        })?;
        if url.scheme() == "file" {
            std::fs::create_dir_all(url.path()).map_err(|e| {
                Error::exec(
                    NAME,
                    format!("cannot create destination {}: {e}", url.path()),
                )
            })?;
        }
        let (store, prefix) = object_store::parse_url_opts(&url, config.options.iter())
            .map_err(|e| Error::exec(NAME, format!("destination {}: {e}", config.destination)))?;
        let mut roots = Vec::new();
        for r in &config.roots {
            roots
                .push(r.canonicalize().map_err(|e| {
                    Error::exec(NAME, format!("offload root {}: {e}", r.display()))
                })?);
        }
        let step_delay = std::env::var("REMEDY_OFFLOAD_STEP_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        Ok(OffloadExecutor {
            store: Arc::from(store),
            prefix: prefix.to_string(),
            roots,
            journal: config.journal.clone(),
            step_delay,
        })
    }

    /// Every offload in `journal` with its status, in first-seen order.
    pub fn status(journal: &Path) -> crate::Result<Vec<OffloadStatus>> {
        let mut order: Vec<String> = Vec::new();
        let mut by: BTreeMap<String, OffloadStatus> = BTreeMap::new();
        let mut files: BTreeMap<(String, PathBuf), ()> = BTreeMap::new();
        for r in read_journal(journal)? {
            let s = by.entry(r.offload.clone()).or_insert_with(|| {
                order.push(r.offload.clone());
                OffloadStatus {
                    offload: r.offload.clone(),
                    state: OffloadState::Pending,
                    files: 0,
                    moved: 0,
                    bytes_moved: 0,
                    error: None,
                }
            });
            if let Some(f) = &r.file {
                if files.insert((r.offload.clone(), f.clone()), ()).is_none() {
                    s.files += 1;
                }
            }
            match r.step.as_str() {
                "pending" => {}
                "complete" => {
                    s.state = OffloadState::Complete;
                    s.error = None;
                }
                "failed" => {
                    s.state = OffloadState::Failed;
                    s.error = Some(r.detail.clone());
                }
                step => {
                    s.state = OffloadState::Running;
                    if step == "deleted" {
                        s.moved += 1;
                        s.bytes_moved += r.size.unwrap_or(0);
                    }
                }
            }
        }
        Ok(order.into_iter().filter_map(|o| by.remove(&o)).collect())
    }

    fn append(&self, record: &JournalRecord) -> crate::Result<()> {
        if let Some(dir) = self.journal.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.journal)?;
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::from)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()?;
        Ok(())
    }

    fn record(
        &self,
        id: &str,
        step: &str,
        file: Option<&FileState>,
        detail: String,
    ) -> crate::Result<()> {
        self.append(&JournalRecord {
            offload: id.to_string(),
            step: step.to_string(),
            file: file.map(|f| f.path.clone()),
            key: file.map(|f| f.key.clone()),
            size: file.and_then(|f| f.size),
            sha256: file.and_then(|f| f.sha256.clone()),
            at: wall_now(),
            detail,
        })
    }

    /// Regular files (no symlinks) under the roots, at least `min_age` old
    /// and `min_size` large, with their keys in the other tier.
    fn candidates(
        &self,
        min_age: Option<u64>,
        min_size: Option<u64>,
    ) -> crate::Result<Vec<(PathBuf, String)>> {
        let now = std::time::SystemTime::now();
        let mut out = Vec::new();
        for root in &self.roots {
            let base = root
                .file_name()
                .map_or("root".into(), |n| n.to_string_lossy().to_string());
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
                entries.sort_by_key(|e| e.path());
                for e in entries {
                    let meta = std::fs::symlink_metadata(e.path())?;
                    if meta.is_dir() {
                        stack.push(e.path());
                        continue;
                    }
                    if !meta.is_file() {
                        continue;
                    }
                    let age = now
                        .duration_since(meta.modified()?)
                        .unwrap_or_default()
                        .as_secs();
                    if min_age.is_some_and(|a| age < a) || min_size.is_some_and(|s| meta.len() < s)
                    {
                        continue;
                    }
                    let rel = e
                        .path()
                        .strip_prefix(root)
                        .unwrap_or(&e.path())
                        .to_path_buf();
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    let key = if self.prefix.is_empty() {
                        format!("{base}/{rel}")
                    } else {
                        format!("{}/{base}/{rel}", self.prefix)
                    };
                    out.push((e.path(), key));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Run (or resume) offload `id`.
    pub async fn run(
        &self,
        id: &str,
        min_age: Option<u64>,
        min_size: Option<u64>,
    ) -> crate::Result<Report> {
        match self.run_inner(id, min_age, min_size).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.record(id, "failed", None, e.to_string())?;
                Err(e)
            }
        }
    }

    async fn run_inner(
        &self,
        id: &str,
        min_age: Option<u64>,
        min_size: Option<u64>,
    ) -> crate::Result<Report> {
        let records: Vec<JournalRecord> = read_journal(&self.journal)?
            .into_iter()
            .filter(|r| r.offload == id)
            .collect();
        if records.iter().any(|r| r.step == "complete") {
            return Ok(Report {
                detail: format!("offload {id} already complete; nothing changed"),
                ..Report::default()
            });
        }
        // Each file's last step, in the order first journaled.
        let mut files: Vec<FileState> = Vec::new();
        for r in &records {
            let Some(path) = &r.file else { continue };
            let i = match files.iter().position(|f| &f.path == path) {
                Some(i) => i,
                None => {
                    files.push(FileState {
                        path: path.clone(),
                        key: r.key.clone().unwrap_or_default(),
                        step: String::new(),
                        size: None,
                        sha256: None,
                    });
                    files.len() - 1
                }
            };
            let f = &mut files[i];
            f.step = r.step.clone();
            if r.step == "copied" {
                f.size = r.size;
                f.sha256 = r.sha256.clone();
            }
        }
        // Files chosen now (on a resume: those not journaled yet, under the
        // same age and size rules).
        let found = self.candidates(min_age, min_size)?;
        if records.is_empty() {
            self.record(id, "pending", None, format!("{} files chosen", found.len()))?;
        }
        for (path, key) in found {
            if !files.iter().any(|f| f.path == path) {
                files.push(FileState {
                    path,
                    key,
                    step: String::new(),
                    size: None,
                    sha256: None,
                });
            }
        }
        let mut report = Report::default();
        let mut resumed = 0;
        for f in &mut files {
            if !f.step.is_empty() && f.step != "deleted" {
                resumed += 1;
            }
            loop {
                match f.step.as_str() {
                    "deleted" => break,
                    "verified" => {
                        match std::fs::remove_file(&f.path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => {
                                return Err(Error::exec(
                                    NAME,
                                    format!("deleting {}: {e}", f.path.display()),
                                ))
                            }
                        }
                        if let Some(dir) = f.path.parent() {
                            if let Ok(d) = std::fs::File::open(dir) {
                                let _ = d.sync_all();
                            }
                        }
                        self.record(id, "deleted", Some(f), String::new())?;
                        f.step = "deleted".into();
                        report.objects.push(f.path.display().to_string());
                        report.bytes += f.size.unwrap_or(0);
                    }
                    "copied" => {
                        let source = match hash_file(&f.path) {
                            Ok((sum, _)) => sum,
                            Err(e) => {
                                return Err(Error::exec(
                                    NAME,
                                    format!(
                                        "source {} vanished before verification: {e}",
                                        f.path.display()
                                    ),
                                ))
                            }
                        };
                        let copy = hash_stored(&*self.store, &f.key).await?;
                        let want = f.sha256.clone().unwrap_or_default();
                        if source != want || copy != want {
                            // The source changed since, or the copy is
                            // damaged: copy again.
                            f.step = String::new();
                            continue;
                        }
                        self.record(id, "verified", Some(f), String::new())?;
                        f.step = "verified".into();
                    }
                    _ => {
                        let file = match std::fs::File::open(&f.path) {
                            Ok(file) => file,
                            // Gone before its first copy: someone else
                            // removed it; nothing of ours to lose.
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                                f.step = "deleted".into();
                                break;
                            }
                            Err(e) => {
                                return Err(Error::exec(
                                    NAME,
                                    format!("reading {}: {e}", f.path.display()),
                                ))
                            }
                        };
                        let (sum, size) =
                            copy_file(&*self.store, file, &f.key).await.map_err(|e| {
                                Error::exec(
                                    NAME,
                                    format!("copying {} to {}: {e}", f.path.display(), f.key),
                                )
                            })?;
                        f.size = Some(size);
                        f.sha256 = Some(sum);
                        self.record(id, "copied", Some(f), String::new())?;
                        f.step = "copied".into();
                    }
                }
                if !self.step_delay.is_zero() {
                    tokio::time::sleep(self.step_delay).await;
                }
            }
        }
        self.record(
            id,
            "complete",
            None,
            format!("{} files, {} bytes", report.objects.len(), report.bytes),
        )?;
        report.detail = format!(
            "offloaded {} files ({} bytes) to {}{}",
            report.objects.len(),
            report.bytes,
            if self.prefix.is_empty() {
                "the other tier"
            } else {
                &self.prefix
            },
            if resumed > 0 {
                format!(", resuming {resumed} interrupted")
            } else {
                String::new()
            }
        );
        Ok(report)
    }
}

struct FileState {
    path: PathBuf,
    key: String,
    step: String,
    size: Option<u64>,
    sha256: Option<String>,
}

/// Files are read, copied and checked in pieces of this size, so an
/// offload holds at most three of them in memory (one being read, one
/// buffered as the next part, one uploading) whatever the size of the
/// files. A file that fits in one piece
/// is stored with a single put; a larger one as a multipart upload (S3
/// wants parts of at least 5 MiB, all but the last).
pub const CHUNK_BYTES: usize = 8 << 20;

/// Read up to `buf.len()` bytes (fewer only at the end of the file).
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a copy failed on.
#[derive(Debug)]
enum CopyError {
    Read(std::io::Error),
    Store(object_store::Error),
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::Read(e) => write!(f, "reading the source: {e}"),
            CopyError::Store(e) => write!(f, "writing the copy: {e}"),
        }
    }
}

/// Copy `file` to `key`, piece by piece; returns the sha256 (hex) and size
/// of what was read, which is what was stored.
async fn copy_file(
    store: &dyn ObjectStore,
    mut file: std::fs::File,
    key: &str,
) -> Result<(String, u64), CopyError> {
    let key = StorePath::from(key);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let n = read_full(&mut file, &mut buf).map_err(CopyError::Read)?;
    hasher.update(&buf[..n]);
    if n < CHUNK_BYTES {
        buf.truncate(n);
        store
            .put(&key, PutPayload::from(buf))
            .await
            .map_err(CopyError::Store)?;
        return Ok((hex::encode(hasher.finalize()), n as u64));
    }
    let upload = store.put_multipart(&key).await.map_err(CopyError::Store)?;
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, CHUNK_BYTES);
    let mut size = n as u64;
    writer.write(&buf[..n]);
    let result: Result<(), CopyError> = async {
        loop {
            let n = read_full(&mut file, &mut buf).map_err(CopyError::Read)?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            // One part uploading while the next is read.
            writer
                .wait_for_capacity(1)
                .await
                .map_err(CopyError::Store)?;
            writer.write(&buf[..n]);
        }
    }
    .await;
    match result {
        Ok(()) => {
            writer.finish().await.map_err(CopyError::Store)?;
            Ok((hex::encode(hasher.finalize()), size))
        }
        Err(e) => {
            // Leave no half-written parts behind (best effort: the error
            // that stopped the copy is the one to report).
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// The sha256 (hex) and size of a local file, read piece by piece.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES.min(1 << 20)];
    let mut size = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            return Ok((hex::encode(hasher.finalize()), size));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// The sha256 (hex) of the stored copy at `key`, read as a stream.
async fn hash_stored(store: &dyn ObjectStore, key: &str) -> crate::Result<String> {
    use futures::StreamExt;
    let err = |e: object_store::Error| Error::exec(NAME, format!("reading back {key}: {e}"));
    let mut stream = store
        .get(&StorePath::from(key))
        .await
        .map_err(err)?
        .into_stream();
    let mut hasher = Sha256::new();
    while let Some(piece) = stream.next().await {
        hasher.update(&piece.map_err(err)?);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn read_journal(path: &Path) -> crate::Result<Vec<JournalRecord>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(path)?)
        .lines()
        .collect::<Result<_, _>>()?;
    let n = lines.len();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            // A torn last line: the step it described did not take effect.
            Err(_) if i + 1 == n => {}
            Err(e) => {
                return Err(Error::exec(
                    NAME,
                    format!("journal {} line {}: {e}", path.display(), i + 1),
                ))
            }
        }
    }
    Ok(out)
}

impl Executor for OffloadExecutor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn execute<'a>(
        &'a self,
        action: &'a Action,
        _policy: &'a Policy,
    ) -> BoxFuture<'a, crate::Result<Outcome>> {
        Box::pin(async move {
            match &action.kind {
                ActionKind::Offload {
                    mode: OffloadMode::ColdData,
                    min_age_secs,
                    min_size_bytes,
                } => Ok(Outcome::Done(
                    self.run(&action.id, *min_age_secs, *min_size_bytes).await?,
                )),
                ActionKind::Offload {
                    mode: OffloadMode::Load,
                    ..
                } => Ok(Outcome::Refused(
                    "not_supported: a load offload needs the webhook executor".into(),
                )),
                other => Ok(Outcome::Refused(format!(
                    "not_supported: the object_store executor does not {}",
                    other.name()
                ))),
            }
        })
    }
}
