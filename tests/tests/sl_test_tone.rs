//! `sl-test --tone`: an audio test tone alongside the video, in step with it, that sl-file
//! encodes as AAC and ffmpeg hears as a sine of the asked frequency.

use std::process::{Command, Stdio};

use sl_e2e::{Pipeline, require, scratch_dir};
use sl_frame::SampleFormat;
use sl_wire::Message;

/// Zero crossings per second / 2 over `samples` at `rate`: the frequency of a sine.
fn crossing_hz(samples: &[f32], rate: f64) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / rate)
}

#[test]
fn tone_chunks_follow_the_video_and_are_a_sine() {
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--tone", "440", "-n", "60", "--fast", "-s", "64x48", "-r", "30",
            ],
        )
        .run();
    out.assert_success();
    let msgs = out.messages();
    let audio_info = msgs
        .iter()
        .find_map(|m| match m {
            Message::Stream { stream: 1, info } => info.audio().cloned(),
            _ => None,
        })
        .expect("an audio stream description");
    assert_eq!(audio_info.sample_rate, 48_000);
    assert_eq!(audio_info.channels, 1);
    let mut samples = Vec::new();
    let mut next_pts = 0;
    let mut chunks = 0;
    let mut video = 0;
    for m in &msgs {
        match m {
            Message::Audio { chunk, .. } => {
                assert_eq!(chunk.format(), SampleFormat::F32);
                // each chunk starts where the last ended, at its video frame's time
                assert_eq!(chunk.info.pts, next_pts, "chunk {chunks} starts in step");
                assert_eq!(
                    chunk.info.pts,
                    video * 1600,
                    "chunk {chunks} is at frame {video}'s time"
                );
                next_pts += i64::from(chunk.samples());
                chunks += 1;
                samples.extend(
                    chunk
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            Message::Video { .. } => video += 1,
            _ => {}
        }
    }
    assert_eq!(video, 60);
    assert_eq!(chunks, 60, "one audio chunk per video frame");
    assert_eq!(samples.len(), 2 * 48_000, "2 s of audio for 2 s of video");
    let peak = samples.iter().fold(0f32, |a, s| a.max(s.abs()));
    assert!((0.45..=0.5).contains(&peak), "amplitude {peak}");
    let hz = crossing_hz(&samples, 48_000.0);
    assert!((hz - 440.0).abs() < 2.0, "the tone is {hz} Hz, not 440");
}

#[test]
fn beep_alternates_tone_and_silence() {
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--tone", "1000", "--beep", "-n", "30", "--fast", "-s", "64x48",
            ],
        )
        .run();
    out.assert_success();
    let samples: Vec<f32> = out
        .messages()
        .iter()
        .filter_map(|m| match m {
            Message::Audio { chunk, .. } => Some(chunk.data().to_vec()),
            _ => None,
        })
        .flatten()
        .collect::<Vec<u8>>()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(samples.len(), 48_000);
    let loud = |r: &[f32]| r.iter().fold(0f32, |a, s| a.max(s.abs()));
    assert!(
        loud(&samples[..24_000]) > 0.4,
        "the first half second beeps"
    );
    assert_eq!(
        loud(&samples[24_000..]),
        0.0,
        "the second half second is silent"
    );
}

#[test]
fn tone_in_an_mp4_is_aac_of_three_seconds_at_440_hz() {
    require("ffprobe");
    require("ffmpeg");
    let dir = scratch_dir("sl_test_tone_mp4");
    let file = dir.join("a.mp4");
    let f = file.to_str().unwrap();
    Pipeline::new()
        .sl(
            "sl-test",
            &["--tone", "440", "-n", "90", "-s", "320x240", "--fast"],
        )
        .sl("sl-file", &["-o", f])
        .run()
        .assert_success();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args([
            "-show_entries",
            "stream=codec_name,sample_rate,duration",
            "-of",
            "json",
            f,
        ])
        .output()
        .expect("ffprobe");
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "aac", "ffprobe: {v}");
    let duration: f64 = s["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 3.0).abs() < 0.1, "audio lasts {duration} s");
    let pcm = Command::new("ffmpeg")
        .args([
            "-v", "error", "-i", f, "-map", "0:a", "-f", "f32le", "-ac", "1", "-ar", "48000", "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg");
    assert!(
        pcm.status.success(),
        "{}",
        String::from_utf8_lossy(&pcm.stderr)
    );
    let samples: Vec<f32> = pcm
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(samples.len() > 140_000, "{} samples decoded", samples.len());
    // the middle two seconds, away from the encoder's priming and padding
    let hz = crossing_hz(&samples[24_000..120_000], 48_000.0);
    assert!((hz - 440.0).abs() < 5.0, "ffmpeg hears {hz} Hz, not 440");
}

#[test]
fn a_tone_that_cannot_be_sampled_is_a_usage_error() {
    let out = Pipeline::new()
        .sl("sl-test", &["--tone", "30000", "-n", "1"])
        .run();
    assert_eq!(out.last().code, Some(2));
    assert!(
        out.last().stderr.contains("cannot be sampled"),
        "{}",
        out.last().stderr
    );
    let out = Pipeline::new().sl("sl-test", &["--beep", "-n", "1"]).run();
    assert_eq!(out.last().code, Some(2), "{}", out.last().stderr);
}
