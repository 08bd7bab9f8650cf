//! glibc's allocator gives large freed blocks back to the kernel at once (anything over its
//! mmap threshold, and a freed heap top over its trim threshold). A link moves a frame's worth
//! of datagram buffers every few milliseconds (quinn copies each received datagram into a
//! buffer of its own), so each frame's memory came back as fresh pages that the kernel had to
//! fault in and zero: `perf` on a receiving `sl-net listen` at 1080p showed 28% of its cycles
//! in the kernel's page clearing. With the thresholds raised, freed memory is kept for the
//! next frame. The heap never exceeds what the link held at its peak, which its windows and
//! queues bound.
#![allow(unsafe_code)]

/// Keep freed memory for reuse instead of returning it to the kernel at once (glibc only;
/// elsewhere nothing to do).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets two of glibc's thresholds, under its own lock; it reads
        // and writes no memory of ours, and a value it does not accept is refused (returns
        // 0) without effect. Blocks already allocated are unaffected.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        }
    }
}
