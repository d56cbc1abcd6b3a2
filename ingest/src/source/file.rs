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
use std::io::{BufRead, BufReader, Read};
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
    next_file: usize,
    current: Option<LineReader>,
    max_line_bytes: usize,
}

/// Lines of one file or stream.
pub struct LineReader {
    origin: Arc<str>,
    reader: Box<dyn BufRead + Send>,
    line_no: u64,
    max_line_bytes: usize,
    path: PathBuf,
    /// A read failed: the input ends there (a damaged `.gz` would
    /// otherwise fail again, or worse, at every later call).
    failed: bool,
}

impl LineReader {
    /// Lines of an open reader; `origin` names it in records and errors.
    pub fn new(origin: &str, reader: Box<dyn BufRead + Send>, max_line_bytes: usize) -> Self {
        LineReader {
            origin: Arc::from(origin),
            reader,
            line_no: 0,
            max_line_bytes,
            path: PathBuf::from(origin),
            failed: false,
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
        let whole = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
        let reader: Box<dyn BufRead + Send> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(whole),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, whole))
        };
        let mut r = LineReader::new(&path.to_string_lossy(), reader, max_line_bytes);
        r.path = path.to_path_buf();
        Ok(r)
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
        match read_capped_line(&mut self.reader, buf, self.max_line_bytes) {
            Ok(0) => None,
            Ok(_) => {
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
        for p in paths {
            let meta = std::fs::metadata(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            if meta.is_dir() {
                let before = files.len();
                walk(p, &mut files, true, exclude, p)?;
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
            next_file: 0,
            current: None,
            max_line_bytes,
        })
    }

    /// The files that will be read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
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
/// than being it: a scenario's labels and manifest, READMEs and licence
/// notices. Only files, only at the top of a directory named on the command
/// line, and only these names: a service called `license` logging under
/// `logs/license/` is data. Named explicitly on the command line they are
/// still read.
fn is_metadata(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or("");
    matches!(lower.as_str(), "labels.json" | "manifest.json")
        || (matches!(
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
            walk(&path, out, false, exclude, root)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            if top && is_metadata(&name) {
                tracing::info!(file = %path.display(), "skipped: dataset metadata, not data");
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
                "logs/license/app.log"
            ]
        );
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
