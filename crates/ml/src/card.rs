//! The model card: how to turn a frame into a model's input and what its outputs mean, read
//! from a small TOML file next to the model (`face.onnx` → `face.toml`), with every field
//! overridable by a flag. A model without a card works from its declared input shape alone
//! (RGB, NCHW, pixels scaled to 0..1, stretched to the declared size).
//!
//! ```toml
//! [input]
//! layout = "nchw"        # or "nhwc"
//! channels = "rgb"       # or "bgr", "gray"
//! multiple_of = 32       # fully convolutional: any size that is a multiple of 32 ...
//! max_side = 640         # ... with the frame scaled so its longer side is at most 640
//! # size = [640, 640]    # or a fixed size (width, height)
//! resize = "letterbox"   # "stretch", "letterbox" (keep the aspect, pad), or "none"
//! scale = 1.0            # value = (pixel * scale - mean) / std, per channel
//! mean = [0.0, 0.0, 0.0]
//! std = [1.0, 1.0, 1.0]
//! pad = 0                # the padding's pixel value
//!
//! [output]
//! task = "detect"        # "detect", "classify" or "raw"
//! decoder = "centerface" # detect: "centerface", "yolov5", "yolov8", "ssd"
//! threshold = 0.5
//! nms = 0.3
//! labels = ["face"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// How the frame's channels are ordered in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    Rgb,
    Bgr,
    Gray,
}

impl Channels {
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            _ => 3,
        }
    }
}

/// Where the channel axis is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// How a frame of another shape meets the input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// To exactly the input size, whatever the aspect.
    Stretch,
    /// Inside the input size keeping the aspect, centred, the rest padded.
    Letterbox,
    /// Not at all: a frame must have the input's size.
    None,
}

/// What the outputs are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detect,
    Classify,
    Raw,
}

/// Which detection layout the outputs follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decoder {
    /// CenterFace: heatmap, scale, offset and landmark maps at stride 4.
    Centerface,
    /// `[1, N, 5 + classes]`: cx, cy, w, h, objectness, class scores.
    Yolov5,
    /// `[1, 4 + classes, N]`: cx, cy, w, h, class scores (no objectness).
    Yolov8,
    /// Boxes `[1, N, 4]` and scores `[1, N, classes]` (or `[1, N]` with classes `[1, N]`).
    Ssd,
}

/// SSD box coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BoxFormat {
    /// x1, y1, x2, y2
    #[default]
    Xyxy,
    /// y1, x1, y2, x2 (TensorFlow's)
    Yxyx,
    /// centre x, centre y, width, height
    Cxcywh,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputCard {
    /// The input's name (default: the model's first input).
    pub name: Option<String>,
    pub layout: Option<Layout>,
    pub channels: Option<Channels>,
    /// A fixed size, width and height.
    pub size: Option<[u32; 2]>,
    /// Any size that is a multiple of this (a fully convolutional model).
    pub multiple_of: Option<u32>,
    /// With `multiple_of`: scale frames down so their longer side is at most this.
    pub max_side: Option<u32>,
    pub resize: Option<Resize>,
    pub scale: Option<f32>,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    pub pad: Option<u8>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputCard {
    pub task: Option<Task>,
    pub decoder: Option<Decoder>,
    pub threshold: Option<f32>,
    pub nms: Option<f32>,
    pub labels: Option<Vec<String>>,
    /// SSD: the coordinates' order.
    pub box_format: Option<BoxFormat>,
    /// SSD: coordinates are fractions of the input (true) or input pixels (false).
    pub normalized: Option<bool>,
    /// SSD: class 0 is the background and never reported.
    pub background: Option<bool>,
    /// Classify: apply softmax (default: unless the outputs already sum to 1).
    pub softmax: Option<bool>,
    /// Output names, in the order the decoder takes them (default: the model's order).
    pub outputs: Option<Vec<String>>,
}

/// The whole card.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    #[serde(default)]
    pub input: InputCard,
    #[serde(default)]
    pub output: OutputCard,
}

impl Card {
    /// The card beside `model` (same name, `.toml`), if there is one.
    pub fn beside(model: &Path) -> Option<PathBuf> {
        let path = model.with_extension("toml");
        path.is_file().then_some(path)
    }

    pub fn read(path: &Path) -> Result<Card, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Card {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Card::parse(&text).map_err(|reason| Error::Card {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Card, String> {
        let card: Card = toml::from_str(text).map_err(|e| e.to_string())?;
        card.check()?;
        Ok(card)
    }

    fn check(&self) -> Result<(), String> {
        let i = &self.input;
        if i.size.is_some() && i.multiple_of.is_some() {
            return Err("give input.size or input.multiple_of, not both".into());
        }
        if i.multiple_of == Some(0) {
            return Err("input.multiple_of must be at least 1".into());
        }
        if let Some([w, h]) = i.size
            && (w == 0 || h == 0 || w > 16384 || h > 16384)
        {
            return Err(format!("input.size {w}x{h} is out of range (1..=16384)"));
        }
        for (name, v) in [("mean", &i.mean), ("std", &i.std)] {
            if let Some(v) = v
                && v.len() != 1
                && v.len() != 3
            {
                return Err(format!(
                    "input.{name} has {} values: give 1 (every channel) or 3",
                    v.len()
                ));
            }
        }
        if i.std.as_ref().is_some_and(|s| s.contains(&0.0)) {
            return Err("input.std must not contain 0".into());
        }
        for (name, v) in [
            ("threshold", self.output.threshold),
            ("nms", self.output.nms),
        ] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(format!("output.{name} {v} is outside 0..1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_card_parses() {
        let c = Card::parse(
            r#"
            [input]
            layout = "nchw"
            channels = "bgr"
            multiple_of = 32
            max_side = 640
            resize = "letterbox"
            scale = 0.00392
            mean = [0.5]
            std = [0.5, 0.5, 0.5]
            [output]
            task = "detect"
            decoder = "yolov8"
            threshold = 0.25
            labels = ["a", "b"]
            "#,
        )
        .unwrap();
        assert_eq!(c.input.channels, Some(Channels::Bgr));
        assert_eq!(c.output.decoder, Some(Decoder::Yolov8));
        assert_eq!(c.output.labels.unwrap().len(), 2);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(
            Card::parse("[input]\nlayuot = \"nchw\"")
                .unwrap_err()
                .contains("layuot")
        );
        assert!(
            Card::parse("[input]\nsize = [1, 1]\nmultiple_of = 2")
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            Card::parse("[input]\nmean = [1, 2]")
                .unwrap_err()
                .contains("mean")
        );
        assert!(
            Card::parse("[output]\nthreshold = 2")
                .unwrap_err()
                .contains("threshold")
        );
    }
}
