//! Lines from files, directories and stdin.
//!
//! Directories are walked recursively in sorted order (so a replay always
//! reads the same files in the same order); hidden entries (starting with
//! `.`) are skipped. A file is decompressed when it starts with the gzip
//! magic bytes, whatever its name. Lines are split on `\n` with a trailing
//! `\r` removed. A line longer than the cap keeps only its first `cap + 1`
//! bytes, so a hostile input cannot make us allocate without bound, while
//! the decoder can still see it was too long and dead-letter it.

use crate::error::{Error, Result};
use crate::record::RawRecord;
use flate2::read::MultiGzDecoder;
pub use globset::GlobSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Reads lines from a list of files (directories expanded), one after the
/// other, as [`RawRecord`]s numbered from 1 in each file.
pub struct FileSource {
    files: Vec<PathBuf>,
    /// Each file's path relative to the directory it was found under (a
    /// file named on the command line: its path as given), what
    /// `--exclude` and `--format GLOB=FORMAT` match.
    relative: Vec<PathBuf>,
    /// Files left out as a dataset's metadata (see [`is_metadata`]), for
    /// the report to name: a skip the user cannot see is a silent loss.
    skipped: Vec<PathBuf>,
    next_file: usize,
    current: Option<LineReader>,
    max_line_bytes: usize,
}

/// Lines of one file or stream.
///
/// A regular file can be let go of between reads ([`LineReader::park`]:
/// its descriptor and read buffer are closed) and is opened again where it
/// stopped at the next read, so a replay of thousands of files holds only
/// a few open at once; [`LineReader::lazy`] opens it only at the first
/// read. A pipe, a FIFO or standard input is read once, from one open.
pub struct LineReader {
    origin: Arc<str>,
    /// `None` while parked (or not yet opened).
    reader: Option<Box<dyn BufRead + Send>>,
    line_no: u64,
    max_line_bytes: usize,
    path: PathBuf,
    /// A read failed: the input ends there (a damaged `.gz` would
    /// otherwise fail again, or worse, at every later call).
    failed: bool,
    /// Bytes of the input (decompressed) consumed so far: where a parked
    /// reader resumes.
    offset: u64,
    /// How to open the file again; `None` for a stream read only once.
    reopen: Option<Reopen>,
}

/// What a parked regular file is opened again with.
#[derive(Debug, Clone, Copy)]
struct Reopen {
    /// It starts with the gzip magic bytes.
    gzip: bool,
    /// Device and inode when it was first opened: a file replaced since
    /// (rotated away) is not read as if it were the same.
    id: Option<(u64, u64)>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Device and inode of an open file, where the platform has them.
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

impl LineReader {
    /// Lines of an open reader; `origin` names it in records and errors.
    pub fn new(origin: &str, reader: Box<dyn BufRead + Send>, max_line_bytes: usize) -> Self {
        LineReader {
            origin: Arc::from(origin),
            reader: Some(reader),
            line_no: 0,
            max_line_bytes,
            path: PathBuf::from(origin),
            failed: false,
            offset: 0,
            reopen: None,
        }
    }

    /// Lines of a file, gunzipped when it is gzip.
    pub fn open(path: &Path, max_line_bytes: usize) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        // Opened once, and the two bytes read to look for the gzip magic
        // put back in front of the rest: a pipe, a FIFO or `<(process
        // substitution)` can be read only once, and opening a FIFO a
        // second time waits for a writer that has gone.
        let mut file = File::open(path).map_err(io)?;
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut file, &mut magic).map_err(io)?;
        let gzip = n == 2 && magic == GZIP_MAGIC;
        // A regular file can be parked and opened again; anything else is
        // read from this one open.
        let reopen = match file.metadata() {
            Ok(m) if m.is_file() => Some(Reopen {
                gzip,
                id: file_id(&m),
            }),
            _ => None,
        };
        let whole = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(whole),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, whole))
        };
        let mut r = LineReader::new(&path.to_string_lossy(), reader, max_line_bytes);
        r.path = path.to_path_buf();
        r.reopen = reopen;
        Ok(r)
    }

    /// Lines of a file, opened at the first read rather than now: a
    /// regular file is opened here only to check that it can be (so a
    /// missing permission fails before anything is read) and to look for
    /// the gzip magic, then closed. Anything else (a pipe, a FIFO, a
    /// device) is opened now and once, as [`LineReader::open`] does.
    pub fn lazy(path: &Path, max_line_bytes: usize) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        // Opening a FIFO waits for a writer: only a regular file is
        // opened here and again later.
        if !std::fs::metadata(path).map_err(io)?.is_file() {
            return Self::open(path, max_line_bytes);
        }
        let mut file = File::open(path).map_err(io)?;
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut file, &mut magic).map_err(io)?;
        let id = file_id(&file.metadata().map_err(io)?);
        Ok(LineReader {
            origin: Arc::from(&*path.to_string_lossy()),
            reader: None,
            line_no: 0,
            max_line_bytes,
            path: path.to_path_buf(),
            failed: false,
            offset: 0,
            reopen: Some(Reopen {
                gzip: n == 2 && magic == GZIP_MAGIC,
                id,
            }),
        })
    }

    /// Close the file (its descriptor and read buffer) until the next
    /// read, which opens it again where this one stopped: a plain file
    /// seeks there, a `.gz` one is decompressed again up to there. `false`
    /// for a stream that can be read only once, which stays open.
    pub fn park(&mut self) -> bool {
        if self.reopen.is_none() {
            return false;
        }
        self.reader = None;
        true
    }

    /// Whether the input is open now (not parked, not yet opened).
    pub fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Open a parked regular file again where it stopped.
    fn resume(&mut self) -> std::io::Result<Box<dyn BufRead + Send>> {
        let Some(how) = self.reopen else {
            return Err(std::io::Error::other("the input cannot be opened again"));
        };
        let mut file = File::open(&self.path)?;
        let meta = file.metadata()?;
        if how.id.is_some() && file_id(&meta) != how.id {
            return Err(std::io::Error::other(
                "the file was replaced while it was being read",
            ));
        }
        if how.gzip {
            let mut gz = BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file));
            let skipped = std::io::copy(&mut (&mut gz).take(self.offset), &mut std::io::sink())?;
            if skipped < self.offset {
                return Err(std::io::Error::other(
                    "the file became shorter while it was being read",
                ));
            }
            Ok(Box::new(gz))
        } else {
            if meta.len() < self.offset {
                return Err(std::io::Error::other(
                    "the file became shorter while it was being read",
                ));
            }
            file.seek(std::io::SeekFrom::Start(self.offset))?;
            Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
        }
    }

    /// The origin name.
    pub fn origin(&self) -> &Arc<str> {
        &self.origin
    }

    /// Read the next line into a record, or `None` at the end.
    pub fn next_record(&mut self) -> Option<Result<RawRecord>> {
        let mut raw = RawRecord::line(self.origin.clone(), 0, Vec::new());
        Some(self.next_record_into(&mut raw)?.map(|()| raw))
    }

    /// [`LineReader::next_record`] into `raw`, reusing its buffer: a
    /// replay's decode worker reads millions of lines through one record.
    pub fn next_record_into(&mut self, raw: &mut RawRecord) -> Option<Result<()>> {
        let line_no = match self.next_line_into(&mut raw.bytes)? {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        if !Arc::ptr_eq(&raw.origin, &self.origin) {
            raw.origin = self.origin.clone();
        }
        raw.position = line_no;
        // A line has no transport metadata, whatever the record held.
        raw.partition = None;
        raw.key = None;
        raw.headers.clear();
        raw.transport_time = None;
        Some(Ok(()))
    }

    /// Read the next line into `buf` (cleared first), reusing its
    /// allocation: the hot loop of a tool that reads a file once. Returns
    /// the 1-based line number, or `None` at the end.
    /// After an error the input is over: the next call returns `None`.
    pub fn next_line_into(&mut self, buf: &mut Vec<u8>) -> Option<Result<u64>> {
        buf.clear();
        if self.failed {
            return None;
        }
        let reader = match &mut self.reader {
            Some(r) => r,
            None => match self.resume() {
                Ok(r) => self.reader.insert(r),
                Err(source) => {
                    self.failed = true;
                    return Some(Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            },
        };
        match read_capped_line(reader, buf, self.max_line_bytes) {
            Ok(0) => None,
            Ok(n) => {
                self.offset += n as u64;
                self.line_no += 1;
                Some(Ok(self.line_no))
            }
            Err(source) => {
                self.failed = true;
                Some(Err(Error::Io {
                    path: self.path.clone(),
                    source,
                }))
            }
        }
    }
}

impl Iterator for LineReader {
    type Item = Result<RawRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Read one line into `buf` (without `\n` or a trailing `\r`), keeping at
/// most `cap + 1` bytes of it. Returns the number of bytes consumed from the
/// reader (0 at end of input).
fn read_capped_line(r: &mut dyn BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let (done, used) = {
            let available = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            let (chunk, done, used) = match memchr(b'\n', available) {
                Some(i) => (&available[..i], true, i + 1),
                None => (available, false, available.len()),
            };
            let room = (cap + 1).saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            (done, used)
        };
        r.consume(used);
        consumed += used;
        if done {
            break;
        }
    }
    if buf.last() == Some(&b'\r') && buf.len() <= cap {
        buf.pop();
    }
    Ok(consumed)
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

impl FileSource {
    /// Expand `paths` (files and directories) and check that each exists.
    /// Fails before reading anything when a path is missing, naming it.
    pub fn open(paths: &[PathBuf], max_line_bytes: usize) -> Result<Self> {
        Self::open_excluding(paths, max_line_bytes, &GlobSet::empty())
    }

    /// [`FileSource::open`], leaving out every file and directory found
    /// under a directory whose path relative to it matches `exclude` (a
    /// path named on the command line is always read: naming it is asking
    /// for it).
    pub fn open_excluding(
        paths: &[PathBuf],
        max_line_bytes: usize,
        exclude: &GlobSet,
    ) -> Result<Self> {
        let mut files = Vec::new();
        let mut relative = Vec::new();
        let mut skipped = Vec::new();
        for p in paths {
            let meta = std::fs::metadata(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            if meta.is_dir() {
                let before = files.len();
                walk(p, &mut files, &mut skipped, true, exclude, p)?;
                relative.extend(
                    files[before..]
                        .iter()
                        .map(|f| f.strip_prefix(p).unwrap_or(f).to_path_buf()),
                );
            } else {
                files.push(p.clone());
                relative.push(p.clone());
            }
        }
        Ok(FileSource {
            files,
            relative,
            skipped,
            next_file: 0,
            current: None,
            max_line_bytes,
        })
    }

    /// The files that will be read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The files found at the top of a directory and left out as the
    /// dataset's metadata (READMEs, licences, Remedy's labels, manifest
    /// and topology), in the order found.
    pub fn skipped(&self) -> &[PathBuf] {
        &self.skipped
    }

    /// Each file's path relative to the directory it was found under, in
    /// the order of [`FileSource::files`]: what globs match.
    pub fn relative(&self) -> &[PathBuf] {
        &self.relative
    }

    /// Open each file as its own line reader (for readers that merge files
    /// by event time).
    pub fn readers(&self) -> Result<Vec<LineReader>> {
        self.files
            .iter()
            .map(|f| LineReader::open(f, self.max_line_bytes))
            .collect()
    }
}

/// Files at the top of a dataset directory that describe the data rather
/// than being it: a scenario's labels, manifest and topology (Remedy's
/// own dataset files: the manifest names the topology), READMEs and
/// licence notices. Only files, only at the top of a directory named on the command
/// line, and only these names: a service called `license` logging under
/// `logs/license/` is data. Named explicitly on the command line they are
/// still read.
fn is_metadata(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or("");
    matches!(
        lower.as_str(),
        "labels.json" | "manifest.json" | "topology.json"
    ) || (matches!(
        stem,
        "readme" | "license" | "licence" | "notice" | "copying"
    ) && matches!(
        lower.rsplit_once('.').map(|(_, e)| e),
        None | Some("md" | "txt" | "rst")
    ))
}

fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    skipped: &mut Vec<PathBuf>,
    top: bool,
    exclude: &GlobSet,
    root: &Path,
) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let ft = e.file_type().map_err(io)?;
        if !exclude.is_empty() && exclude.is_match(path.strip_prefix(root).unwrap_or(&path)) {
            tracing::info!(path = %path.display(), "skipped: matches --exclude");
            continue;
        }
        if ft.is_dir() {
            walk(&path, out, skipped, false, exclude, root)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            if top && is_metadata(&name) {
                tracing::info!(file = %path.display(), "skipped: dataset metadata, not data");
                skipped.push(path);
                continue;
            }
            out.push(path);
        }
    }
    Ok(())
}

impl Iterator for FileSource {
    type Item = Result<RawRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.current.as_mut() {
                if let Some(rec) = r.next_record() {
                    return Some(rec);
                }
                self.current = None;
            }
            let path = self.files.get(self.next_file)?.clone();
            self.next_file += 1;
            match LineReader::open(&path, self.max_line_bytes) {
                Ok(r) => self.current = Some(r),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Lines of standard input (origin `-`).
pub fn stdin_lines(max_line_bytes: usize) -> LineReader {
    LineReader::new(
        "-",
        Box::new(BufReader::with_capacity(1 << 16, std::io::stdin())),
        max_line_bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(src: impl Iterator<Item = Result<RawRecord>>) -> Vec<(String, u64, Vec<u8>)> {
        src.map(|r| {
            let r = r.unwrap();
            (r.origin.to_string(), r.position, r.bytes)
        })
        .collect()
    }

    /// Read `n` lines, park, read the rest: the same lines as one pass,
    /// numbered the same, with nothing open while parked.
    fn parked_every(path: &Path, n: usize) -> Vec<(u64, Vec<u8>)> {
        let mut r = LineReader::lazy(path, 1024).unwrap();
        assert!(!r.is_open(), "opened only at the first read");
        let mut out = Vec::new();
        loop {
            for _ in 0..n {
                match r.next_record() {
                    Some(rec) => {
                        let rec = rec.unwrap();
                        out.push((rec.position, rec.bytes));
                    }
                    None => return out,
                }
            }
            assert!(r.is_open());
            assert!(r.park());
            assert!(!r.is_open());
        }
    }

    #[test]
    fn a_parked_file_resumes_where_it_stopped_plain_or_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..500).map(|i| format!("line {i}\r\n")).collect();
        let plain = dir.path().join("a.log");
        std::fs::write(&plain, &text).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let zipped = dir.path().join("a.log.gz");
        std::fs::write(&zipped, gz.finish().unwrap()).unwrap();
        let whole = |p: &Path| -> Vec<(u64, Vec<u8>)> {
            LineReader::open(p, 1024)
                .unwrap()
                .map(|r| r.map(|r| (r.position, r.bytes)).unwrap())
                .collect()
        };
        let want = whole(&plain);
        assert_eq!(want.len(), 500);
        assert_eq!(want, whole(&zipped));
        for n in [1, 7, 499, 500, 600] {
            assert_eq!(parked_every(&plain, n), want, "plain, parked every {n}");
            assert_eq!(parked_every(&zipped, n), want, "gzip, parked every {n}");
        }
        // An eagerly opened regular file can be parked too; stdin cannot.
        let mut r = LineReader::open(&plain, 1024).unwrap();
        r.next_record().unwrap().unwrap();
        assert!(r.park());
        assert_eq!(r.next_record().unwrap().unwrap().bytes, b"line 1");
        assert!(!stdin_lines(1024).park());
    }

    #[test]
    fn a_file_replaced_or_cut_while_parked_ends_in_an_error_not_other_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, "one\ntwo\nthree\n").unwrap();
        let mut r = LineReader::lazy(&p, 1024).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().bytes, b"one");
        r.park();
        // Rotated: a new file under the old name.
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        std::fs::write(&p, "new\n").unwrap();
        let err = r.next_record().unwrap().unwrap_err().to_string();
        assert!(err.contains("replaced"), "{err}");
        assert!(r.next_record().is_none(), "the input ends at the error");
        // Truncated in place.
        std::fs::write(&p, "one\ntwo\nthree\n").unwrap();
        let mut r = LineReader::lazy(&p, 1024).unwrap();
        r.next_record().unwrap().unwrap();
        r.next_record().unwrap().unwrap();
        r.park();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(2)
            .unwrap();
        let err = r.next_record().unwrap().unwrap_err().to_string();
        assert!(err.contains("shorter"), "{err}");
        // A file that cannot be opened fails when named, not part-way.
        assert!(LineReader::lazy(&dir.path().join("missing"), 1024).is_err());
    }

    #[test]
    fn reads_plain_and_gzip_files_in_sorted_directory_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("a.log"), b"one\r\ntwo\n").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"three\nfour").unwrap();
        std::fs::write(dir.path().join("b/c.log.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.path().join(".hidden"), b"secret\n").unwrap();
        std::fs::write(dir.path().join("labels.json"), b"{}\n").unwrap();
        std::fs::write(dir.path().join("README.md"), b"# data\n").unwrap();
        let src = FileSource::open(&[dir.path().to_path_buf()], 1024).unwrap();
        assert_eq!(src.files().len(), 2);
        let got = lines(src);
        let texts: Vec<_> = got.iter().map(|(_, n, b)| (*n, b.clone())).collect();
        assert_eq!(
            texts,
            vec![
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
                (1, b"three".to_vec()),
                (2, b"four".to_vec())
            ]
        );
        assert!(got[2].0.ends_with("c.log.gz"));
    }

    #[test]
    fn only_documentation_files_at_the_top_are_skipped_never_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        // A service called `license`, and a log file named like a notice
        // below the top: both are data.
        std::fs::create_dir_all(dir.path().join("logs/license")).unwrap();
        std::fs::write(dir.path().join("logs/license/app.log"), b"a\n").unwrap();
        std::fs::write(dir.path().join("logs/README.md"), b"b\n").unwrap();
        std::fs::write(dir.path().join("LICENSE"), b"MIT\n").unwrap();
        std::fs::write(dir.path().join("NOTICE.txt"), b"n\n").unwrap();
        std::fs::write(dir.path().join("license-server.log"), b"c\n").unwrap();
        std::fs::write(dir.path().join("topology.json"), b"{}\n").unwrap();
        std::fs::create_dir_all(dir.path().join("logs/topology.json")).unwrap();
        std::fs::write(dir.path().join("logs/topology.json/x.log"), b"d\n").unwrap();
        let src = FileSource::open(&[dir.path().to_path_buf()], 1024).unwrap();
        let names: Vec<String> = src
            .files()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "license-server.log",
                "logs/README.md",
                "logs/license/app.log",
                "logs/topology.json/x.log"
            ]
        );
        // What was left out is said, in the order found.
        let skipped: Vec<String> = src
            .skipped()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(skipped, ["LICENSE", "NOTICE.txt", "topology.json"]);
    }

    #[test]
    fn long_lines_are_capped_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.log");
        let mut body = vec![b'x'; 100_000];
        body.extend_from_slice(b"\nshort\n");
        std::fs::write(&p, body).unwrap();
        let got = lines(FileSource::open(&[p], 10).unwrap());
        assert_eq!(
            got[0].2.len(),
            11,
            "cap + 1 bytes kept so the decoder sees it is too long"
        );
        assert_eq!(got[1].2, b"short");
        assert_eq!(got[1].1, 2);
    }

    #[test]
    fn a_missing_path_is_named() {
        let e = FileSource::open(&[PathBuf::from("/no/such/file.log")], 10)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/no/such/file.log"), "{e}");
    }

    #[test]
    fn invalid_utf8_is_passed_through_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin.log");
        std::fs::write(&p, b"ok\n\xff\xfe\n").unwrap();
        let got = lines(FileSource::open(&[p], 10).unwrap());
        assert_eq!(got[1].2, vec![0xff, 0xfe]);
    }
}
