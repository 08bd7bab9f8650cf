//! Fonts and images a script uses, loaded once and kept for the life of the process.
//!
//! Sandbox contract: a script can only name files inside its own folder (relative paths,
//! no `..`, no absolute paths, and after resolving symlinks still inside the folder). That is
//! the only file access scripts have. The built-in fonts are embedded in the binary.

use std::cell::{Cell, RefCell};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use tiny_skia::{IntSize, Pixmap};

use crate::memory;

/// Largest font or image file a script may load.
const MAX_FILE_BYTES: u64 = 64 << 20;
/// Largest image side in pixels.
const MAX_IMAGE_SIDE: u32 = 16384;
/// Most pixels in one image (256 MB decoded): checked from the file's header, before decoding.
pub const MAX_IMAGE_PIXELS: u64 = 8192 * 8192;
/// Most bytes of decoded images kept at once. A file is decoded once however it is named
/// (hard links and symlinks included): one JPEG loaded through three hard links used to be
/// decoded three times, 4.9 GB in all.
pub const MAX_IMAGE_BYTES: u64 = 512 << 20;
/// Most bytes of font files loaded.
pub const MAX_FONT_BYTES: u64 = 128 << 20;

/// Which file a path names (device and inode), so hard links and symlinks load once.
type FileId = (u64, u64);

/// The bytes of an embedded font.
type FontBytes = fn() -> &'static [u8];

/// Fonts embedded in the binary, by the name scripts use.
pub const BUILTIN_FONTS: &[(&str, FontBytes)] = &[
    ("sans", dejavu::sans::regular),
    ("sans-bold", dejavu::sans::bold),
    ("mono", dejavu::sans_mono::regular),
    ("mono-bold", dejavu::sans_mono::bold),
];

/// A loaded image, as scripts hold it: an index into [`Assets`] and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    pub id: usize,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug)]
struct FontEntry {
    name: String,
    font: Option<Rc<fontdue::Font>>,
    source: FontSource,
    file: Option<FileId>,
}

#[derive(Debug)]
enum FontSource {
    Builtin(FontBytes),
    File,
}

#[derive(Debug)]
struct ImageEntry {
    file: FileId,
    pixmap: Rc<Pixmap>,
}

/// Fonts and images, shared by the script engine (which loads them) and the renderer.
#[derive(Debug)]
pub struct Assets {
    base_dir: PathBuf,
    fonts: RefCell<Vec<FontEntry>>,
    images: RefCell<Vec<ImageEntry>>,
    /// The script call's deadline: loading a file pushes it back by the time the load took,
    /// so a first frame that parses fonts is not cut short by the time limit.
    deadline: Rc<Cell<Option<Instant>>>,
    /// The script call's allocation baseline: loading moves it up by what the load kept, as
    /// assets have bounds of their own and should not count against the script's memory.
    mem_base: Rc<Cell<i64>>,
    image_bytes: Cell<u64>,
    font_bytes: Cell<u64>,
}

impl Assets {
    /// Share the script call's deadline (see the field).
    pub fn set_deadline(&mut self, deadline: Rc<Cell<Option<Instant>>>) {
        self.deadline = deadline;
    }

    /// Share the script call's allocation baseline (see the field).
    pub fn set_mem_base(&mut self, base: Rc<Cell<i64>>) {
        self.mem_base = base;
    }

    /// A load that started at `since` with the thread's allocation counter at `net`: neither
    /// its time nor its memory counts against the script call.
    fn exempt(&self, since: Instant, net: i64) {
        if let Some(d) = self.deadline.get() {
            self.deadline.set(Some(d + since.elapsed()));
        }
        let kept = memory::thread_net_bytes() - net;
        self.mem_base.set(self.mem_base.get() + kept);
    }

    /// Assets for scripts in `base_dir` (the script's folder).
    pub fn new(base_dir: &Path) -> Assets {
        let base_dir = base_dir
            .canonicalize()
            .unwrap_or_else(|_| base_dir.to_path_buf());
        let fonts = BUILTIN_FONTS
            .iter()
            .map(|(name, bytes)| FontEntry {
                name: name.to_string(),
                font: None,
                source: FontSource::Builtin(*bytes),
                file: None,
            })
            .collect();
        Assets {
            base_dir,
            fonts: RefCell::new(fonts),
            images: RefCell::new(Vec::new()),
            deadline: Rc::new(Cell::new(None)),
            mem_base: Rc::new(Cell::new(0)),
            image_bytes: Cell::new(0),
            font_bytes: Cell::new(0),
        }
    }

    /// The folder scripts may read from.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Resolve a path a script gave, refusing anything outside the script's folder.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, String> {
        self.resolve_file(name).map(|(p, _)| p)
    }

    /// [`Assets::resolve`], with the file's identity and size.
    fn resolve_file(&self, name: &str) -> Result<(PathBuf, (FileId, u64)), String> {
        let p = Path::new(name);
        let refuse = || {
            format!(
                "`{name}`: scripts may only load files inside their own folder ({}), named by a relative path without `..`",
                self.base_dir.display()
            )
        };
        if name.is_empty() || p.is_absolute() {
            return Err(refuse());
        }
        if p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(refuse());
        }
        let full = self.base_dir.join(p);
        let real = full
            .canonicalize()
            .map_err(|e| format!("`{name}`: {e} (looked in {})", self.base_dir.display()))?;
        if !real.starts_with(&self.base_dir) {
            return Err(refuse());
        }
        let meta = std::fs::metadata(&real).map_err(|e| format!("`{name}`: {e}"))?;
        if !meta.is_file() {
            return Err(format!("`{name}` is not a file"));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "`{name}` is {} bytes: files over {MAX_FILE_BYTES} bytes are refused",
                meta.len()
            ));
        }
        Ok((real, ((meta.dev(), meta.ino()), meta.len())))
    }

    /// The index of the font called `name` (a built-in name or one loaded with
    /// [`Assets::load_font`]).
    pub fn font_id(&self, name: &str) -> Result<usize, String> {
        let fonts = self.fonts.borrow();
        fonts.iter().position(|f| f.name == name).ok_or_else(|| {
            let known: Vec<&str> = fonts.iter().map(|f| f.name.as_str()).collect();
            format!(
                "no font called `{name}`: load it first with load_font(\"file.ttf\"), or use one of: {}",
                known.join(", ")
            )
        })
    }

    /// The font at `id`, parsing an embedded one on first use.
    pub fn font(&self, id: usize) -> Option<Rc<fontdue::Font>> {
        let mut fonts = self.fonts.borrow_mut();
        let entry = fonts.get_mut(id)?;
        if entry.font.is_none()
            && let FontSource::Builtin(bytes) = entry.source
        {
            let (t, net) = (Instant::now(), memory::thread_net_bytes());
            let f = fontdue::Font::from_bytes(bytes(), fontdue::FontSettings::default()).ok()?;
            entry.font = Some(Rc::new(f));
            self.exempt(t, net);
        }
        entry.font.clone()
    }

    /// Load a TrueType/OpenType font file from the script's folder (once); returns the name to
    /// select it with (the path as given).
    pub fn load_font(&self, name: &str) -> Result<String, String> {
        if self.fonts.borrow().iter().any(|f| f.name == name) {
            return Ok(name.to_string());
        }
        let (path, (file, len)) = self.resolve_file(name)?;
        // the same file under another name (`./a.ttf`, a link): share the parsed font
        let same = self
            .fonts
            .borrow()
            .iter()
            .find(|f| f.file == Some(file))
            .and_then(|f| f.font.clone());
        if let Some(font) = same {
            self.fonts.borrow_mut().push(FontEntry {
                name: name.to_string(),
                font: Some(font),
                source: FontSource::File,
                file: Some(file),
            });
            return Ok(name.to_string());
        }
        if self.font_bytes.get() + len > MAX_FONT_BYTES {
            return Err(format!(
                "`{name}`: the fonts loaded would exceed {} MB in all",
                MAX_FONT_BYTES >> 20
            ));
        }
        let (t, net) = (Instant::now(), memory::thread_net_bytes());
        let bytes = std::fs::read(&path).map_err(|e| format!("`{name}`: {e}"))?;
        let font = fontdue::Font::from_bytes(bytes, fontdue::FontSettings::default())
            .map_err(|e| format!("`{name}` is not a font fontdue can read: {e}"))?;
        self.font_bytes.set(self.font_bytes.get() + len);
        self.fonts.borrow_mut().push(FontEntry {
            name: name.to_string(),
            font: Some(Rc::new(font)),
            source: FontSource::File,
            file: Some(file),
        });
        self.exempt(t, net);
        Ok(name.to_string())
    }

    /// Load a PNG or JPEG from the script's folder (once; later calls return the same image).
    pub fn load_image(&self, name: &str) -> Result<Image, String> {
        let (path, (file, _)) = self.resolve_file(name)?;
        if let Some((id, e)) = self
            .images
            .borrow()
            .iter()
            .enumerate()
            .find(|(_, e)| e.file == file)
        {
            return Ok(Image {
                id,
                width: e.pixmap.width(),
                height: e.pixmap.height(),
            });
        }
        let (t, net) = (Instant::now(), memory::thread_net_bytes());
        let bytes = std::fs::read(&path).map_err(|e| format!("`{name}`: {e}"))?;
        let room = MAX_IMAGE_BYTES - self.image_bytes.get();
        let pixmap = decode_image(&bytes, room).map_err(|e| format!("`{name}`: {e}"))?;
        drop(bytes);
        self.image_bytes
            .set(self.image_bytes.get() + pixmap.data().len() as u64);
        self.exempt(t, net);
        let img = Image {
            id: self.images.borrow().len(),
            width: pixmap.width(),
            height: pixmap.height(),
        };
        self.images.borrow_mut().push(ImageEntry {
            file,
            pixmap: Rc::new(pixmap),
        });
        Ok(img)
    }

    pub fn image(&self, id: usize) -> Option<Rc<Pixmap>> {
        self.images.borrow().get(id).map(|e| Rc::clone(&e.pixmap))
    }
}

/// Check an image's size, from its header, before anything is decoded: at most
/// [`MAX_IMAGE_SIDE`] a side, [`MAX_IMAGE_PIXELS`] in all, and `room` bytes decoded.
fn check_size(width: u32, height: u32, room: u64) -> Result<(), String> {
    let px = width as u64 * height as u64;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || px > MAX_IMAGE_PIXELS {
        return Err(format!(
            "the image is {width}x{height}: images of at most {MAX_IMAGE_PIXELS} pixels ({MAX_IMAGE_SIDE} a side) are accepted; scale it down"
        ));
    }
    if px * 4 > room {
        return Err(format!(
            "the image is {width}x{height}: with the images already loaded it would exceed {} MB of decoded images",
            MAX_IMAGE_BYTES >> 20
        ));
    }
    Ok(())
}

/// Decode PNG or JPEG bytes into a premultiplied pixmap of at most `room` bytes.
pub fn decode_image(bytes: &[u8], room: u64) -> Result<Pixmap, String> {
    if bytes.starts_with(b"\x89PNG") {
        // IHDR is the first chunk: width and height at bytes 16..24
        if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
            return Err("bad PNG: no IHDR".into());
        }
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        check_size(be(16), be(20), room)?;
        return Pixmap::decode_png(bytes).map_err(|e| format!("bad PNG: {e}"));
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        let mut d = jpeg_decoder::Decoder::new(bytes);
        d.read_info().map_err(|e| format!("bad JPEG: {e}"))?;
        let info = d.info().ok_or("bad JPEG: no header")?;
        check_size(info.width as u32, info.height as u32, room)?;
        let px = d.decode().map_err(|e| format!("bad JPEG: {e}"))?;
        let n = info.width as usize * info.height as usize;
        let rgba = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => {
                expand_in_place(px, n, 3, |p| [p[0], p[1], p[2], 255])
            }
            jpeg_decoder::PixelFormat::L8 => expand_in_place(px, n, 1, |p| [p[0], p[0], p[0], 255]),
            jpeg_decoder::PixelFormat::L16 => {
                expand_in_place(px, n, 2, |p| [p[0], p[0], p[0], 255])
            }
            jpeg_decoder::PixelFormat::CMYK32 => expand_in_place(px, n, 4, |p| {
                let k = 255 - p[3] as u32;
                let ch = |c: u8| ((255 - c as u32) * k / 255) as u8;
                [ch(p[0]), ch(p[1]), ch(p[2]), 255]
            }),
        };
        let size = IntSize::from_wh(info.width as u32, info.height as u32)
            .ok_or("bad JPEG: empty image")?;
        return Pixmap::from_vec(rgba, size).ok_or_else(|| "bad JPEG size".into());
    }
    Err("not a PNG or JPEG image".into())
}

/// `n` pixels of `from` bytes each to RGBA in the same buffer (the decoder's output is not
/// copied: peak memory is the RGBA image, not both). Works from the end, where a pixel's RGBA
/// never overwrites a source pixel not yet read.
fn expand_in_place(
    mut px: Vec<u8>,
    n: usize,
    from: usize,
    f: impl Fn(&[u8]) -> [u8; 4],
) -> Vec<u8> {
    px.resize(n * 4, 0);
    for i in (0..n).rev() {
        let rgba = f(&px[i * from..i * from + from]);
        px[i * 4..i * 4 + 4].copy_from_slice(&rgba);
    }
    px
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_to_the_script_folder() {
        let dir = std::env::temp_dir().join(format!("sl-draw-assets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.txt"), b"x").unwrap();
        let a = Assets::new(&dir);
        assert!(a.resolve("sub/a.txt").is_ok());
        assert!(a.resolve("./sub/a.txt").is_ok());
        for bad in ["/etc/passwd", "../x", "sub/../../x", ""] {
            assert!(
                a.resolve(bad)
                    .unwrap_err()
                    .contains("inside their own folder")
            );
        }
        #[cfg(unix)]
        {
            let _ = std::os::unix::fs::symlink("/etc/passwd", dir.join("link"));
            assert!(a.resolve("link").is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn builtin_fonts_load() {
        let a = Assets::new(Path::new("."));
        let id = a.font_id("mono").unwrap();
        assert!(a.font(id).is_some());
        assert!(a.font_id("comic").unwrap_err().contains("sans"));
    }
}
