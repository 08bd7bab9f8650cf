//! Hostile headers never make the reader allocate past its limits: a counting allocator
//! records the largest single allocation while random and lying inputs are decoded.

// A global allocator cannot be written without `unsafe`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};

use sl_wire::{Limits, Reader, Writer};

struct Counting;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn lying_lengths_do_not_allocate_past_the_limits() {
    let limits = Limits {
        max_header: 64 << 10,
        max_payload: 2 << 20,
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let header = Writer::new(Vec::new()).unwrap().get_ref().clone();
    for _ in 0..3000 {
        let mut bytes = header.clone();
        // a prefix with random kind and lengths (often huge), then a little random data
        let mut prefix = [0u8; 16];
        for b in prefix.iter_mut() {
            *b = next() as u8;
        }
        prefix[0] = (next() % 8) as u8;
        bytes.extend_from_slice(&prefix);
        for _ in 0..(next() % 300) {
            bytes.push(next() as u8);
        }
        LARGEST.store(0, Ordering::Relaxed);
        if let Ok(mut r) = Reader::with_limits(Cursor::new(&bytes), limits) {
            while let Ok(Some(_)) = r.next_message() {}
        }
        let largest = LARGEST.load(Ordering::Relaxed);
        // the payload limit, plus the reader's fixed read-ahead buffer
        assert!(
            largest <= (2 << 20) + (256 << 10),
            "allocated {largest} bytes"
        );
    }
}
