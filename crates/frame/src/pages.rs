//! Frame memory of its own that a pipe can take without a copy.
//!
//! Writing an 8 MB frame into a pipe costs the kernel a fresh page, a memory-cgroup charge
//! and a 4 KB copy per page, and the reader's side frees them again: on the 2-core test
//! machine that is most of what a decoding stage spends beyond the decoding itself. Instead,
//! `vmsplice` can hand the frame's own pages to the pipe. That is only sound if nothing ever
//! writes them again, so each [`PageBuf`] is a mapping of its own that is unmapped as soon as
//! its pages are handed over (the pipe keeps them alive until the reader is done), and is
//! never reused. To keep a fresh mapping cheap it asks for 2 MB transparent huge pages: four
//! page faults for a 1080p RGBA frame instead of two thousand.
//!
//! Measured with 500 frames of 1080p RGBA written into a pipe drained by `splice` to
//! /dev/null, CPU time of both sides: write() from a reused buffer 1.5-2.3 s; vmsplice from
//! fresh 4 KB pages 2.3-3.0 s (worse: page faults); vmsplice from fresh huge pages 0.8-1.1 s.
//! So [`PageBuf`]s are only worth using where huge pages are on ([`huge_pages_available`]).
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::OnceLock;

use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap_anonymous, munmap};

const HUGE_PAGE: usize = 2 << 20;

/// The smallest frame worth a mapping of its own ([`crate::VideoFrame::new_paged`] gives
/// `None` below it). A small frame still costs a fresh mapping and the kernel zeroing a whole
/// 2 MB huge page. Measured with `sl-test --fast -n 1000 -s WxH | cat`, CPU time of both,
/// write from a reused buffer against vmsplice of paged frames in whole huge pages, medians
/// of five alternating runs (2026-12-01): 320x240 RGBA (300 KB) 0.18 s against 0.24 s, paged
/// slower; 400x300 RGBA (480 KB) 0.29 s against 0.27 s, even; 480x360 RGBA (675 KB) 0.46 s
/// against 0.28 s; 640x360 RGBA (900 KB, three runs) 0.55-1.11 s against 0.27-0.37 s. (Until
/// a buffer was advised in whole huge pages, 2026-11-30, frames under 2 MB often faulted in
/// 4 KB pages and the threshold was 1 MiB.)
pub const PAGED_FROM: usize = 512 << 10;

/// Whether the kernel gives transparent huge pages to memory that asks for them (`always`
/// or `madvise` in /sys/kernel/mm/transparent_hugepage/enabled).
pub fn huge_pages_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| s.contains("[always]") || s.contains("[madvise]"))
    })
}

/// `len` zeroed bytes in an anonymous mapping of their own, starting on a huge-page boundary,
/// with some writable slack after them. Unmapped on drop. See the module docs.
pub struct PageBuf {
    map: NonNull<c_void>,
    map_len: usize,
    start: usize,
    len: usize,
}

// SAFETY: a PageBuf owns its mapping outright (like a Box<[u8]>); nothing else refers to it.
unsafe impl Send for PageBuf {}
// SAFETY: shared access only reads (through `Deref`).
unsafe impl Sync for PageBuf {}

impl PageBuf {
    /// A mapping for `len` bytes plus `slack` more that may be written but are not part of
    /// the buffer (for SIMD writers that round rows up). `None` if the mapping fails.
    pub fn new(len: usize, slack: usize) -> Option<PageBuf> {
        // whole huge pages: the kernel backs a 2 MB extent with a huge page only if all of it
        // lies in the advised range, so a frame's last part, and a frame under 2 MB, would
        // otherwise fault in 4 KB at a time (340 faults for a 720p NV12 frame instead of one)
        let huge_len = len
            .checked_add(slack)?
            .checked_next_multiple_of(HUGE_PAGE)?;
        let map_len = huge_len.checked_add(HUGE_PAGE)?;
        // SAFETY: a new private anonymous mapping at an address of the kernel's choosing
        // touches no existing memory.
        let ptr = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                map_len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .ok()?;
        let map = NonNull::new(ptr)?;
        let start = (HUGE_PAGE - ptr as usize % HUGE_PAGE) % HUGE_PAGE;
        // SAFETY: the range lies inside the mapping just made; the advice changes how it is
        // backed, not its contents. Failing (no THP in this kernel) is fine.
        let _ = unsafe {
            madvise(
                ptr.cast::<u8>().add(start).cast(),
                huge_len,
                Advice::LinuxHugepage,
            )
        };
        Some(PageBuf {
            map,
            map_len,
            start,
            len,
        })
    }

    /// The start of the buffer, for writers that take raw pointers (`len` + slack bytes).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: `start` < `map_len`
        unsafe { self.map.as_ptr().cast::<u8>().add(self.start) }
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `start + len` lies inside the mapping, which lives as long as `self`, is
        // initialised (zeroed by the kernel) and is only written through `&mut self`.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().cast::<u8>().add(self.start), self.len)
        }
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, and `&mut self` makes this the only reference.
        unsafe {
            std::slice::from_raw_parts_mut(self.map.as_ptr().cast::<u8>().add(self.start), self.len)
        }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` with this length, and no reference into it
        // outlives `self`. Pages a pipe still holds stay alive in the kernel.
        let _ = unsafe { munmap(self.map.as_ptr(), self.map_len) };
    }
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBuf").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_writable_and_aligned() {
        let mut b = PageBuf::new(5 << 20, 4096).expect("mmap");
        assert_eq!(b.len(), 5 << 20);
        assert!(b.iter().all(|&x| x == 0));
        assert_eq!(b.as_mut_ptr() as usize % HUGE_PAGE, 0);
        b[0] = 1;
        let last = b.len() - 1;
        b[last] = 2;
        assert_eq!((b[0], b[last]), (1, 2));
        let empty = PageBuf::new(0, 0).expect("mmap");
        assert!(empty.is_empty());
    }

    /// The mapping (start, end) holding `addr` and whether it is advised for huge pages
    /// (`hg` in its VmFlags), from /proc/self/smaps.
    fn mapping_of(addr: usize) -> Option<(usize, usize, bool)> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut found = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                found = (a <= addr && addr < b).then_some((a, b));
            } else if let (Some((a, b)), Some(flags)) = (found, line.strip_prefix("VmFlags:")) {
                return Some((a, b, flags.split_whitespace().any(|f| f == "hg")));
            }
        }
        None
    }

    /// Every byte of a buffer lies in whole huge pages advised as such, also for sizes that
    /// are not a multiple of 2 MB (the kernel backs an extent with a huge page only if all of
    /// it is advised; a 720p NV12 frame used to fault in 4 KB at a time).
    #[test]
    fn the_whole_buffer_is_in_advised_huge_pages() {
        for (len, slack) in [
            (1280 * 720 * 3 / 2, 0),
            (1280 * 720 * 4, 64),
            (4 << 20, 0),
            (1 << 20, 4096),
        ] {
            let mut b = PageBuf::new(len, slack).expect("mmap");
            let start = b.as_mut_ptr() as usize;
            let Some((a, end, advised)) = mapping_of(start) else {
                panic!("{len}: no mapping in /proc/self/smaps holds the buffer");
            };
            assert!(advised, "{len}: not advised for huge pages");
            assert_eq!(a, start, "{len}: the advised range starts at the buffer");
            assert_eq!((end - a) % HUGE_PAGE, 0, "{len}: whole huge pages");
            assert!(
                end >= start + len + slack,
                "{len}: the buffer and its slack are covered"
            );
        }
    }
}
