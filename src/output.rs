//! Output files that are never left half-written, and the progress bar.

use anyhow::Context;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file written under a temporary name beside its destination and renamed
/// into place by [`AtomicFile::commit`]. Dropped without commit, the
/// temporary file is removed: a failed run leaves no truncated output.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Start writing `dest`.
    pub fn create(dest: impl AsRef<Path>) -> anyhow::Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let name = dest
            .file_name()
            .with_context(|| format!("{} is not a file path", dest.display()))?
            .to_string_lossy()
            .into_owned();
        let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(AtomicFile {
            tmp,
            dest,
            writer: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// Flush and move into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let w = self.writer.take().expect("writer present until commit");
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        file.sync_all().ok();
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("cannot move output into place at {}", self.dest.display()))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer
            .as_mut()
            .expect("writer present until commit")
            .write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer
            .as_mut()
            .expect("writer present until commit")
            .flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A JSON-lines output file, atomic like [`AtomicFile`].
pub struct JsonLines {
    file: AtomicFile,
    /// Lines written, for the report.
    pub lines: u64,
}

impl JsonLines {
    /// Start writing `dest`.
    pub fn create(dest: impl AsRef<Path>) -> anyhow::Result<Self> {
        Ok(JsonLines {
            file: AtomicFile::create(dest)?,
            lines: 0,
        })
    }

    /// Append one value as a line.
    pub fn write<T: serde::Serialize>(&mut self, value: &T) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.file, value)?;
        self.file.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    /// Flush and move into place.
    pub fn commit(self) -> anyhow::Result<()> {
        self.file.commit()
    }
}

/// A progress counter on stderr; indicatif draws nothing when stderr is not
/// a terminal, so piped runs stay quiet.
pub fn progress(what: &'static str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}: {human_pos} records ({per_sec})")
            .expect("static template"),
    );
    bar.set_message(what);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
