//! libav's own log, through the stage's logger: its lines get the stage's prefix and obey
//! `-v`/`-q` like every other message, instead of raw `[NULL @ 0x55d…] ...` lines on
//! stderr. Which lines pass is still libav's level ([`crate::set_libav_verbose`]).

#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_void};

use ffmpeg_next::ffi;

/// Route libav's log through the `log` crate (idempotent).
pub(crate) fn install() {
    // SAFETY: the callback is a plain function valid for the program's life; libav calls
    // it from any of its threads, which it is written for (thread-local state only).
    unsafe { ffi::av_log_set_callback(Some(callback)) };
}

thread_local! {
    /// A line libav is still writing (it logs some lines in pieces), and whether the next
    /// piece starts a line (libav's `print_prefix`).
    static PENDING: RefCell<(String, c_int)> = const { RefCell::new((String::new(), 1)) };
}

unsafe extern "C" fn callback(
    avcl: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    vl: *mut ffi::__va_list_tag,
) {
    // SAFETY: reading libav's global level has no preconditions.
    if level > unsafe { ffi::av_log_get_level() } {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    PENDING.with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else {
            return;
        };
        let mut prefix = p.1;
        // SAFETY: libav's own formatter, with the arguments libav passed us, into a buffer of
        // the size given; it always NUL-terminates.
        unsafe {
            ffi::av_log_format_line2(
                avcl,
                level,
                fmt,
                vl,
                buf.as_mut_ptr(),
                buf.len() as c_int,
                &mut prefix,
            );
        }
        p.1 = prefix;
        // SAFETY: NUL-terminated by av_log_format_line2.
        let piece = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        p.0.push_str(&piece);
        while let Some(i) = p.0.find('\n') {
            let line: String = p.0.drain(..=i).collect();
            emit(level, line.trim_end());
        }
    });
}

/// Log one of libav's lines: `[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c] partial file` becomes
/// `libav: mov,mp4,m4a,3gp,3g2,mj2: partial file` (the address says nothing to a user).
fn emit(level: c_int, line: &str) {
    let line = tidy(line);
    if line.is_empty() {
        return;
    }
    let after_failure = crate::output::WRITE_FAILED.load(std::sync::atomic::Ordering::Relaxed);
    if level <= ffi::AV_LOG_WARNING && !after_failure {
        log::warn!(target: "libav", "libav: {line}");
    } else if level <= ffi::AV_LOG_INFO {
        log::info!(target: "libav", "libav: {line}");
    } else {
        log::debug!(target: "libav", "libav: {line}");
    }
}

fn tidy(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line.trim();
    // libav's prefixes: one or more `[name @ 0xADDR] `
    while let Some(body) = rest.strip_prefix('[') {
        let Some(end) = body.find("] ") else { break };
        let name = body[..end].split(" @ ").next().unwrap_or("").trim();
        if !name.is_empty() && name != "NULL" {
            out.push_str(name);
            out.push_str(": ");
        }
        rest = &body[end + 2..];
    }
    out.push_str(rest.trim());
    out
}

#[cfg(test)]
mod tests {
    use super::tidy;

    #[test]
    fn prefixes_lose_their_addresses() {
        assert_eq!(
            tidy("[NULL @ 0x55d0c1e2] Unable to find a suitable output format for 'x'"),
            "Unable to find a suitable output format for 'x'"
        );
        assert_eq!(
            tidy("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] stream 0, offset 0x30: partial file"),
            "mov,mp4,m4a,3gp,3g2,mj2: stream 0, offset 0x30: partial file"
        );
        assert_eq!(tidy("plain"), "plain");
        assert_eq!(tidy("  "), "");
    }
}
