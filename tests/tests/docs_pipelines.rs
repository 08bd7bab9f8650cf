//! Every pipeline in README.md, docs/cookbook.md and every stage's `--help` examples, run for
//! real in bash (PATH starts with the freshly built stages), in a scratch dir that holds the
//! files the examples name (made by ffmpeg and sl-test). Each stage of each pipeline must exit
//! 0, and a pipeline that ends in a report or a file must have frames in it.
//!
//! What cannot run here as written is changed by the rewrites in [`REWRITES`] or left out by
//! [`SKIPS`], each with its reason; a skip that no longer matches any line fails the test, so
//! the lists cannot go stale. Display stages run on a private Xvfb.

mod desktop;

use std::path::Path;
use std::process::{Command, Stdio};

use desktop::Xvfb;
use sl_e2e::{bin, require, scratch_dir};
// The stages whose `--help` examples are run: every one in sl_cli::STAGES (the list the man,
// completion and install tests use too), so a new stage's examples run without another
// edit. Those that need a device or a display get one here (`sl-cam --fake`, Xvfb).
use sl_cli::STAGES;

/// Lines left out, by a part of the line, and why.
const SKIPS: [(&str, &str); 15] = [
    (
        "scripts/",
        "the repo's scripts: CI runs test.sh and check.sh themselves",
    ),
    (
        "--serve 8080",
        "serves until Ctrl-C: hls_serve::the_readme_hls_line_is_live_when_a_browser_opens_it runs the README line as written",
    ),
    ("https://host/", "a placeholder URL"),
    (
        "rtmp://server",
        "needs an RTMP server: sl_file.rs pushes to a local one",
    ),
    (
        "srt://host",
        "needs an SRT listener: sl_file.rs pushes to a local one",
    ),
    (
        "yolov8n.onnx",
        "no package ships a YOLO model: sl-ml's unit tests check the YOLO decoders",
    ),
    (
        "detect.onnx",
        "a placeholder model name: the sl-ml lines with centerface.onnx run the real model",
    ),
    (
        "(then: echo",
        "what to send while the line above runs: sl_composite.rs drives --control",
    ),
    (
        "net.onnx",
        "a placeholder classifier: sl-ml's unit tests check softmax and top-k",
    ),
    (
        "--window firefox",
        "needs a Firefox window: sl_screen.rs captures windows by title",
    ),
    (
        "in.avi",
        "a placeholder for any file ffmpeg reads; sl_file.rs reads nut from stdin",
    ),
    (
        "--control /tmp/hud.sock",
        "a source that waits for commands: sl_draw.rs drives --control",
    ),
    (
        ":4433",
        "a link between two machines whose keys are pinned: sl_net.rs runs send, listen, serve and recv on loopback and across network namespaces",
    ),
    (
        "sl --list",
        "lists what is on PATH: runtime.rs and plugins tests cover sl",
    ),
    (
        "| sl-show --pass --policy latest | sl-hls",
        "sl-screen into sl-show --pass is covered by sl_show.rs; here the screen is Xvfb's",
    ),
];

/// Rewrites for what cannot run here as written, in order: (from, to, why).
const REWRITES: [(&str, &str, &str); 8] = [
    (
        "--input-format mjpeg",
        "--input-format nv12",
        "the fake camera (no camera here) makes no MJPEG",
    ),
    (
        "ssh gpu-box ",
        "",
        "no second machine: the same bytes go to the local stage",
    ),
    (
        "ssh other-host ",
        "",
        "no second machine: the same bytes go to the local stage",
    ),
    (
        "ffplay -",
        "ffmpeg -v error -f nut -i - -f null -",
        "no player here: ffmpeg reads the same bytes",
    ),
    ("-t 30s", "-t 1s", "shortened: the machine is shared"),
    ("-t 10s", "-t 1s", "shortened: the machine is shared"),
    ("-t 5s", "-t 1s", "shortened: the machine is shared"),
    ("-n 600", "-n 30", "shortened: the machine is shared"),
];

/// One pipeline found in the docs.
struct Line {
    from: String,
    text: String,
}

fn doc_lines(repo: &Path) -> Vec<Line> {
    let mut lines = Vec::new();
    for doc in ["README.md", "docs/cookbook.md"] {
        let text = std::fs::read_to_string(repo.join(doc)).unwrap();
        let mut in_sh = false;
        for l in text.lines() {
            if l.starts_with("```") {
                in_sh = l == "```sh";
                continue;
            }
            let l = l.trim();
            if in_sh && !l.is_empty() && !l.starts_with('#') {
                lines.push(Line {
                    from: doc.to_string(),
                    text: l.to_string(),
                });
            }
        }
    }
    for stage in STAGES {
        let out = Command::new(bin(stage)).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        let examples = help
            .split("Examples:")
            .nth(1)
            .unwrap_or_else(|| panic!("{stage} --help has no examples"));
        for l in examples
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
        {
            lines.push(Line {
                from: format!("{stage} --help"),
                text: l.trim().to_string(),
            });
        }
    }
    lines
}

/// Bound an endless source (a pipeline's first stage given no `-n`/`-t`) to 30 frames, and
/// give `sl-cam` the fake camera (no camera here).
fn bounded(cmd: &str) -> String {
    let segs: Vec<&str> = cmd.split(" | ").collect();
    let mut out = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let orig = seg.trim();
        let mut seg = orig.to_string();
        let mut words: Vec<&str> = orig.split_whitespace().collect();
        // `sl test ...` runs `sl-test ...`
        let dispatched;
        if words.first() == Some(&"sl") && words.len() > 1 && !words[1].starts_with('-') {
            dispatched = format!("sl-{}", words[1]);
            words.splice(0..2, [dispatched.as_str()]);
        }
        let endless = matches!(
            words.first().copied(),
            Some("sl-test" | "sl-cam" | "sl-screen" | "sl-draw")
        ) || seg.contains("--loop");
        let has_bound = words
            .iter()
            .any(|w| matches!(*w, "-n" | "-t" | "--frames" | "--duration" | "--list"));
        if i == 0 && endless && !has_bound {
            seg.push_str(" -n 30");
        }
        if words.first() == Some(&"sl-cam") && !seg.contains("--list") {
            seg = seg.replacen(
                "sl-cam",
                "sl-cam --fake 'yuyv:1280x720@30,nv12:1920x1080@60'",
                1,
            );
        }
        out.push(seg);
    }
    out.join(" | ")
}

fn rewrite(line: &str) -> String {
    let mut s = line.split(" # ").next().unwrap().trim().to_string();
    for (from, to, _why) in REWRITES {
        s = s.replace(from, to);
    }
    bounded(&s)
}

/// The files the examples name, made here.
fn prepare(dir: &Path) {
    require("ffmpeg");
    let ff = |args: &[&str]| {
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg {args:?}");
    };
    let src = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
    ];
    for (name, extra) in [
        ("talk.mp4", &["-pix_fmt", "yuv420p"][..]),
        ("in.mp4", &["-pix_fmt", "yuv420p"][..]),
        ("clip.mkv", &[][..]),
    ] {
        let mut a: Vec<&str> = src.to_vec();
        a.extend_from_slice(extra);
        a.push(name);
        ff(&a);
    }
    ff(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30:duration=1",
        "-pix_fmt",
        "yuv420p",
        "in.y4m",
    ]);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::create_dir_all(dir.join("examples")).unwrap();
    for f in ["clock.rhai", "boxes.rhai", "anonymise.rhai", "pip.toml"] {
        std::fs::copy(repo.join("examples").join(f), dir.join("examples").join(f)).unwrap();
    }
    for f in ["clock.rhai", "overlay.rhai", "hud.rhai"] {
        let from = if f == "overlay.rhai" {
            "lower-third.rhai"
        } else {
            f
        };
        std::fs::copy(repo.join("examples").join(from), dir.join(f)).unwrap();
    }
    // sl-ml's lines run the real CenterFace model (and its card) that scripts/setup.sh fetched
    let models = match std::env::var_os("STREAMLIB_CACHE") {
        Some(c) => Path::new(&c).join("models"),
        None => Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/streamlib/models"),
    };
    for f in ["centerface.onnx", "centerface.toml"] {
        std::fs::copy(models.join(f), dir.join(f)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run scripts/setup.sh (it runs scripts/deps/models.sh)",
                models.join(f).display()
            )
        });
    }
    // `sl-info capture.slv` reads what the cookbook's recording line writes
    let slv = Command::new(bin("sl-test"))
        .args(["--fast", "-n", "10", "-s", "320x240"])
        .output()
        .unwrap();
    assert!(slv.status.success());
    std::fs::write(dir.join("capture.slv"), slv.stdout).unwrap();
}

#[test]
fn every_documented_pipeline_runs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = scratch_dir("docs-pipelines");
    prepare(&dir);
    let x = Xvfb::start(1280, 720);
    let path = format!(
        "{}:{}",
        bin("sl-test").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let lines = doc_lines(repo);
    let mut skips_used = [false; SKIPS.len()];
    let mut failures = Vec::new();
    let mut ran = 0;
    for line in &lines {
        if let Some(i) = SKIPS.iter().position(|(part, _)| line.text.contains(part)) {
            skips_used[i] = true;
            continue;
        }
        let cmd = rewrite(&line.text);
        for out in ["out", "report.json"] {
            let _ = std::fs::remove_dir_all(dir.join(out));
            let _ = std::fs::remove_file(dir.join(out));
        }
        // every stage's exit status, and stdout (a report) when the last stage writes one
        // a line that redirects stdout itself keeps its redirection
        let last_part = cmd.rsplit('|').next().unwrap();
        let out = if last_part.contains('>') {
            ""
        } else {
            " > last.out"
        };
        let _ = std::fs::remove_file(dir.join("last.out"));
        let script = format!(
            "set -o pipefail\n{cmd}{out} 2> last.err\nst=(\"${{PIPESTATUS[@]}}\")\necho \"${{st[*]}}\" > status\nwait\n"
        );
        let status = Command::new("timeout")
            .args(["-s", "KILL", "180", "bash", "-c", &script])
            .current_dir(&dir)
            .env("PATH", &path)
            .env("DISPLAY", &x.display)
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("XDG_SESSION_TYPE")
            .stdin(Stdio::null())
            .status()
            .unwrap();
        ran += 1;
        let codes = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let err = std::fs::read_to_string(dir.join("last.err")).unwrap_or_default();
        let report = std::fs::read_to_string(dir.join("last.out")).unwrap_or_default();
        let all_zero = !codes.trim().is_empty() && codes.split_whitespace().all(|c| c == "0");
        if !status.success() || !all_zero {
            failures.push(format!(
                "`{}` ({}), run as `{cmd}`: exit codes [{}]\n{err}",
                line.text,
                line.from,
                codes.trim()
            ));
            continue;
        }
        // frames where frames are expected
        let last = cmd.rsplit(" | ").next().unwrap().trim();
        let problem = if last.starts_with("sl-info") && !last.contains("--pass") {
            (!report.contains("frames") || report.contains(" 0 frames"))
                .then(|| format!("the report has no frames:\n{report}"))
        } else if let Some(o) = last.split("-o ").nth(1) {
            let file = o.split_whitespace().next().unwrap();
            let size = std::fs::metadata(dir.join(file))
                .map(|m| m.len())
                .unwrap_or(0);
            (file != "-" && size == 0).then(|| format!("{file} is empty or missing"))
        } else if last.starts_with("sl-hls") {
            (!dir.join("out").join("index.m3u8").exists()
                && !dir.join("out").join("master.m3u8").exists())
            .then(|| "out/ has no playlist".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!(
                "`{}` ({}), run as `{cmd}`: {p}",
                line.text, line.from
            ));
        }
    }
    let stale: Vec<&str> = SKIPS
        .iter()
        .zip(skips_used)
        .filter(|(_, used)| !used)
        .map(|((part, _), _)| *part)
        .collect();
    assert!(
        stale.is_empty(),
        "skips that match no documented line any more: {stale:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} documented pipelines failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(ran > 25, "only {ran} pipelines found");
}
