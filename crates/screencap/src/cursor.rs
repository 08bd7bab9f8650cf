//! The mouse cursor, drawn into captures: xcap leaves it out, X11's XFixes extension hands
//! over its image and position. On Wayland (or if XFixes is missing) there is no cursor.

use sl_frame::{PixelFormat, VideoFrame};
use xcb::{Connection, Extension, xfixes};

/// The cursor's image and where its top-left corner is on the screen.
#[derive(Clone, PartialEq, Eq)]
pub struct Cursor {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    /// Premultiplied ARGB, one u32 a pixel (`a << 24 | r << 16 | g << 8 | b`).
    pub argb: Vec<u32>,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cursor({}x{} at {},{})",
            self.width, self.height, self.x, self.y
        )
    }
}

/// A connection to the X server's XFixes extension, kept across frames.
pub struct CursorSource {
    conn: Option<Connection>,
}

impl std::fmt::Debug for CursorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorSource")
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl CursorSource {
    /// Connect; None when there is no X server with XFixes (Wayland, a missing extension).
    pub fn connect() -> Option<CursorSource> {
        let (conn, _) =
            Connection::connect_with_extensions(None, &[Extension::XFixes], &[]).ok()?;
        // XFixes must be told which version the client speaks before any other request
        let cookie = conn.send_request(&xfixes::QueryVersion {
            client_major_version: 4,
            client_minor_version: 0,
        });
        conn.wait_for_reply(cookie).ok()?;
        Some(CursorSource { conn: Some(conn) })
    }

    /// The cursor now, or None if it cannot be had (the connection is then dropped: a
    /// missing cursor must never stop a capture).
    pub fn current(&mut self) -> Option<Cursor> {
        let conn = self.conn.as_ref()?;
        let cookie = conn.send_request(&xfixes::GetCursorImage {});
        match conn.wait_for_reply(cookie) {
            Ok(r) => Some(Cursor {
                x: r.x() as i32 - r.xhot() as i32,
                y: r.y() as i32 - r.yhot() as i32,
                width: r.width() as u32,
                height: r.height() as u32,
                argb: r.cursor_image().to_vec(),
            }),
            Err(e) => {
                log::debug!("no cursor: {e}");
                self.conn = None;
                None
            }
        }
    }
}

/// Blend `cursor` over an RGBA `frame` whose top-left pixel is at `origin` on the screen.
pub fn draw(frame: &mut VideoFrame, cursor: &Cursor, origin: (i32, i32)) {
    debug_assert_eq!(frame.format(), PixelFormat::Rgba);
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    let cw = cursor.width as usize;
    for cy in 0..cursor.height as i64 {
        let y = cursor.y as i64 + cy - origin.1 as i64;
        if y < 0 || y >= fh {
            continue;
        }
        let row = frame.row_mut(0, y as usize);
        for cx in 0..cursor.width as i64 {
            let x = cursor.x as i64 + cx - origin.0 as i64;
            if x < 0 || x >= fw {
                continue;
            }
            let p = cursor.argb[cy as usize * cw + cx as usize];
            let a = p >> 24;
            if a == 0 {
                continue;
            }
            let src = [(p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff];
            let px = &mut row[x as usize * 4..x as usize * 4 + 3];
            for (d, s) in px.iter_mut().zip(src) {
                // premultiplied "over"
                *d = (s + (*d as u32 * (255 - a) + 127) / 255).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_premultiplied_and_clips() {
        let mut f = VideoFrame::new(PixelFormat::Rgba, 4, 4).unwrap();
        sl_frame::ops::fill(&mut f, [100, 100, 100, 255]);
        // 2x2 cursor: opaque white, transparent, half-transparent black (premultiplied: 0),
        // opaque red
        let c = Cursor {
            x: 2,
            y: 2,
            width: 2,
            height: 2,
            argb: vec![0xffffffff, 0x00000000, 0x80000000, 0xffff0000],
        };
        draw(&mut f, &c, (0, 0));
        assert_eq!(&f.row(0, 2)[8..12], &[255, 255, 255, 255]);
        assert_eq!(&f.row(0, 2)[12..16], &[100, 100, 100, 255]);
        assert_eq!(&f.row(0, 3)[8..11], &[50, 50, 50]);
        assert_eq!(&f.row(0, 3)[12..15], &[255, 0, 0]);
        // partly outside the frame: no panic, the visible part drawn
        let mut g = VideoFrame::new(PixelFormat::Rgba, 4, 4).unwrap();
        draw(&mut g, &c, (1, 1));
        assert_eq!(&g.row(0, 1)[4..8], &[255, 255, 255, 0]);
        draw(&mut g, &c, (-10, -10));
        draw(&mut g, &c, (10, 10));
    }
}
