//! sl-draw's entry point; the stage is in lib.rs.

/// mimalloc instead of glibc's malloc: the script call allocates many small objects (Rhai's
/// maps, strings and caches, recorded paths), and between frames other work evicts the
/// allocator's bookkeeping from the caches. Measured on the 2-core test machine, 1080p HUD
/// in `sl-test --fast | sl-draw hud.rhai | sl-info`: the Rhai call from 0.12-0.13 ms to
/// about 0.10 ms (median), and 64x64 frames at 250 fps from 0.09 to 0.05 ms.
///
/// Wrapped in a per-thread allocation counter, which bounds a script's memory (--max-memory).
#[global_allocator]
static ALLOC: sl_draw_core::memory::Counting<mimalloc::MiMalloc> =
    sl_draw_core::memory::Counting(mimalloc::MiMalloc);

fn main() -> std::process::ExitCode {
    sl_draw::main()
}
