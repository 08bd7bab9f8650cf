//! Raw video frames with checked plane layout, and compressed packets.

use std::fmt;

use crate::format::check_size;
use crate::pages::PageBuf;
use crate::{ColorInfo, FrameError, FrameInfo, PixelFormat, VideoCodec};

/// Where a frame's bytes live: the heap (reusable), or a mapping of its own that a pipe can
/// take without a copy (see [`crate::pages`]).
enum Storage {
    Heap(Vec<u8>),
    Pages(PageBuf),
}

impl std::ops::Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Pages(p) => p,
        }
    }
}

impl std::ops::DerefMut for Storage {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Pages(p) => p,
        }
    }
}

impl Clone for Storage {
    /// A copy always lives on the heap.
    fn clone(&self) -> Storage {
        Storage::Heap(self.to_vec())
    }
}

impl PartialEq for Storage {
    fn eq(&self, other: &Storage) -> bool {
        **self == **other
    }
}

/// Most planes any supported format has.
pub const MAX_PLANES: usize = 3;

/// A raw video frame: one buffer holding the planes back to back, each plane `stride * rows`
/// bytes. The layout is checked when the frame is built, so [`VideoFrame::plane`] and
/// [`VideoFrame::row`] never need to guess.
#[derive(Clone, PartialEq)]
pub struct VideoFrame {
    pub info: FrameInfo,
    pub color: ColorInfo,
    format: PixelFormat,
    width: u32,
    height: u32,
    strides: [usize; MAX_PLANES],
    offsets: [usize; MAX_PLANES],
    data: Storage,
}

/// A checked layout before its bytes are attached.
struct Layout {
    frame: VideoFrame,
    size: usize,
}

impl VideoFrame {
    /// A zeroed, tightly packed frame (strides equal row sizes, as FFmpeg's rawvideo).
    pub fn new(format: PixelFormat, width: u32, height: u32) -> Result<Self, FrameError> {
        check_size(width, height)?;
        let data = vec![0; format.frame_size(width, height)];
        Self::from_packed(format, width, height, data)
    }

    /// Wrap a tightly packed buffer (the layout of FFmpeg's rawvideo).
    pub fn from_packed(
        format: PixelFormat,
        width: u32,
        height: u32,
        data: Vec<u8>,
    ) -> Result<Self, FrameError> {
        let strides = Self::packed_strides(format, width);
        Self::from_parts(
            format,
            width,
            height,
            &strides[..format.plane_count()],
            data,
        )
    }

    /// The strides of a tightly packed frame.
    pub fn packed_strides(format: PixelFormat, width: u32) -> [usize; MAX_PLANES] {
        let mut s = [0; MAX_PLANES];
        for (p, slot) in s.iter_mut().enumerate().take(format.plane_count()) {
            *slot = format.plane_dims(p, width, 1).0;
        }
        s
    }

    /// Wrap `data` holding the planes back to back with the given strides. Fails unless
    /// every stride covers its row and `data` is exactly the sum of `stride * rows`.
    pub fn from_parts(
        format: PixelFormat,
        width: u32,
        height: u32,
        strides: &[usize],
        data: Vec<u8>,
    ) -> Result<Self, FrameError> {
        let mut f = Self::empty_layout(format, width, height, strides)?;
        if data.len() != f.size {
            return Err(FrameError::DataSize {
                format: format.name(),
                width,
                height,
                expected: f.size,
                got: data.len(),
            });
        }
        f.frame.data = Storage::Heap(data);
        Ok(f.frame)
    }

    /// A frame with its layout checked and no bytes yet, and the bytes it needs.
    fn empty_layout(
        format: PixelFormat,
        width: u32,
        height: u32,
        strides: &[usize],
    ) -> Result<Layout, FrameError> {
        check_size(width, height)?;
        let size = Self::layout_size(format, width, height, strides)?;
        let mut st = [0; MAX_PLANES];
        let mut offsets = [0; MAX_PLANES];
        let mut off = 0;
        for (p, &stride) in strides.iter().enumerate() {
            st[p] = stride;
            offsets[p] = off;
            off += stride * format.plane_dims(p, width, height).1;
        }
        let frame = VideoFrame {
            info: FrameInfo::default(),
            color: ColorInfo::default_for(format),
            format,
            width,
            height,
            strides: st,
            offsets,
            data: Storage::Heap(Vec::new()),
        };
        Ok(Layout { frame, size })
    }

    /// Bytes a frame with these strides needs, after checking the strides are valid.
    pub fn layout_size(
        format: PixelFormat,
        width: u32,
        height: u32,
        strides: &[usize],
    ) -> Result<usize, FrameError> {
        check_size(width, height)?;
        if strides.len() != format.plane_count() {
            return Err(FrameError::PlaneCount {
                format: format.name(),
                expected: format.plane_count(),
                got: strides.len(),
            });
        }
        let mut total: usize = 0;
        for (p, &stride) in strides.iter().enumerate() {
            let (row, rows) = format.plane_dims(p, width, height);
            // A stride more than 4x the row (plus alignment slack) is no real layout, and
            // bounding it keeps a hostile header's size arithmetic far from overflow.
            let max = row * 4 + 4096;
            if stride < row || stride > max {
                return Err(FrameError::StrideOutOfRange {
                    format: format.name(),
                    width,
                    height,
                    plane: p,
                    stride,
                    row,
                    max,
                });
            }
            total += stride * rows;
        }
        Ok(total)
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn plane_count(&self) -> usize {
        self.format.plane_count()
    }
    /// Strides of the frame's planes (length = plane count).
    pub fn strides(&self) -> &[usize] {
        &self.strides[..self.plane_count()]
    }
    pub fn stride(&self, plane: usize) -> usize {
        self.strides[plane]
    }
    /// Whether every stride equals its row size (the payload is exactly FFmpeg's rawvideo).
    pub fn is_packed(&self) -> bool {
        (0..self.plane_count())
            .all(|p| self.strides[p] == self.format.plane_dims(p, self.width, self.height).0)
    }
    /// Bytes in each row and number of rows of `plane`.
    pub fn plane_dims(&self, plane: usize) -> (usize, usize) {
        self.format.plane_dims(plane, self.width, self.height)
    }

    /// All planes, back to back, as carried on the wire.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
    /// The bytes as a vector (copied if the frame lives in a [`PageBuf`]).
    pub fn into_data(self) -> Vec<u8> {
        match self.data {
            Storage::Heap(v) => v,
            Storage::Pages(p) => p.to_vec(),
        }
    }

    /// A tightly packed frame in a [`PageBuf`] of its own (zeroed; `slack` writable bytes
    /// past the end for SIMD writers). [`VideoFrame::is_paged`] frames can be written into a
    /// pipe without a copy. `None` if the size is invalid, the memory cannot be mapped, or
    /// the frame is smaller than [`crate::pages::PAGED_FROM`] (cheaper copied than paged):
    /// callers fall back to a heap frame.
    pub fn new_paged(format: PixelFormat, width: u32, height: u32, slack: usize) -> Option<Self> {
        let strides = Self::packed_strides(format, width);
        let mut l =
            Self::empty_layout(format, width, height, &strides[..format.plane_count()]).ok()?;
        if l.size < crate::pages::PAGED_FROM {
            return None;
        }
        l.frame.data = Storage::Pages(PageBuf::new(l.size, slack)?);
        Some(l.frame)
    }

    /// Whether the frame lives in a [`PageBuf`] of its own.
    pub fn is_paged(&self) -> bool {
        matches!(self.data, Storage::Pages(_))
    }

    /// The frame's [`PageBuf`], for writers that fill it through raw pointers.
    pub fn pages_mut(&mut self) -> Option<&mut PageBuf> {
        match &mut self.data {
            Storage::Pages(p) => Some(p),
            Storage::Heap(_) => None,
        }
    }

    fn plane_range(&self, plane: usize) -> std::ops::Range<usize> {
        assert!(
            plane < self.plane_count(),
            "plane {plane} of {:?}",
            self.format
        );
        let start = self.offsets[plane];
        start..start + self.strides[plane] * self.plane_dims(plane).1
    }

    /// Plane `plane` including stride padding.
    pub fn plane(&self, plane: usize) -> &[u8] {
        &self.data[self.plane_range(plane)]
    }
    pub fn plane_mut(&mut self, plane: usize) -> &mut [u8] {
        let r = self.plane_range(plane);
        &mut self.data[r]
    }

    /// The visible bytes of row `y` of `plane` (no padding).
    pub fn row(&self, plane: usize, y: usize) -> &[u8] {
        let (row, rows) = self.plane_dims(plane);
        assert!(y < rows, "row {y} of plane {plane} ({rows} rows)");
        let start = self.offsets[plane] + y * self.strides[plane];
        &self.data[start..start + row]
    }
    pub fn row_mut(&mut self, plane: usize, y: usize) -> &mut [u8] {
        let (row, rows) = self.plane_dims(plane);
        assert!(y < rows, "row {y} of plane {plane} ({rows} rows)");
        let start = self.offsets[plane] + y * self.strides[plane];
        &mut self.data[start..start + row]
    }

    /// Rows of `plane` as an iterator of visible byte slices.
    pub fn rows(&self, plane: usize) -> impl Iterator<Item = &[u8]> {
        let (row, _) = self.plane_dims(plane);
        self.plane(plane)
            .chunks_exact(self.strides[plane])
            .map(move |r| &r[..row])
    }
    pub fn rows_mut(&mut self, plane: usize) -> impl Iterator<Item = &mut [u8]> {
        let (row, _) = self.plane_dims(plane);
        let stride = self.strides[plane];
        self.plane_mut(plane)
            .chunks_exact_mut(stride)
            .map(move |r| &mut r[..row])
    }

    /// The frame repacked without stride padding (cheap when it is already packed).
    pub fn to_packed(&self) -> VideoFrame {
        if self.is_packed() {
            return self.clone();
        }
        let mut data = Vec::with_capacity(self.format.frame_size(self.width, self.height));
        for p in 0..self.plane_count() {
            for r in self.rows(p) {
                data.extend_from_slice(r);
            }
        }
        let mut f = VideoFrame::from_packed(self.format, self.width, self.height, data)
            .expect("packed layout of a valid frame is valid");
        f.info = self.info.clone();
        f.color = self.color;
        f
    }
}

impl fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoFrame")
            .field("format", &self.format)
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .field("strides", &self.strides())
            .field("color", &self.color)
            .field("info", &self.info)
            .finish()
    }
}

/// A compressed video frame.
#[derive(Clone, PartialEq)]
pub struct Packet {
    pub info: FrameInfo,
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("codec", &self.codec)
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .field("bytes", &self.data.len())
            .field("info", &self.info)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_checked() {
        let f = VideoFrame::new(PixelFormat::I420, 4, 2).unwrap();
        assert_eq!(f.data().len(), 8 + 2 + 2);
        assert_eq!(f.plane(1).len(), 2);
        assert!(f.is_packed());
        // stride below the row
        assert!(matches!(
            VideoFrame::from_parts(PixelFormat::Rgba, 4, 1, &[15], vec![0; 15]),
            Err(FrameError::StrideOutOfRange {
                stride: 15,
                row: 16,
                ..
            })
        ));
        // stride far above the row: no real layout
        let e = VideoFrame::from_parts(PixelFormat::Gray8, 4, 1, &[5000], vec![0; 5000]);
        assert!(matches!(
            e,
            Err(FrameError::StrideOutOfRange {
                stride: 5000,
                row: 4,
                max: 4112,
                ..
            })
        ));
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("stride 5000 is outside 4..=4112")
        );
        // data too short for the strides
        assert!(matches!(
            VideoFrame::from_parts(PixelFormat::Rgba, 4, 2, &[32], vec![0; 63]),
            Err(FrameError::DataSize { .. })
        ));
        assert!(VideoFrame::new(PixelFormat::Rgba, 0, 10).is_err());
        assert!(VideoFrame::new(PixelFormat::Rgba, 20000, 10).is_err());
    }

    #[test]
    fn padded_rows_and_repack() {
        let mut data = vec![0u8; 2 * 20];
        data[..16].fill(1);
        data[20..36].fill(2);
        let f = VideoFrame::from_parts(PixelFormat::Rgba, 4, 2, &[20], data).unwrap();
        assert!(!f.is_packed());
        assert_eq!(f.row(0, 1), &[2u8; 16][..]);
        let p = f.to_packed();
        assert!(p.is_packed());
        assert_eq!(&p.data()[..16], &[1u8; 16][..]);
        assert_eq!(&p.data()[16..], &[2u8; 16][..]);
    }

    #[test]
    fn debug_prints_shape_not_pixels() {
        let f = VideoFrame::new(PixelFormat::Rgba, 64, 64).unwrap();
        let s = format!("{f:?}");
        assert!(s.contains("64x64"));
        assert!(s.len() < 300, "{s}");
    }
}
