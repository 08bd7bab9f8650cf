//! Where a [`crate::Sink`]'s bytes go, and whether they got there.
//!
//! libav alone loses recordings quietly: a muxer that writes its own files (hls, image2,
//! segment) opens them through `AVFormatContext.io_open` and ignores the error of closing
//! them, and the hls muxer renames a playlist's `.tmp` over the last one whether or not it
//! was written whole, so a full disk left a 0-byte `index.m3u8` and exit 0. So:
//!
//! - a local file is written through our own `AVIOContext` over a [`File`]: the first write
//!   error is kept with its `errno` (to say "No space left on device" and what was lost),
//!   and the file is synced when finalised;
//! - files a muxer opens itself go through `io_open`/`io_close2` hooks: each is flushed and
//!   checked when it closes; a file that failed is removed (so a playlist's `.tmp` is never
//!   renamed over the last complete playlist, and no half segment is left), the first
//!   failure is kept, and after it no new file is opened (so no later playlist can list a
//!   segment that was lost);
//! - an existing file is replaced only by a complete one: the output is written to a
//!   temporary file next to it and renamed over it once finalised (so
//!   `sl-file x | sl-file -o x` reads the old file to its end, and a failed or full-disk
//!   recording leaves the old file as it was);
//! - a muxer that writes its own files (`AVFMT_NOFILE`) gets no output file opened for it
//!   (ffmpeg-next's `output_with` opened one anyway: a stray 0-byte `f%03d.png`).

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use av::ffi;
use ffmpeg_next as av;

/// The first write failure of an output: which file, and the error.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The file that could not be written, as the user knows it.
    pub file: String,
    /// The OS error number, when there is one (ENOSPC...).
    pub errno: Option<i32>,
    /// The error as text ("No space left on device (os error 28)").
    pub text: String,
}

impl Failure {
    /// Whether the device is full (ENOSPC) or over quota (EDQUOT).
    pub fn disk_full(&self) -> bool {
        matches!(self.errno, Some(28 | 122))
    }
}

/// Set once any output failed to write: libav's own complaints that follow (renames of the
/// files removed, opens refused) then only add noise to our error, and are logged at debug.
pub(crate) static WRITE_FAILED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Failures seen by every file of one output (shared by the hooks and the writer).
#[derive(Debug, Default)]
pub(crate) struct Failures {
    first: Mutex<Option<Failure>>,
}

impl Failures {
    pub fn first(&self) -> Option<Failure> {
        self.first.lock().map(|f| f.clone()).unwrap_or(None)
    }

    fn record(&self, file: &str, errno: Option<i32>, text: String) {
        WRITE_FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut f) = self.first.lock()
            && f.is_none()
        {
            *f = Some(Failure {
                file: file.to_string(),
                errno,
                text,
            });
        }
    }

    fn record_io(&self, file: &str, e: &io::Error) {
        self.record(file, e.raw_os_error(), e.to_string());
    }

    fn record_av(&self, file: &str, code: c_int) {
        let errno = (code < 0 && -code < 4096).then_some(-code);
        let text = match errno {
            Some(n) => io::Error::from_raw_os_error(n).to_string(),
            None => av::Error::from(code).to_string(),
        };
        self.record(file, errno, text);
    }
}

/// A file written for libav: every error is recorded before it is returned.
struct TrackedFile {
    file: File,
    name: String,
    failures: Arc<Failures>,
}

impl TrackedFile {
    fn check<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r
            && e.kind() != io::ErrorKind::Interrupted
        {
            self.failures.record_io(&self.name, e);
        }
        r
    }
}

impl Write for TrackedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.file.write(buf);
        self.check(r)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for TrackedFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let r = self.file.seek(pos);
        self.check(r)
    }
}

/// An output file being written: at its own name, or at a temporary name that replaces
/// an existing file once finalised.
#[derive(Debug)]
pub(crate) struct LocalFile {
    /// The name the user gave.
    pub target: PathBuf,
    /// Where the bytes go until finalised (the target itself when it did not exist).
    pub writing: PathBuf,
    /// A handle kept to sync the file when it is finalised.
    sync: File,
}

impl LocalFile {
    /// Whether the output is written to a temporary file (the target existed).
    pub fn replaces(&self) -> bool {
        self.writing != self.target
    }

    /// Finalised: sync it, and put it in place of the old file.
    pub fn commit(&self, failures: &Failures) -> io::Result<()> {
        let name = self.target.display().to_string();
        // only a regular file is synced (fsync on /dev/null or a FIFO is EINVAL)
        let regular = self.sync.metadata().is_ok_and(|m| m.is_file());
        if regular && let Err(e) = self.sync.sync_all() {
            failures.record_io(&name, &e);
            return Err(e);
        }
        if self.replaces() {
            std::fs::rename(&self.writing, &self.target)?;
        }
        Ok(())
    }

    /// Remove what was written: the temporary file (the old file stays), or the new file.
    pub fn discard(&self) {
        let _ = std::fs::remove_file(&self.writing);
    }
}

/// Whether `output` names a local file (not stdout, not a URL).
pub(crate) fn is_local(output: &str) -> bool {
    output != "-" && !output.contains("://") && !output.starts_with("pipe:")
}

/// Whether two paths are the same file (device and inode, through symlinks and hard links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// An output context for a local file, or for a muxer that opens its own files, with the
/// failure hooks installed. `format`: the muxer name, or None to guess from `output`.
pub(crate) struct Opened {
    pub octx: av::format::context::Output,
    pub file: Option<LocalFile>,
    pub hooks: Box<Hooks>,
}

/// Open `output` (a local path) for muxing.
pub(crate) fn open_local(
    output: &str,
    format: Option<&str>,
    failures: &Arc<Failures>,
) -> Result<Opened, av::Error> {
    crate::init();
    let c_name = CString::new(output).map_err(|_| av::Error::InvalidData)?;
    let c_format = format
        .map(CString::new)
        .transpose()
        .map_err(|_| av::Error::InvalidData)?;
    let mut ps: *mut ffi::AVFormatContext = std::ptr::null_mut();
    // SAFETY: the out-pointer and both C strings are valid for the call; on success libav
    // hands us a context we own (wrapped below, freed by ffmpeg-next's destructor).
    let r = unsafe {
        ffi::avformat_alloc_output_context2(
            &mut ps,
            std::ptr::null_mut(),
            c_format.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            c_name.as_ptr(),
        )
    };
    if r < 0 || ps.is_null() {
        return Err(av::Error::from(r.min(-1)));
    }
    let hooks = Box::new(Hooks {
        failures: failures.clone(),
        open: Mutex::new(Vec::new()),
    });
    // SAFETY: `ps` is a valid context just allocated; its oformat is set by the call above.
    let nofile = unsafe { (*(*ps).oformat).flags & ffi::AVFMT_NOFILE != 0 };
    // SAFETY: the hooks box outlives the context (Sink drops the context first) and the
    // callbacks only read it through `opaque`.
    unsafe {
        (*ps).opaque = &*hooks as *const Hooks as *mut std::ffi::c_void;
        (*ps).io_open = Some(hook_open);
        (*ps).io_close2 = Some(hook_close2);
    }
    if nofile {
        // SAFETY: `ps` is ours; with AVFMT_NOFILE `pb` stays null, which the destructor's
        // avio_close accepts.
        let octx = unsafe { av::format::context::Output::wrap(ps) };
        return Ok(Opened {
            octx,
            file: None,
            hooks,
        });
    }
    let free = |e: av::Error| {
        // SAFETY: `ps` is ours and not wrapped yet.
        unsafe { ffi::avformat_free_context(ps) };
        e
    };
    let local = create_file(Path::new(output)).map_err(|e| {
        failures.record_io(output, &e);
        free(io_to_av(&e))
    })?;
    let file = local.sync.try_clone().map_err(|e| free(io_to_av(&e)))?;
    let tracked = TrackedFile {
        file,
        name: output.to_string(),
        failures: failures.clone(),
    };
    let io = av::format::context::StreamIo::from_write_seek(tracked).map_err(|e| {
        local.discard();
        free(e)
    })?;
    let mut io = io;
    // SAFETY: as ffmpeg-next's own output_to_stream does: the context uses our AVIOContext
    // (flagged custom, so libav never closes it), and the wrapper keeps the StreamIo alive
    // until after the context is freed.
    let octx = unsafe {
        (*ps).pb = io.as_mut_ptr();
        (*ps).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        av::format::context::Output::wrap_with_custom_io(ps, io)
    };
    Ok(Opened {
        octx,
        file: Some(local),
        hooks,
    })
}

fn io_to_av(e: &io::Error) -> av::Error {
    match e.raw_os_error() {
        Some(n) => av::Error::from(ffi::AVERROR(n)),
        None => av::Error::from(ffi::AVERROR(ffi::EIO)),
    }
}

/// Create the output: at its own name if nothing is there (or something that is not a
/// regular file, such as /dev/null or a FIFO), else at a temporary name next to the real
/// file (symlinks followed) that replaces it once finalised.
fn create_file(target: &Path) -> io::Result<LocalFile> {
    let meta = std::fs::metadata(target);
    let replace = meta.as_ref().is_ok_and(|m| m.is_file());
    if !replace {
        let sync = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(target)?;
        return Ok(LocalFile {
            target: target.to_path_buf(),
            writing: target.to_path_buf(),
            sync,
        });
    }
    let real = std::fs::canonicalize(target)?;
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let writing = real.with_file_name(format!(".{name}.sl-{}.part", std::process::id()));
    let sync = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&writing)?;
    if let Ok(m) = meta {
        let _ = sync.set_permissions(m.permissions());
    }
    log::info!(
        "{} exists: writing {} and replacing it when finalised",
        target.display(),
        writing.display()
    );
    Ok(LocalFile {
        target: real,
        writing,
        sync,
    })
}

/// What the `io_open`/`io_close2` hooks share: the output's failures and the files open.
#[derive(Debug)]
pub(crate) struct Hooks {
    failures: Arc<Failures>,
    /// (AVIOContext address, file name) of every file open for writing.
    open: Mutex<Vec<(usize, String)>>,
}

/// Install the hooks on an output context opened elsewhere (a URL whose muxer opens more
/// files, such as hls over http, keeps libav's own file handling otherwise).
pub(crate) fn install_hooks(
    octx: &mut av::format::context::Output,
    failures: &Arc<Failures>,
) -> Box<Hooks> {
    let hooks = Box::new(Hooks {
        failures: failures.clone(),
        open: Mutex::new(Vec::new()),
    });
    // SAFETY: as in `open_local`: the box outlives the context.
    unsafe {
        let ps = octx.as_mut_ptr();
        (*ps).opaque = &*hooks as *const Hooks as *mut std::ffi::c_void;
        (*ps).io_open = Some(hook_open);
        (*ps).io_close2 = Some(hook_close2);
    }
    hooks
}

fn local_path(url: &str) -> Option<&str> {
    let path = url.strip_prefix("file:").unwrap_or(url);
    (!path.contains("://")).then_some(path)
}

/// `io_open`: libav's default (`avio_open2` with the context's interrupt callback), except
/// that after a failure no file is opened for writing.
unsafe extern "C" fn hook_open(
    s: *mut ffi::AVFormatContext,
    pb: *mut *mut ffi::AVIOContext,
    url: *const c_char,
    flags: c_int,
    options: *mut *mut ffi::AVDictionary,
) -> c_int {
    // SAFETY: libav calls this with its context (whose `opaque` is our Hooks or null, as
    // nested contexts share the caller's `opaque`), a valid C string and out-pointer.
    unsafe {
        let hooks = ((*s).opaque as *const Hooks).as_ref();
        let writing = flags & ffi::AVIO_FLAG_WRITE != 0;
        let name = CStr::from_ptr(url).to_string_lossy().into_owned();
        if writing
            && let Some(h) = hooks
            && let Some(f) = h.failures.first()
        {
            log::debug!("not opening {name}: {} failed before", f.file);
            return ffi::AVERROR(f.errno.unwrap_or(ffi::EIO));
        }
        let r = ffi::avio_open2(pb, url, flags, &(*s).interrupt_callback, options);
        if r >= 0 && writing {
            if let Some(h) = hooks
                && let Ok(mut open) = h.open.lock()
            {
                open.push(((*pb) as usize, name));
            }
        } else if r < 0
            && writing
            && let Some(h) = hooks
        {
            h.failures.record_av(&name, r);
        }
        r
    }
}

/// `io_close2`: flush, close, and check; a file that was not written whole is recorded as
/// the output's failure and removed.
unsafe extern "C" fn hook_close2(s: *mut ffi::AVFormatContext, pb: *mut ffi::AVIOContext) -> c_int {
    if pb.is_null() {
        return 0;
    }
    // SAFETY: `pb` was opened by `hook_open` (libav pairs them); `s` is a valid context.
    unsafe {
        let hooks = ((*s).opaque as *const Hooks).as_ref();
        let name = hooks.and_then(|h| {
            let mut open = h.open.lock().ok()?;
            let i = open.iter().position(|(p, _)| *p == pb as usize)?;
            Some(open.swap_remove(i).1)
        });
        let writing = (*pb).write_flag != 0;
        if writing {
            ffi::avio_flush(pb);
        }
        let err = (*pb).error;
        let mut p = pb;
        let closed = ffi::avio_closep(&mut p);
        let bad = if err < 0 { err } else { closed.min(0) };
        if bad < 0
            && writing
            && let (Some(h), Some(name)) = (hooks, name)
        {
            h.failures.record_av(&name, bad);
            if let Some(path) = local_path(&name) {
                // incomplete: never renamed into place, never listed, never served
                let _ = std::fs::remove_file(path);
                log::info!("{path} could not be written whole: removed");
            }
        }
        if bad < 0 { bad } else { closed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_sees_through_links() {
        let dir = std::env::temp_dir().join(format!("sl-media-same-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.mp4");
        std::fs::write(&a, b"x").unwrap();
        let hard = dir.join("hard.mp4");
        let soft = dir.join("soft.mp4");
        let other = dir.join("other.mp4");
        let _ = std::fs::remove_file(&hard);
        let _ = std::fs::remove_file(&soft);
        std::fs::hard_link(&a, &hard).unwrap();
        std::os::unix::fs::symlink(&a, &soft).unwrap();
        std::fs::write(&other, b"x").unwrap();
        assert!(same_file(&a, &a));
        assert!(same_file(&a, &hard));
        assert!(same_file(&soft, &a));
        assert!(!same_file(&a, &other));
        assert!(!same_file(&a, &dir.join("missing.mp4")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_existing_file_is_replaced_only_when_committed() {
        let dir = std::env::temp_dir().join(format!("sl-media-replace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = dir.join("rec.mkv");
        std::fs::write(&t, b"old").unwrap();
        let f = create_file(&t).unwrap();
        assert!(f.replaces());
        std::fs::write(&f.writing, b"new").unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"old");
        f.discard();
        assert_eq!(std::fs::read(&t).unwrap(), b"old");
        let f = create_file(&t).unwrap();
        std::fs::write(&f.writing, b"new").unwrap();
        f.commit(&Failures::default()).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
