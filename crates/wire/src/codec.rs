//! Little-endian primitives for message headers: an appending encoder and a bounds-checked
//! decoding cursor. A short header is a [`WireError::Malformed`], never a panic.

use sl_frame::{BBox, FrameInfo, Metadata, Rational, Value};

use crate::WireError;

pub(crate) struct Enc<'a>(pub &'a mut Vec<u8>);

impl Enc<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// u16 length + UTF-8. A longer string is a [`WireError::TooLong`] naming `what`: a cut
    /// string would change what the stream says without a word.
    pub fn str(&mut self, s: &str, what: &'static str) -> Result<(), WireError> {
        let len = u16::try_from(s.len()).map_err(|_| WireError::TooLong {
            what,
            len: s.len(),
            max: u16::MAX as usize,
        })?;
        self.u16(len);
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
    /// u32 length + bytes.
    pub fn bytes(&mut self, b: &[u8], what: &'static str) -> Result<(), WireError> {
        self.u32(u32_len(b.len(), what)?);
        self.0.extend_from_slice(b);
        Ok(())
    }
    pub fn rational(&mut self, r: Rational) {
        self.u32(r.num);
        self.u32(r.den);
    }

    /// The timing block every frame-carrying message starts with.
    pub fn frame_info(&mut self, info: &FrameInfo) -> Result<(), WireError> {
        self.u64(info.frame_number);
        self.i64(info.pts);
        self.rational(info.time_base);
        self.i64(info.duration);
        let presence =
            (info.capture_time_ns.is_some() as u8) | ((info.ptp_time_ns.is_some() as u8) << 1);
        self.u8(presence);
        self.i64(info.capture_time_ns.unwrap_or(0));
        self.i64(info.ptp_time_ns.unwrap_or(0));
        self.str(&info.source_id, "a source id")?;
        self.metadata(&info.metadata)
    }

    pub fn metadata(&mut self, m: &Metadata) -> Result<(), WireError> {
        let count = u16::try_from(m.len()).map_err(|_| WireError::TooLong {
            what: "a frame's metadata (entries)",
            len: m.len(),
            max: u16::MAX as usize,
        })?;
        self.u16(count);
        for (key, value) in m.iter() {
            self.str(key, "a metadata key")?;
            let (ty, start) = (value_type(value), self.0.len());
            self.u8(ty);
            self.u32(0); // value length, patched below
            match value {
                Value::Bool(b) => self.u8(*b as u8),
                Value::Int(i) => self.i64(*i),
                Value::Float(f) => self.f64(*f),
                Value::Str(s) => self.0.extend_from_slice(s.as_bytes()),
                Value::Bytes(b) => self.0.extend_from_slice(b),
                Value::Boxes(boxes) => {
                    self.u32(u32_len(boxes.len(), "a metadata box list")?);
                    for b in boxes {
                        self.f32(b.x);
                        self.f32(b.y);
                        self.f32(b.w);
                        self.f32(b.h);
                        self.f32(b.score);
                        self.i32(b.class_id);
                        self.str(&b.label, "a box label")?;
                    }
                }
            }
            let len = u32_len(self.0.len() - start - 5, "a metadata value")?;
            self.0[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
        }
        Ok(())
    }
}

/// A length that must fit the wire's `u32`.
fn u32_len(len: usize, what: &'static str) -> Result<u32, WireError> {
    u32::try_from(len).map_err(|_| WireError::TooLong {
        what,
        len,
        max: u32::MAX as usize,
    })
}

fn value_type(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 1,
        Value::Int(_) => 2,
        Value::Float(_) => 3,
        Value::Str(_) => 4,
        Value::Bytes(_) => 5,
        Value::Boxes(_) => 6,
    }
}

pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    kind: &'static str,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8], kind: &'static str) -> Self {
        Dec { buf, pos: 0, kind }
    }

    pub fn err(&self, why: impl Into<String>) -> WireError {
        WireError::malformed(self.kind, why)
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(format!(
                "header ends inside {what} (needs {n} bytes at offset {}, header is {} bytes)",
                self.pos,
                self.buf.len()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], WireError> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returns N bytes"))
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn i32(&mut self, what: &str) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub fn i64(&mut self, what: &str) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub fn f32(&mut self, what: &str) -> Result<f32, WireError> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub fn f64(&mut self, what: &str) -> Result<f64, WireError> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }
    pub fn str(&mut self, what: &str) -> Result<String, WireError> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }
    pub fn bytes(&mut self, what: &str) -> Result<Vec<u8>, WireError> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }
    pub fn rational(&mut self, what: &str) -> Result<Rational, WireError> {
        Ok(Rational::new(self.u32(what)?, self.u32(what)?))
    }

    pub fn frame_info(&mut self, keyframe: bool) -> Result<FrameInfo, WireError> {
        let frame_number = self.u64("frame number")?;
        let pts = self.i64("pts")?;
        let time_base = self.rational("time base")?;
        if !time_base.is_valid() {
            return Err(self.err(format!("time base {time_base:?} has a zero term")));
        }
        let duration = self.i64("duration")?;
        let presence = self.u8("presence bits")?;
        let capture = self.i64("capture time")?;
        let ptp = self.i64("PTP time")?;
        let source_id = self.str("source id")?;
        let metadata = self.metadata()?;
        Ok(FrameInfo {
            frame_number,
            pts,
            time_base,
            duration,
            capture_time_ns: (presence & 1 != 0).then_some(capture),
            ptp_time_ns: (presence & 2 != 0).then_some(ptp),
            source_id,
            keyframe,
            metadata,
        })
    }

    /// Metadata entries; entries of unknown types are skipped, as the spec requires.
    pub fn metadata(&mut self) -> Result<Metadata, WireError> {
        let count = self.u16("metadata count")?;
        let mut m = Metadata::new();
        for _ in 0..count {
            let key = self.str("metadata key")?;
            let ty = self.u8("metadata type")?;
            let len = self.u32("metadata value length")? as usize;
            let body = self.take(len, "metadata value")?;
            let mut d = Dec::new(body, self.kind);
            let value = match ty {
                1 => Value::Bool(d.u8("bool")? != 0),
                2 => Value::Int(d.i64("int")?),
                3 => Value::Float(d.f64("float")?),
                4 => Value::Str(
                    String::from_utf8(body.to_vec())
                        .map_err(|_| self.err(format!("metadata `{key}` is not UTF-8")))?,
                ),
                5 => Value::Bytes(body.to_vec()),
                6 => {
                    let n = d.u32("box count")? as usize;
                    // each box takes at least 26 bytes: bound the allocation by what is there
                    if n > body.len() / 26 {
                        return Err(self.err(format!("metadata `{key}`: {n} boxes in {len} bytes")));
                    }
                    let mut boxes = Vec::with_capacity(n);
                    for _ in 0..n {
                        boxes.push(BBox {
                            x: d.f32("box")?,
                            y: d.f32("box")?,
                            w: d.f32("box")?,
                            h: d.f32("box")?,
                            score: d.f32("box")?,
                            class_id: d.i32("box")?,
                            label: d.str("box label")?,
                        });
                    }
                    Value::Boxes(boxes)
                }
                _ => continue,
            };
            m.insert(key, value);
        }
        Ok(m)
    }
}
