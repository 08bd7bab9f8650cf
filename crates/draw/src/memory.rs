//! Counting what a script allocates, so its memory can be bounded like its time.
//!
//! Rhai bounds the size of each string, array and map, but not map keys, not the number of
//! values a script keeps, nor their sum: a script once reached 2.4 GB in 60 frames through
//! map keys alone. [`Counting`] wraps the process's allocator and keeps, per thread, the
//! bytes allocated minus the bytes freed; the sandbox reads it during a script call (every
//! operation) and stops the call when it has grown past `--max-memory`.
//!
//! A binary opts in by making it the global allocator (`sl-draw` does); without it the
//! counter stays at zero and only the size of the script's state is checked.

// A global allocator cannot be written without `unsafe`; this one only forwards to the
// allocator it wraps and adds to a thread-local counter.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    // const-initialised and without a destructor: safe to touch from inside the allocator,
    // even while a thread is being torn down.
    static NET: Cell<i64> = const { Cell::new(0) };
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

fn add(n: i64) {
    let _ = NET.try_with(|c| c.set(c.get().wrapping_add(n)));
}

/// A global allocator that counts, per thread, bytes allocated minus bytes freed.
#[derive(Debug)]
pub struct Counting<A>(pub A);

unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        add(layout.size() as i64);
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        add(layout.size() as i64);
        unsafe { self.0.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as i64));
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as i64 - layout.size() as i64);
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// Bytes this thread allocated minus bytes it freed, since it started (0 without
/// [`Counting`] as the global allocator).
pub fn thread_net_bytes() -> i64 {
    NET.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`Counting`] is the global allocator (it has counted something).
pub fn counting() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}
