//! A canvas cut into horizontal bands that can be blended into on different threads at the
//! same time: each [`Band`] holds its own rows of every plane, so the borrows are disjoint
//! and no locking (and no `unsafe`) is needed. Band boundaries fall on even rows, so a YUV
//! 4:2:0 band owns whole chroma rows.

use sl_frame::{PixelFormat, VideoFrame};

/// Rows `y0 .. y0 + rows` of a canvas frame, every plane.
#[derive(Debug)]
pub struct Band<'a> {
    format: PixelFormat,
    width: u32,
    height: u32,
    y0: usize,
    rows: usize,
    /// Each plane from the band's first row of that plane to its last.
    planes: Vec<&'a mut [u8]>,
    strides: [usize; 3],
    /// Each plane's first row (canvas plane coordinates).
    first: [usize; 3],
    /// Each plane's vertical subsampling (1 or 2).
    sub: [usize; 3],
    /// Visible bytes per row of each plane.
    row_bytes: [usize; 3],
}

impl<'a> Band<'a> {
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// The whole canvas' width and height.
    pub fn canvas_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
    /// The band's first canvas row and number of rows.
    pub fn span(&self) -> (usize, usize) {
        (self.y0, self.rows)
    }

    /// The first and one-past-last plane rows the band holds of `plane`.
    pub fn plane_rows(&self, plane: usize) -> (usize, usize) {
        let s = self.sub[plane];
        (self.y0 / s, (self.y0 + self.rows).div_ceil(s))
    }

    /// The visible bytes of row `y` (canvas plane coordinates) of `plane`; the row must be
    /// in the band.
    #[inline]
    pub fn row_mut(&mut self, plane: usize, y: usize) -> &mut [u8] {
        let r = y - self.first[plane];
        let start = r * self.strides[plane];
        &mut self.planes[plane][start..start + self.row_bytes[plane]]
    }

    /// For a 4:2:0 band: luma row `y` (even), luma row `y + 1` if the band has it, and
    /// chroma row `y / 2` of the chroma plane (NV12) or both (I420).
    #[inline]
    pub fn yuv_rows_mut(&mut self, y: usize) -> YuvRows<'_> {
        debug_assert!(y.is_multiple_of(2) && self.planes.len() >= 2);
        let end = self.y0 + self.rows;
        let (stride, n) = (self.strides, self.row_bytes);
        let first = self.first;
        let (luma, chroma) = self.planes.split_at_mut(1);
        let r = (y - first[0]) * stride[0];
        let (top, rest) = luma[0][r..].split_at_mut(n[0]);
        let bottom = (y + 1 < end).then(|| &mut rest[stride[0] - n[0]..][..n[0]]);
        let cy = y / 2;
        let mut cs = chroma.iter_mut().enumerate().map(|(i, p)| {
            let s = (cy - first[i + 1]) * stride[i + 1];
            &mut p[s..s + n[i + 1]]
        });
        let c0 = cs.next().expect("a chroma plane");
        YuvRows {
            y0: top,
            y1: bottom,
            c0,
            c1: cs.next(),
        }
    }
}

#[derive(Debug)]
/// Rows of a 4:2:0 band that one chroma row covers (see [`Band::yuv_rows_mut`]).
pub struct YuvRows<'b> {
    pub y0: &'b mut [u8],
    pub y1: Option<&'b mut [u8]>,
    /// I420: U; NV12: U and V interleaved.
    pub c0: &'b mut [u8],
    /// I420: V.
    pub c1: Option<&'b mut [u8]>,
}

/// Cut `frame` into `n` bands of about equal height (at least 2 rows each, boundaries on even
/// rows), top to bottom. Fewer bands come back if the frame is too short for `n`.
pub fn bands(frame: &mut VideoFrame, n: usize) -> Vec<Band<'_>> {
    let format = frame.format();
    let (width, height) = (frame.width(), frame.height());
    let h = height as usize;
    let planes = frame.plane_count();
    let mut strides = [0; 3];
    let mut sub = [1; 3];
    let mut row_bytes = [0; 3];
    let mut sizes = [0; 3];
    for p in 0..planes {
        let (bytes, rows) = frame.plane_dims(p);
        strides[p] = frame.stride(p);
        row_bytes[p] = bytes;
        sub[p] = if rows < h { 2 } else { 1 };
        sizes[p] = strides[p] * rows;
    }
    // the cut rows: even, increasing, first 0 and last h
    let n = n.clamp(1, (h / 2).max(1));
    let mut cuts: Vec<usize> = (0..=n).map(|i| (h * i / n) & !1).collect();
    cuts[n] = h;
    cuts.dedup();
    // every plane's slice, then each cut into the bands' pieces
    let mut rest: &mut [u8] = frame.data_mut();
    let mut pieces: Vec<Vec<&mut [u8]>> = Vec::with_capacity(planes);
    for p in 0..planes {
        let (mut plane, tail) = std::mem::take(&mut rest).split_at_mut(sizes[p]);
        rest = tail;
        let mut mine = Vec::with_capacity(cuts.len() - 1);
        for w in cuts.windows(2) {
            let rows = w[1].div_ceil(sub[p]) - w[0] / sub[p];
            let take = (rows * strides[p]).min(plane.len());
            let (piece, tail) = std::mem::take(&mut plane).split_at_mut(take);
            plane = tail;
            mine.push(piece);
        }
        pieces.push(mine);
    }
    let mut out = Vec::with_capacity(cuts.len() - 1);
    for w in cuts.windows(2).rev() {
        let mut first = [0; 3];
        let mut mine = Vec::with_capacity(planes);
        for p in 0..planes {
            first[p] = w[0] / sub[p];
            mine.push(pieces[p].pop().expect("a piece per band"));
        }
        out.push(Band {
            format,
            width,
            height,
            y0: w[0],
            rows: w[1] - w[0],
            planes: mine,
            strides,
            first,
            sub,
            row_bytes,
        });
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_every_row_once_on_even_boundaries() {
        for format in [PixelFormat::Rgba, PixelFormat::I420, PixelFormat::Nv12] {
            for (w, h) in [(7u32, 9u32), (8, 8), (5, 2), (3, 1), (16, 1081)] {
                for n in 1..=4 {
                    let mut f = VideoFrame::new(format, w, h).unwrap();
                    {
                        let mut bs = bands(&mut f, n);
                        assert!(!bs.is_empty() && bs.len() <= n);
                        let mut next = 0;
                        for (i, b) in bs.iter_mut().enumerate() {
                            let (y0, rows) = b.span();
                            assert_eq!(y0, next, "{format:?} {w}x{h} / {n}");
                            assert!(y0 % 2 == 0 && rows > 0);
                            next = y0 + rows;
                            for p in 0..format.plane_count() {
                                let (r0, r1) = b.plane_rows(p);
                                for r in r0..r1 {
                                    for v in b.row_mut(p, r) {
                                        *v += 1 + i as u8;
                                    }
                                }
                            }
                        }
                        assert_eq!(next, h as usize);
                    }
                    // every visible byte written exactly once, by its own band
                    for p in 0..format.plane_count() {
                        for row in f.rows(p) {
                            assert!(row.iter().all(|&v| v >= 1), "{format:?} {w}x{h} / {n}");
                        }
                    }
                    let bytes: usize = (0..format.plane_count())
                        .map(|p| f.rows(p).map(|r| r.len()).sum::<usize>())
                        .sum();
                    let sum: usize = (0..format.plane_count())
                        .flat_map(|p| f.rows(p).flatten().copied().collect::<Vec<_>>())
                        .filter(|&v| v == 0)
                        .count();
                    assert_eq!(sum, 0);
                    assert!(bytes > 0);
                }
            }
        }
    }
}
