//! Which frames get pages of their own (`VideoFrame::new_paged`, `sl_frame::pages`).

use sl_frame::pages::PAGED_FROM;
use sl_frame::{PixelFormat, VideoFrame};

#[test]
fn frames_below_the_threshold_stay_on_the_heap() {
    // 320x240 RGBA is 300 KB: cheaper to copy than to map (see PAGED_FROM)
    assert!(PixelFormat::Rgba.frame_size(320, 240) < PAGED_FROM);
    assert!(VideoFrame::new_paged(PixelFormat::Rgba, 320, 240, 0).is_none());
    // 480x360 RGBA is 675 KB: paged (measured cheaper than a copy, see PAGED_FROM)
    assert!(VideoFrame::new_paged(PixelFormat::Rgba, 480, 360, 0).is_some_and(|f| f.is_paged()));
    // 640x480 RGBA is 1.2 MB: a mapping of its own, zeroed, the right layout
    assert!(PixelFormat::Rgba.frame_size(640, 480) >= PAGED_FROM);
    let mut f = VideoFrame::new_paged(PixelFormat::Rgba, 640, 480, 64).expect("mmap");
    assert!(f.is_paged());
    assert_eq!(f.data().len(), 640 * 480 * 4);
    assert!(f.data().iter().all(|&b| b == 0));
    f.row_mut(0, 479)[640 * 4 - 1] = 7;
    assert_eq!(f.data()[640 * 480 * 4 - 1], 7);
}
