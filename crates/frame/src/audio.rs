//! Raw audio chunks.

use std::fmt;

use crate::{FrameError, FrameInfo};

/// Upper bounds that keep a hostile header from asking for absurd allocations.
pub const MAX_CHANNELS: u16 = 64;
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Ten seconds at the highest rate: far more than any real chunk.
pub const MAX_SAMPLES_PER_CHUNK: u32 = 7_680_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    U8,
    S16,
    S32,
    F32,
    F64,
}

impl SampleFormat {
    pub const fn bytes(self) -> usize {
        match self {
            SampleFormat::U8 => 1,
            SampleFormat::S16 => 2,
            SampleFormat::S32 | SampleFormat::F32 => 4,
            SampleFormat::F64 => 8,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            SampleFormat::U8 => "u8",
            SampleFormat::S16 => "s16",
            SampleFormat::S32 => "s32",
            SampleFormat::F32 => "f32",
            SampleFormat::F64 => "f64",
        }
    }
    pub const fn wire_code(self) -> u8 {
        match self {
            SampleFormat::U8 => 1,
            SampleFormat::S16 => 2,
            SampleFormat::S32 => 3,
            SampleFormat::F32 => 4,
            SampleFormat::F64 => 5,
        }
    }
    pub fn from_wire_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => SampleFormat::U8,
            2 => SampleFormat::S16,
            3 => SampleFormat::S32,
            4 => SampleFormat::F32,
            5 => SampleFormat::F64,
            _ => return None,
        })
    }
}

impl fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A run of audio samples. Interleaved: one buffer `L R L R...`; planar: all of channel 0,
/// then all of channel 1, each `samples * bytes` long. Little-endian samples.
#[derive(Clone, PartialEq)]
pub struct AudioChunk {
    pub info: FrameInfo,
    format: SampleFormat,
    sample_rate: u32,
    channels: u16,
    planar: bool,
    samples: u32,
    data: Vec<u8>,
}

impl AudioChunk {
    /// Build a chunk, checking that `data` holds exactly `samples` samples per channel.
    pub fn new(
        format: SampleFormat,
        sample_rate: u32,
        channels: u16,
        planar: bool,
        samples: u32,
        data: Vec<u8>,
    ) -> Result<Self, FrameError> {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(FrameError::Audio(format!(
                "{channels} channels (must be 1..={MAX_CHANNELS})"
            )));
        }
        if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
            return Err(FrameError::Audio(format!(
                "sample rate {sample_rate} (must be 1..={MAX_SAMPLE_RATE})"
            )));
        }
        if samples > MAX_SAMPLES_PER_CHUNK {
            return Err(FrameError::Audio(format!(
                "{samples} samples in one chunk (at most {MAX_SAMPLES_PER_CHUNK})"
            )));
        }
        let expected = Self::byte_len(format, channels, samples);
        if data.len() != expected {
            return Err(FrameError::Audio(format!(
                "{samples} {format} samples x {channels} channels need {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(AudioChunk {
            info: FrameInfo::default(),
            format,
            sample_rate,
            channels,
            planar,
            samples,
            data,
        })
    }

    /// Bytes needed for `samples` samples of every channel.
    pub const fn byte_len(format: SampleFormat, channels: u16, samples: u32) -> usize {
        format.bytes() * channels as usize * samples as usize
    }

    pub fn format(&self) -> SampleFormat {
        self.format
    }
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
    pub fn channels(&self) -> u16 {
        self.channels
    }
    pub fn planar(&self) -> bool {
        self.planar
    }
    pub fn samples(&self) -> u32 {
        self.samples
    }
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
    /// Seconds of sound in this chunk.
    pub fn duration_secs(&self) -> f64 {
        self.samples as f64 / self.sample_rate as f64
    }
    /// One channel's samples, for planar chunks.
    pub fn plane(&self, channel: usize) -> Option<&[u8]> {
        if !self.planar || channel >= self.channels as usize {
            return None;
        }
        let len = self.samples as usize * self.format.bytes();
        Some(&self.data[channel * len..(channel + 1) * len])
    }
}

impl fmt::Debug for AudioChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioChunk")
            .field("format", &self.format)
            .field("rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("planar", &self.planar)
            .field("samples", &self.samples)
            .field("info", &self.info)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_sizes() {
        assert!(AudioChunk::new(SampleFormat::S16, 48000, 2, false, 1024, vec![0; 4096]).is_ok());
        assert!(AudioChunk::new(SampleFormat::S16, 48000, 2, false, 1024, vec![0; 4095]).is_err());
        assert!(AudioChunk::new(SampleFormat::F32, 48000, 0, true, 0, vec![]).is_err());
        let c = AudioChunk::new(SampleFormat::F32, 48000, 2, true, 2, vec![1; 16]).unwrap();
        assert_eq!(c.plane(1).unwrap().len(), 8);
        assert!(c.plane(2).is_none());
    }
}
