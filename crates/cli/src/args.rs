//! Flags and value parsers spelled the same way in every stage.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sl_frame::Rational;

/// Flags every stage has. Flatten it into a stage's arguments.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print a shell completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,
    /// Print the man page (roff) and exit.
    #[arg(long, hide = true)]
    pub man: bool,
}

/// A frame size, `WIDTHxHEIGHT` or a name: `4k` (3840x2160), `1080p`, `720p`, `480p`, `360p`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let named = match s.to_ascii_lowercase().as_str() {
            "4k" | "2160p" => Some((3840, 2160)),
            "1080p" => Some((1920, 1080)),
            "720p" => Some((1280, 720)),
            "480p" => Some((854, 480)),
            "360p" => Some((640, 360)),
            _ => None,
        };
        let (w, h) = match named {
            Some(wh) => wh,
            None => {
                let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| {
                    format!("`{s}` is not a size: use WIDTHxHEIGHT, e.g. 1280x720")
                })?;
                let p = |v: &str| {
                    v.trim().parse::<u32>().map_err(|_| {
                        format!("`{s}` is not a size: use WIDTHxHEIGHT, e.g. 1280x720")
                    })
                };
                (p(w)?, p(h)?)
            }
        };
        if w == 0 || h == 0 || w > sl_frame::MAX_DIMENSION || h > sl_frame::MAX_DIMENSION {
            return Err(format!(
                "size {w}x{h} is out of range (1 to 16384 each way)"
            ));
        }
        Ok(Size {
            width: w,
            height: h,
        })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Parse a frame rate: `30`, `29.97` (taken as 30000/1001), `30000/1001`, `12.5`.
pub fn parse_fps(s: &str) -> Result<Rational, String> {
    let bad = || format!("`{s}` is not a frame rate: use e.g. 30, 29.97 or 30000/1001");
    let r = if let Some((n, d)) = s.split_once('/') {
        Rational::new(
            n.trim().parse().map_err(|_| bad())?,
            d.trim().parse().map_err(|_| bad())?,
        )
    } else {
        let v: f64 = s.trim().parse().map_err(|_| bad())?;
        if !(v.is_finite() && v > 0.0) {
            return Err(bad());
        }
        // the NTSC family, as every tool spells them
        let ntsc = [
            (23.976, 24000),
            (29.97, 30000),
            (59.94, 60000),
            (119.88, 120000),
        ];
        match ntsc.iter().find(|(f, _)| (v - f).abs() < 0.006) {
            Some(&(_, num)) => Rational::new(num, 1001),
            None if v.fract() == 0.0 => Rational::new(v as u32, 1),
            None => Rational::new((v * 1000.0).round() as u32, 1000),
        }
    };
    if !r.is_valid() || r.as_f64() > 1000.0 {
        return Err(format!(
            "frame rate `{s}` is out of range (above 0, at most 1000)"
        ));
    }
    Ok(r)
}

/// Parse a duration: `10` or `10s` (seconds), `1.5s`, `500ms`, `2m`, `1h`, `1m30s`,
/// or `HH:MM:SS(.frac)` / `MM:SS`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration: use e.g. 10, 10s, 500ms, 1m30s or 00:01:30");
    let t = s.trim();
    if t.contains(':') {
        let mut secs = 0.0;
        for part in t.split(':') {
            let v: f64 = part.parse().map_err(|_| bad())?;
            if v < 0.0 {
                return Err(bad());
            }
            secs = secs * 60.0 + v;
        }
        return to_duration(secs, s);
    }
    let mut total = 0.0;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(bad());
        }
        let v: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "" | "s" => 1.0,
            "ms" => 0.001,
            "us" => 0.000_001,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += v * mult;
        rest = &rest[unit_end..];
    }
    to_duration(total, s)
}

/// The longest duration any flag takes: about 31 years. Far past anything a stream runs for,
/// and far enough from the limits of `Duration` and `Instant` that no deadline computed from
/// it (`Instant::now() + d`, a frame count) can overflow.
pub const MAX_DURATION_SECS: f64 = 1e9;

/// Seconds as a `Duration`, refusing what does not fit instead of panicking
/// (`Duration::from_secs_f64` panics past u64 seconds).
fn to_duration(secs: f64, s: &str) -> Result<Duration, String> {
    if !secs.is_finite() || !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return Err(format!(
            "`{s}` is out of range: a duration is at most {MAX_DURATION_SECS:.0} s (about 31 years)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A value parser for a type read with `FromStr` that also knows its usual names, so `--help`
/// lists them and shell completions offer them (other spellings the type accepts still work).
pub fn one_of<T>(names: &'static [&'static str]) -> Names<T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: fmt::Display,
{
    Names {
        names,
        _type: std::marker::PhantomData,
    }
}

/// `--format`'s parser: the pixel formats, completed by name.
pub fn pixel_format() -> Names<sl_frame::PixelFormat> {
    one_of(&["rgba", "bgra", "rgb24", "gray8", "i420", "nv12"])
}

/// See [`one_of`].
#[derive(Debug)]
pub struct Names<T> {
    names: &'static [&'static str],
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Names<T> {
    fn clone(&self) -> Self {
        Names {
            names: self.names,
            _type: std::marker::PhantomData,
        }
    }
}

impl<T> clap::builder::TypedValueParser for Names<T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: fmt::Display,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let v = value.to_string_lossy();
        v.parse::<T>().map_err(|e| {
            let arg = arg.map(|a| a.to_string()).unwrap_or_else(|| "...".into());
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{v}' for '{arg}': {e}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            self.names
                .iter()
                .map(|n| clap::builder::PossibleValue::new(*n)),
        ))
    }
}

/// Parse a bit rate in bits per second: `4M`, `2500k`, `800000` (k, M and G suffixes).
/// Every stage's `--bitrate`, `--audio-bitrate` and ladder rate goes through it.
pub fn parse_bitrate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a bit rate: use e.g. 4M, 2500k or 800000"))?;
    let bits = v * mult;
    if !(1e3..=1e10).contains(&bits) {
        return Err(format!(
            "a bit rate of `{s}` is outside 1k to 10G bits per second"
        ));
    }
    Ok(bits as u64)
}

/// Parse `KEY=VALUE` (an FFmpeg option).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

/// The flags of every stage that makes frames (`sl-test`, `sl-cam`, `sl-screen`,
/// `sl-file INPUT`): their pixel format, when to stop, the id stamped on them, and the clock
/// that stamps them. Flatten it; a stage that has a default of its own sets it on its
/// command (`#[command(mut_arg("format", |a| a.default_value("rgba")))]`), so `--help`
/// shows it.
#[derive(clap::Args, Debug, Default)]
pub struct SourceArgs {
    /// Pixel format: rgba, bgra, rgb24, gray8, i420, nv12.
    #[arg(short, long, value_parser = pixel_format())]
    pub format: Option<sl_frame::PixelFormat>,
    #[command(flatten)]
    pub limit: FrameLimit,
    /// Source id stamped on the stream and its frames.
    #[arg(long)]
    pub source_id: Option<String>,
    #[command(flatten)]
    pub clock: sl_clock::ClockArgs,
}

/// The encoder flags of every stage that encodes (`sl-file -o`, `sl-hls`). Flatten it under
/// a heading (`#[command(flatten, next_help_heading = "Encoding")]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EncodeArgs {
    /// Video encoder: libx264 (mp4/mkv/ts/flv/HLS), rawvideo (y4m/nut), ffv1 (lossless)...
    #[arg(long)]
    pub codec: Option<String>,
    /// Encoder speed preset (libx264: ultrafast .. veryslow; default veryfast).
    #[arg(long)]
    pub preset: Option<String>,
    /// Quality for libx264 (0 lossless .. 51; default 23).
    #[arg(long)]
    pub crf: Option<f32>,
    /// Video bit rate (e.g. 4M, 2500k) instead of --crf.
    #[arg(long, value_parser = parse_bitrate)]
    pub bitrate: Option<u64>,
    /// Audio bit rate (default 128k for AAC).
    #[arg(long, value_parser = parse_bitrate)]
    pub audio_bitrate: Option<u64>,
    /// An encoder option, KEY=VALUE (repeatable), e.g. tune=zerolatency or
    /// x264-params=bframes=0.
    #[arg(short = 'x', long = "codec-option", value_name = "KEY=VALUE", value_parser = key_value)]
    pub codec_options: Vec<(String, String)>,
    /// A muxer option, KEY=VALUE (repeatable), e.g. movflags=+faststart.
    #[arg(long = "mux-option", value_name = "KEY=VALUE", value_parser = key_value)]
    pub mux_options: Vec<(String, String)>,
}

/// `--progress` / `--no-progress` / `--stats`: the meter, spelled the same in every stage.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Show a live progress line on stderr (when stderr is a terminal): frames, fps, size,
    /// stream time, bitrate, speed.
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// No live progress line.
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,
    /// Print a stats line on stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

impl Progress {
    /// Whether the live line is wanted, given the stage's default.
    pub fn live(&self, default: bool) -> bool {
        if self.progress {
            true
        } else if self.no_progress {
            false
        } else {
            default
        }
    }
}

/// `--policy`: what a stage does when it falls behind.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct Delivery {
    /// When this stage falls behind: block (lossless, slows upstream), latest (drop to the
    /// newest frame) or queue:N (keep N, drop the oldest). Only video frames are dropped.
    #[arg(long, default_value = "block", value_name = "block|latest|queue:N")]
    pub policy: crate::Policy,
}

/// The flags of a stage that moves frames: the meter ([`Progress`]), `--policy`
/// ([`Delivery`]) and the ones every stage has ([`Common`]), flattened once.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StageFlags {
    #[command(flatten)]
    pub progress: Progress,
    #[command(flatten)]
    pub delivery: Delivery,
    #[command(flatten)]
    pub common: Common,
}

/// `--frames N` / `--duration D`: when a source or filter should stop.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct FrameLimit {
    /// Stop after N frames.
    #[arg(short = 'n', long, value_name = "N")]
    pub frames: Option<u64>,
    /// Stop after this much stream time (e.g. 10s, 500ms, 1m30s, 00:01:30).
    #[arg(short = 't', long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

impl FrameLimit {
    /// Has a stream that produced `frames` frames and reached `secs` of stream time reached
    /// the limit? (Checked before emitting frame number `frames`, at time `secs`.)
    pub fn reached(&self, frames: u64, secs: f64) -> bool {
        self.frames.is_some_and(|n| frames >= n)
            || self
                .duration
                .is_some_and(|d| secs >= d.as_secs_f64() - 1e-9)
    }

    pub fn is_unlimited(&self) -> bool {
        self.frames.is_none() && self.duration.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(
            "1280x720".parse::<Size>().unwrap(),
            Size {
                width: 1280,
                height: 720
            }
        );
        assert_eq!(
            "1080p".parse::<Size>().unwrap(),
            Size {
                width: 1920,
                height: 1080
            }
        );
        assert!("1280".parse::<Size>().unwrap_err().contains("WIDTHxHEIGHT"));
        assert!("0x10".parse::<Size>().is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_fps("30").unwrap(), Rational::new(30, 1));
        assert_eq!(parse_fps("29.97").unwrap(), Rational::new(30000, 1001));
        assert_eq!(parse_fps("30000/1001").unwrap(), Rational::new(30000, 1001));
        assert_eq!(parse_fps("12.5").unwrap(), Rational::new(12500, 1000));
        assert!(parse_fps("0").is_err());
        assert!(parse_fps("fast").is_err());
        assert!(parse_fps("1/0").is_err());
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).unwrap().as_secs_f64();
        assert_eq!(d("10"), 10.0);
        assert_eq!(d("1.5s"), 1.5);
        assert_eq!(d("500ms"), 0.5);
        assert_eq!(d("1m30s"), 90.0);
        assert_eq!(d("00:01:30"), 90.0);
        assert_eq!(d("1:02.5"), 62.5);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        // past u64 seconds, or past any sane stream: an error, not a panic later
        assert!(parse_duration("18446744073709551616s").is_err());
        assert!(parse_duration("99999999999:00:00").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_duration("2000000000s").is_err());
        assert_eq!(
            parse_duration("1000000000").unwrap(),
            Duration::from_secs(1_000_000_000)
        );
    }

    #[test]
    fn bitrates() {
        assert_eq!(parse_bitrate("8M").unwrap(), 8_000_000);
        assert_eq!(parse_bitrate("2500k").unwrap(), 2_500_000);
        assert_eq!(parse_bitrate("800000").unwrap(), 800_000);
        assert_eq!(parse_bitrate("1.5G").unwrap(), 1_500_000_000);
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("1").is_err());
        assert!(parse_bitrate("-4M").is_err());
        assert!(parse_bitrate("NaN").is_err());
        assert!(parse_bitrate("20G").is_err());
        assert_eq!(key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(key_value("ab").is_err());
    }

    #[test]
    fn limits() {
        let l = FrameLimit {
            frames: Some(3),
            duration: None,
        };
        assert!(!l.reached(2, 100.0));
        assert!(l.reached(3, 0.0));
        let l = FrameLimit {
            frames: None,
            duration: Some(Duration::from_secs(1)),
        };
        assert!(!l.reached(29, 29.0 / 30.0));
        assert!(l.reached(30, 1.0));
    }
}
