//! sl-composite as a user meets it: real binaries, inputs from sl-test, stream files written
//! here (frames of known colours and boxes), and FIFOs this test writes at the moments it
//! chooses. Pixel checks use `--sync pts` with file inputs (every layer's frame of each time
//! is waited for, so they are deterministic); the live behaviours (stalls, late layers,
//! scene switches) use the default `--sync latest` and the control socket's replies (`ok
//! frame N`) as the readiness signal: no test sleeps and hopes.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sl_e2e::{Outcome, Pipeline, bin, scratch_dir};
use sl_frame::{BBox, ColorInfo, PixelFormat, Rational, Value, VideoFrame, convert};
use sl_wire::{Message, StreamInfo, Writer};

/// A stream file of `frames` (all the same format and size), at 30 fps.
fn write_stream(path: &Path, frames: &[VideoFrame]) {
    let mut w = Writer::new(File::create(path).unwrap()).unwrap();
    put_frames(&mut w, frames, 0);
    w.finish().unwrap();
}

fn put_frames<W: Write>(w: &mut Writer<W>, frames: &[VideoFrame], first_pts: i64) {
    let f0 = &frames[0];
    if first_pts == 0 {
        let info =
            StreamInfo::raw_video(f0.format(), f0.width(), f0.height(), Rational::new(30, 1));
        w.write_stream_info(0, &info).unwrap();
    }
    for (i, f) in frames.iter().enumerate() {
        let mut f = f.clone();
        f.info.frame_number = (first_pts + i as i64) as u64;
        f.info.pts = first_pts + i as i64;
        f.info.time_base = Rational::new(1, 30);
        w.write_video(0, &f).unwrap();
    }
    w.flush().unwrap();
}

fn solid(w: u32, h: u32, rgba: [u8; 4]) -> VideoFrame {
    let mut f = VideoFrame::new(PixelFormat::Rgba, w, h).unwrap();
    for p in f.data_mut().chunks_exact_mut(4) {
        p.copy_from_slice(&rgba);
    }
    f
}

fn px(f: &VideoFrame, x: usize, y: usize) -> [u8; 4] {
    let r = f.row(0, y);
    [r[x * 4], r[x * 4 + 1], r[x * 4 + 2], r[x * 4 + 3]]
}

/// `sl-composite ARGS` with nothing on stdin.
fn composite(args: &[&str]) -> Outcome {
    Pipeline::new()
        .sl("sl-composite", args)
        .timeout(Duration::from_secs(30))
        .run()
}

fn assert_close(got: [u8; 4], want: [f64; 3], tol: f64, what: &str) {
    for c in 0..3 {
        assert!(
            (got[c] as f64 - want[c]).abs() <= tol,
            "{what}: got {got:?}, exact {want:?} (channel {c} off by more than {tol})"
        );
    }
}

const BG: [u8; 4] = [32, 64, 96, 255];

/// The exact straight-alpha `over` of `s` (alpha × opacity) on `d`.
fn over(d: [u8; 4], s: [u8; 4], opacity: f64) -> [f64; 3] {
    let a = s[3] as f64 / 255.0 * opacity;
    std::array::from_fn(|c| s[c] as f64 * a + d[c] as f64 * (1.0 - a))
}

#[test]
fn known_colours_at_known_positions_and_opacities_within_one() {
    let dir = scratch_dir("composite-colours");
    let main = dir.join("main.slv");
    write_stream(&main, &vec![solid(320, 240, BG); 3]);
    let red = [255, 0, 0, 128];
    let green = [0, 255, 0, 255];
    let blue = [0, 0, 255, 204];
    let white = [255, 255, 255, 255];
    for (name, c) in [
        ("red", red),
        ("green", green),
        ("blue", blue),
        ("white", white),
    ] {
        write_stream(&dir.join(format!("{name}.slv")), &[solid(40, 40, c)]);
    }
    let input = |n: &str| format!("{n}={}", dir.join(format!("{n}.slv")).display());
    let main_arg = format!("main={}", main.display());
    let (r, g, b, w) = (input("red"), input("green"), input("blue"), input("white"));
    let layers = [
        "--layer",
        "red:x=10,y=10",
        "--layer",
        "green:x=60,y=10,opacity=0.25",
        "--layer",
        "blue:x=110,y=10,opacity=0.5",
        "--layer",
        "white:x=160,y=10,opacity=0.6,blend=multiply",
    ];
    let mut args = vec![
        main_arg.as_str(),
        &r,
        &g,
        &b,
        &w,
        "--sync",
        "pts",
        "--latency",
        "20s",
    ];
    args.extend(layers);
    let expect = [
        ((20, 20), over(BG, red, 1.0)),
        ((70, 20), over(BG, green, 0.25)),
        ((120, 20), over(BG, blue, 0.5)),
        // multiply by white changes nothing
        ((170, 20), [32.0, 64.0, 96.0]),
        ((5, 5), [32.0, 64.0, 96.0]),
        ((49, 49), over(BG, red, 1.0)),
        ((50, 50), [32.0, 64.0, 96.0]),
    ];
    // RGBA canvas
    let out = composite(&args);
    out.assert_success();
    let frames = out.frames();
    assert_eq!(
        frames.len(),
        3,
        "one output frame per main frame under --sync pts"
    );
    for f in &frames {
        for ((x, y), want) in expect {
            assert_close(px(f, x, y), want, 1.0, &format!("rgba at ({x},{y})"));
        }
    }
    // the same on an I420 canvas: the layers go straight into Y, U and V; compare with the
    // exact blend of the two colours' YUV values
    let mut args_yuv = args.clone();
    args_yuv.extend(["-f", "i420"]);
    let out = composite(&args_yuv);
    out.assert_success();
    let f = &out.frames()[2];
    assert_eq!(f.format(), PixelFormat::I420);
    let yuv =
        |c: [u8; 4]| convert::rgb_to_yuv(ColorInfo::BT601_LIMITED, c[0], c[1], c[2]).map(f64::from);
    for ((x, y), (layer, opacity)) in [
        ((20, 20), (red, 1.0)),
        ((70, 20), (green, 0.25)),
        ((120, 20), (blue, 0.5)),
    ] {
        let a = layer[3] as f64 / 255.0 * opacity;
        let (bg, fg) = (yuv(BG), yuv(layer));
        let want: [f64; 3] = std::array::from_fn(|c| fg[c] * a + bg[c] * (1.0 - a));
        let got = [
            f.row(0, y)[x],
            f.row(1, y / 2)[x / 2],
            f.row(2, y / 2)[x / 2],
            0,
        ];
        assert_close(got, want, 1.0, &format!("i420 at ({x},{y})"));
    }
    // add: saturates
    let out = composite(&[
        &main_arg,
        &w,
        "--sync",
        "pts",
        "--latency",
        "20s",
        "--layer",
        "white:blend=add,opacity=0.5",
    ]);
    out.assert_success();
    assert_close(
        px(&out.frames()[0], 5, 5),
        [32.0 + 127.5, 64.0 + 127.5, 96.0 + 127.5],
        1.0,
        "add",
    );
}

#[test]
fn z_order_crop_and_scale() {
    let dir = scratch_dir("composite-zcrop");
    let main = dir.join("main.slv");
    write_stream(&main, &[solid(320, 240, BG)]);
    // 40x20: left half red, right half blue
    let mut two = solid(40, 20, [255, 0, 0, 255]);
    for y in 0..20 {
        for p in two.row_mut(0, y)[80..].chunks_exact_mut(4) {
            p.copy_from_slice(&[0, 0, 255, 255]);
        }
    }
    write_stream(&dir.join("two.slv"), &[two]);
    write_stream(&dir.join("green.slv"), &[solid(40, 40, [0, 255, 0, 255])]);
    let m = format!("main={}", main.display());
    let two = format!("two={}", dir.join("two.slv").display());
    let green = format!("green={}", dir.join("green.slv").display());
    let sync = ["--sync", "pts", "--latency", "20s"];
    // scaled to w=80 (aspect kept: 80x40) at (100, 100)
    let mut a = vec![m.as_str(), &two];
    a.extend(sync);
    a.extend(["--layer", "two:x=100,y=100,w=80"]);
    let out = composite(&a);
    out.assert_success();
    let f = &out.frames()[0];
    assert_eq!(px(f, 110, 110)[..3], [255, 0, 0]);
    assert_eq!(px(f, 170, 135)[..3], [0, 0, 255]);
    assert_eq!(
        px(f, 150, 145)[..3],
        BG[..3],
        "aspect kept: 40 rows, not more"
    );
    // cropped to the blue half, stretched to 60x30
    let mut a = vec![m.as_str(), &two];
    a.extend(sync);
    a.extend([
        "--layer",
        "two:crop=20x20+20+0,x=0,y=0,w=60,h=30,fit=stretch",
    ]);
    let out = composite(&a);
    out.assert_success();
    let f = &out.frames()[0];
    for (x, y) in [(1, 1), (58, 28), (30, 15)] {
        assert_eq!(
            px(f, x, y)[..3],
            [0, 0, 255],
            "the crop shows only blue at ({x},{y})"
        );
    }
    assert_eq!(px(f, 61, 10)[..3], BG[..3]);
    // z: green over two where they overlap, then the other way round
    for (z, top) in [("green:z=5", [0, 255, 0]), ("two:z=5", [255, 0, 0])] {
        let mut a = vec![m.as_str(), &two, &green];
        a.extend(sync);
        a.extend(["--layer", z]);
        let out = composite(&a);
        out.assert_success();
        assert_eq!(px(&out.frames()[0], 5, 5)[..3], top, "--layer {z}");
    }
}

#[test]
fn boxes_are_mapped_into_canvas_coordinates() {
    let dir = scratch_dir("composite-boxes");
    let mut main = solid(320, 240, BG);
    main.info.metadata.insert(
        "detections",
        vec![BBox {
            x: 1.0,
            y: 2.0,
            w: 3.0,
            h: 4.0,
            score: 0.5,
            class_id: 0,
            label: "cat".into(),
        }],
    );
    write_stream(&dir.join("main.slv"), &[main]);
    let mut cam = solid(100, 50, [0, 0, 0, 255]);
    cam.info.metadata.insert(
        "detections",
        vec![
            BBox {
                x: 10.0,
                y: 10.0,
                w: 20.0,
                h: 10.0,
                score: 0.9,
                class_id: 1,
                label: "face".into(),
            },
            // outside the crop: dropped
            BBox {
                x: 90.0,
                y: 40.0,
                w: 5.0,
                h: 5.0,
                score: 0.9,
                class_id: 1,
                label: "gone".into(),
            },
        ],
    );
    cam.info.metadata.insert("camera", "left");
    write_stream(&dir.join("cam.slv"), &[cam]);
    let out = composite(&[
        &format!("main={}", dir.join("main.slv").display()),
        &format!("cam={}", dir.join("cam.slv").display()),
        "--sync",
        "pts",
        "--latency",
        "20s",
        "--layer",
        "cam:x=100,y=50,crop=80x40+0+0,w=160",
    ]);
    out.assert_success();
    let f = &out.frames()[0];
    let md = &f.info.metadata;
    let Some(Value::Boxes(all)) = md.get("detections") else {
        panic!("no detections: {md:?}")
    };
    let face = all
        .iter()
        .find(|b| b.label == "face")
        .expect("the face box");
    assert_eq!((face.x, face.y, face.w, face.h), (120.0, 70.0, 40.0, 20.0));
    assert_eq!((face.score, face.class_id), (0.9, 1));
    assert!(
        all.iter()
            .any(|b| b.label == "cat" && (b.x, b.y, b.w, b.h) == (1.0, 2.0, 3.0, 4.0))
    );
    assert!(
        !all.iter().any(|b| b.label == "gone"),
        "a box cropped away is dropped"
    );
    let Some(Value::Boxes(cam_boxes)) = md.get("cam.detections") else {
        panic!("no cam.detections: {md:?}")
    };
    assert_eq!(cam_boxes.len(), 1);
    assert_eq!(md.get("cam.camera"), Some(&Value::Str("left".into())));
}

#[test]
fn pts_sync_shows_each_layers_frame_of_the_same_time_and_audio_passes() {
    let dir = scratch_dir("composite-pts");
    // main: 10 frames with a tone; the layer's frame i is grey level 20*i, from pts 4 on
    let main = dir.join("main.slv");
    let made = Command::new(bin("sl-test"))
        .args([
            "--fast", "-n", "10", "-s", "64x48", "-p", "solid", "--tone", "440",
        ])
        .stdout(File::create(&main).unwrap())
        .status()
        .unwrap();
    assert!(made.success());
    let layer: Vec<VideoFrame> = (4..10)
        .map(|i| solid(16, 16, [20 * i as u8, 20 * i as u8, 20 * i as u8, 255]))
        .collect();
    let mut w = Writer::new(File::create(dir.join("cam.slv")).unwrap()).unwrap();
    let info = StreamInfo::raw_video(PixelFormat::Rgba, 16, 16, Rational::new(30, 1));
    w.write_stream_info(0, &info).unwrap();
    put_frames(&mut w, &layer, 4);
    w.finish().unwrap();
    let out = composite(&[
        &format!("main={}", main.display()),
        &format!("cam={}", dir.join("cam.slv").display()),
        "--sync",
        "pts",
        "--latency",
        "20s",
    ]);
    out.assert_success();
    let messages = out.messages();
    let frames = sl_e2e::video_frames(&messages);
    assert_eq!(frames.len(), 10);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.info.pts, i as i64);
        let p = px(f, 5, 5);
        if i < 4 {
            assert_eq!(
                p[..3],
                [0, 0, 0],
                "frame {i}: the layer has no frame of this time yet"
            );
        } else {
            let v = 20 * i as u8;
            assert_eq!(
                p[..3],
                [v, v, v],
                "frame {i} shows the layer's frame of pts {i}"
            );
        }
    }
    let audio = messages
        .iter()
        .filter(|m| matches!(m, Message::Audio { .. }))
        .count();
    assert_eq!(
        audio, 10,
        "the main input's audio passes through, one chunk per frame"
    );
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, Message::Stream { info, .. } if info.audio().is_some()))
    );
}

#[test]
fn ptp_sync_aligns_by_ptp_time_not_by_timestamps() {
    let dir = scratch_dir("composite-ptp");
    let t0: i64 = 1_800_000_000_000_000_000;
    let frame_ns = 1_000_000_000 / 30;
    // the camera started 3 frames after the main input: its frame j was taken at the main's
    // frame j + 3, though both count their timestamps from 0
    let stamped = |n: usize, grey: &dyn Fn(usize) -> u8, offset: i64| -> Vec<VideoFrame> {
        (0..n)
            .map(|j| {
                let g = grey(j);
                let mut f = solid(16, 16, [g, g, g, 255]);
                f.info.ptp_time_ns = Some(t0 + (j as i64 + offset) * frame_ns);
                f
            })
            .collect()
    };
    write_stream(&dir.join("main.slv"), &stamped(10, &|_| 0, 0));
    write_stream(
        &dir.join("cam.slv"),
        &stamped(7, &|j| 20 * (j as u8 + 1), 3),
    );
    let run = |sync: &str| {
        let out = composite(&[
            &format!("main={}", dir.join("main.slv").display()),
            &format!("cam={}", dir.join("cam.slv").display()),
            "--sync",
            sync,
            "--latency",
            "20s",
            "-s",
            "32x32",
        ]);
        out.assert_success();
        out.frames()
    };
    let frames = run("ptp");
    assert_eq!(frames.len(), 10);
    for (i, f) in frames.iter().enumerate() {
        let want = if i < 3 { 0 } else { 20 * (i as u8 - 2) };
        assert_eq!(
            px(f, 5, 5)[0],
            want,
            "ptp: output frame {i} shows the camera's frame taken with it"
        );
        assert_eq!(
            f.info.ptp_time_ns,
            Some(t0 + i as i64 * frame_ns),
            "the main frame's PTP time"
        );
    }
    // by timestamps the same files line up differently: frame i shows the camera's frame i
    let frames = run("pts");
    assert_eq!(px(&frames[0], 5, 5)[0], 20);
    assert_eq!(px(&frames[5], 5, 5)[0], 120);
}

/// A FIFO at `path`.
fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Connect to the control socket once it is there (the stage creates it before reading).
fn connect(path: &Path) -> (UnixStream, BufReader<UnixStream>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            let r = BufReader::new(s.try_clone().unwrap());
            return (s, r);
        }
        assert!(
            Instant::now() < deadline,
            "no control socket at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Send one batch and read the reply line.
fn ask(conn: &mut (UnixStream, BufReader<UnixStream>), batch: &str) -> String {
    conn.0.write_all(batch.as_bytes()).unwrap();
    conn.0.write_all(b"\n").unwrap();
    let mut line = String::new();
    conn.1.read_line(&mut line).unwrap();
    line.trim().to_string()
}

/// `ok frame N` -> N.
fn frame_of(reply: &str) -> u64 {
    reply
        .strip_prefix("ok frame ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an ok reply: {reply}"))
}

/// A bash pipeline running sl-composite with a paced sl-test main input of `frames`.
fn live(main_frames: u32, args: &str) -> sl_e2e::Running {
    let script = format!(
        "{} -s 320x240 -p solid --color '#204060' -n {main_frames} | {} main=- {args}",
        bin("sl-test").display(),
        bin("sl-composite").display()
    );
    Pipeline::new()
        .cmd("bash", &["-c", &script])
        .timeout(Duration::from_secs(30))
        .spawn()
}

#[test]
fn scene_switches_and_batches_apply_whole_at_a_frame_boundary() {
    let dir = scratch_dir("composite-scenes");
    write_stream(&dir.join("a.slv"), &[solid(40, 40, [255, 0, 0, 255])]);
    write_stream(&dir.join("b.slv"), &[solid(40, 40, [0, 255, 0, 255])]);
    let layout = dir.join("pip.toml");
    std::fs::write(
        &layout,
        "[layers.a]\nx = 0\n[layers.b]\nx = 100\n\
         [scenes.left]\na = { x = 0 }\nb = { x = 100 }\n\
         [scenes.right]\na = { x = 100 }\nb = { x = 0 }\n",
    )
    .unwrap();
    let sock = dir.join("ctl.sock");
    let run = live(
        150,
        &format!(
            "a={} b={} --layout {} --scene left --control {}",
            dir.join("a.slv").display(),
            dir.join("b.slv").display(),
            layout.display(),
            sock.display()
        ),
    );
    let mut c = connect(&sock);
    // a malformed command, an unknown layer and an unknown scene: errors, nothing applied
    let bad = ask(&mut c, "set a:x=5; set nosuch:x=1");
    assert!(
        bad.starts_with("error:") && bad.contains("no layer is named nosuch"),
        "{bad}"
    );
    let bad = ask(&mut c, "scene nowhere");
    assert!(bad.contains("no scene is named nowhere"), "{bad}");
    let bad = ask(&mut c, "set a:opacity=7");
    assert!(bad.contains("opacity"), "{bad}");
    let bad = ask(&mut c, "jump a");
    assert!(bad.contains("not a command"), "{bad}");
    // the switch, at a stream time: exactly frame 60 at 30 fps (2 s leaves a slow machine
    // time to start and answer the commands above first)
    let n1 = frame_of(&ask(&mut c, "at 2s; scene right"));
    assert_eq!(n1, 60);
    // a transaction of two lines
    for l in ["begin", "set a:x=200", "set b:x=250"] {
        c.0.write_all(format!("{l}\n").as_bytes()).unwrap();
    }
    let n2 = frame_of(&ask(&mut c, "commit"));
    assert!(n2 >= n1);
    // animations: a fades out over 1 s (30 frames), b moves to x=0 over 500 ms (15 frames)
    let n3 = frame_of(&ask(
        &mut c,
        "set a:opacity=0 over 1s; set b:x=0 over 500ms",
    ));
    assert!(n3 >= n2);
    drop(c);
    let out = run.wait();
    out.assert_success();
    let frames = out.frames();
    assert!(frames.len() as u64 > n3 + 31, "{} frames", frames.len());
    let red = [255, 0, 0];
    let green = [0, 255, 0];
    let at = |f: &VideoFrame, x: usize| px(f, x + 5, 5)[..3].to_vec();
    let bg = BG[..3].to_vec();
    let (red, green) = (red.to_vec(), green.to_vec());
    let mut whole_left = false;
    let mut main_seen = false;
    let black = vec![0u8, 0, 0];
    for (i, f) in frames.iter().enumerate() {
        let i = i as u64;
        let (p0, p100, p200, p250) = (at(f, 0), at(f, 100), at(f, 200), at(f, 250));
        if i < n1 {
            // the main input's background from its first frame on; before it (a busy machine
            // can be slower to start sl-test than to read the layers' files) the canvas is black
            main_seen |= p200 == bg;
            let empty = if main_seen { &bg } else { &black };
            assert_eq!(&p200, empty, "frame {i}");
            // before the switch: scene left, its layers there as soon as their inputs came
            assert!(
                p0 == red || &p0 == empty,
                "frame {i}: scene left at x=0: {p0:?}"
            );
            assert!(
                p100 == green || &p100 == empty,
                "frame {i}: scene left at x=100: {p100:?}"
            );
            whole_left |= p0 == red && p100 == green;
        } else if i < n2 {
            assert_eq!(
                (p0, p100),
                (green.clone(), red.clone()),
                "frame {i}: scene right, whole"
            );
        } else if i < n3 {
            assert_eq!(
                (p200, p250, p0.clone(), p100),
                (red.clone(), green.clone(), bg.clone(), bg.clone()),
                "frame {i}: the batch, whole"
            );
        }
    }
    assert!(whole_left, "scene left was shown");
    // the fade: halfway at 15 frames in (linear in stream time), gone at 30
    let f = |k: u64| &frames[(n3 + k) as usize];
    let half = px(f(15), 205, 5);
    assert!(
        (half[0] as f64 - (255.0 + 32.0) / 2.0).abs() <= 2.0,
        "a at half opacity: {half:?}"
    );
    assert_eq!(px(f(30), 205, 5)[..3], BG[..3], "a faded out");
    // the move: b (40 wide) from x=250 to 0; at 7 of 15 frames it is at x=133
    assert_eq!(px(f(7), 150, 5)[..3], green[..], "b on its way");
    assert_eq!(px(f(15), 20, 5)[..3], green[..], "b arrived");
    assert_eq!(px(f(15), 150, 5)[..3], BG[..3]);
    let err = &out.stages[0].stderr;
    assert!(
        err.contains("no layer is named nosuch"),
        "the error is on stderr too: {err}"
    );
}

/// Write `frames` into a FIFO as a stream (header, description, frames), keeping it open.
fn fifo_writer(path: &Path, frames: Vec<VideoFrame>) -> std::thread::JoinHandle<Writer<File>> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // blocks until sl-composite opens it for reading
        let mut w = Writer::new(File::options().write(true).open(&path).unwrap()).unwrap();
        put_frames(&mut w, &frames, 0);
        w
    })
}

#[test]
fn a_stalled_input_does_not_slow_the_output_and_stale_policies_apply() {
    let dir = scratch_dir("composite-stall");
    let (hide, keep) = (dir.join("hide.fifo"), dir.join("keep.fifo"));
    mkfifo(&hide);
    mkfifo(&keep);
    // each writes one frame, then stays silent (open) for the rest of the run
    let w1 = fifo_writer(&hide, vec![solid(20, 20, [255, 0, 0, 255])]);
    let w2 = fifo_writer(&keep, vec![solid(20, 20, [0, 255, 0, 255])]);
    let run = live(
        60,
        &format!(
            "hide={} keep={} --layer hide:x=0,stale=hide --layer keep:x=100 --stale 300ms",
            hide.display(),
            keep.display()
        ),
    );
    let (w1, w2) = (w1.join().unwrap(), w2.join().unwrap());
    let out = run.wait();
    drop((w1, w2));
    out.assert_success();
    let frames = out.frames();
    // the output kept its own clock: one frame per 1/30 s of stream time, no gaps, about as
    // many as the main input's 60 (it ends with the main input)
    assert!(
        frames.len() >= 45,
        "only {} frames: the stalled inputs slowed the output",
        frames.len()
    );
    for (i, f) in frames.iter().enumerate() {
        assert_eq!((f.info.pts, f.info.frame_number), (i as i64, i as u64));
    }
    let shows = |f: &VideoFrame, x: usize, c: [u8; 3]| px(f, x + 5, 5)[..3] == c;
    assert!(
        frames.iter().any(|f| shows(f, 0, [255, 0, 0])),
        "the stale=hide layer showed its frame first"
    );
    let last = frames.last().unwrap();
    assert!(
        !shows(last, 0, [255, 0, 0]),
        "stale=hide: hidden after --stale"
    );
    assert!(
        shows(last, 100, [0, 255, 0]),
        "stale=keep: still its last frame"
    );
}

#[test]
fn a_late_layer_appears_and_end_policies_apply() {
    let dir = scratch_dir("composite-late");
    let (late, freeze, remove) = (
        dir.join("late.fifo"),
        dir.join("freeze.fifo"),
        dir.join("remove.fifo"),
    );
    for p in [&late, &freeze, &remove] {
        mkfifo(p);
    }
    let sock = dir.join("ctl.sock");
    let wf = fifo_writer(&freeze, vec![solid(20, 20, [255, 0, 0, 255])]);
    let wr = fifo_writer(&remove, vec![solid(20, 20, [0, 255, 0, 255])]);
    let run = live(
        120,
        &format!(
            "late={} freeze={} remove={} --layer late:x=200 --layer freeze:x=0 --layer remove:x=100,end=remove --control {}",
            late.display(),
            freeze.display(),
            remove.display(),
            sock.display()
        ),
    );
    let mut c = connect(&sock);
    // frame 30 is out: only now does the late input start
    let n_late = frame_of(&ask(&mut c, "at 1s; show late"));
    assert_eq!(n_late, 30);
    let lw = fifo_writer(&late, vec![solid(20, 20, [0, 0, 255, 255])]);
    // both policies' inputs end (with END) once frame 60 is out
    let n_end = frame_of(&ask(&mut c, "at 2s; show freeze"));
    for w in [wf, wr] {
        w.join().unwrap().finish().unwrap();
    }
    let _late_writer = lw.join().unwrap();
    drop(c);
    let out = run.wait();
    out.assert_success();
    let frames = out.frames();
    let shows = |f: &VideoFrame, x: usize, c: [u8; 3]| px(f, x + 5, 5)[..3] == c;
    for (i, f) in frames.iter().enumerate().take(n_late as usize) {
        assert!(
            !shows(f, 200, [0, 0, 255]),
            "frame {i}: the late layer before its input started"
        );
    }
    let first = frames
        .iter()
        .position(|f| shows(f, 200, [0, 0, 255]))
        .expect("the late layer appears");
    assert!(first as u64 >= n_late);
    assert!(
        frames.iter().any(|f| shows(f, 100, [0, 255, 0])),
        "end=remove showed while its input ran"
    );
    let last = frames.last().unwrap();
    assert!(frames.len() as u64 > n_end + 10);
    assert!(
        shows(last, 0, [255, 0, 0]),
        "end=freeze: the last frame stays"
    );
    assert!(
        !shows(last, 100, [0, 255, 0]),
        "end=remove: gone after its input ended"
    );
    assert!(shows(last, 200, [0, 0, 255]), "the late layer stays");
}

#[test]
fn ctrl_c_ends_the_output_cleanly_with_130() {
    let dir = scratch_dir("composite-int");
    let sock = dir.join("ctl.sock");
    let script = format!(
        "exec {} main=<({} -s 64x48) --control {}",
        bin("sl-composite").display(),
        bin("sl-test").display(),
        sock.display()
    );
    let run = Pipeline::new()
        .cmd("bash", &["-c", &script])
        .timeout(Duration::from_secs(30))
        .spawn();
    let mut c = connect(&sock);
    assert_eq!(frame_of(&ask(&mut c, "at 0.3s; show main")), 9);
    run.signal(0, "INT");
    let out = run.wait();
    assert_eq!(out.stages[0].code, Some(130), "{:?}", out.stages[0]);
    assert!(
        out.frames().len() >= 9,
        "a complete stream (with END) of the frames made"
    );
}

#[test]
fn bad_layouts_and_unknown_layers_are_usage_errors() {
    let dir = scratch_dir("composite-bad");
    write_stream(&dir.join("m.slv"), &[solid(16, 16, BG)]);
    let m = format!("main={}", dir.join("m.slv").display());
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[layers.main]\nopacity = 3\n").unwrap();
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[scenes.s.cam]\nx = 1\n").unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\"layers\": ").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![m.clone(), "--layout".into(), bad.display().to_string()],
            "opacity",
        ),
        (
            vec![m.clone(), "--layout".into(), unknown.display().to_string()],
            "names no input",
        ),
        (
            vec![m.clone(), "--layout".into(), broken.display().to_string()],
            "JSON",
        ),
        (
            vec![m.clone(), "--layer".into(), "cam:x=1".into()],
            "no input is named cam",
        ),
        (
            vec![m.clone(), "--layer".into(), "main:size=3".into()],
            "unknown property",
        ),
        (vec!["main=/nonexistent/x.slv".into()], "no such file"),
        (vec![m.clone(), m.clone()], "two inputs are named main"),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = composite(&a);
        let st = &out.stages[0];
        assert_eq!(st.code, Some(2), "{args:?}: {}", st.stderr);
        assert!(
            st.stderr.contains(want),
            "{args:?}: wanted {want:?} in: {}",
            st.stderr
        );
    }
}
