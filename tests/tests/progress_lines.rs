//! Several stages' live progress lines on one terminal (issue 12 item 20): each stage gets a
//! row of its own, no row ever holds two stages' text, and each final stats line replaces
//! its stage's live line. The pipeline runs under `script`, so the stages' stderr is a real
//! pty, and what they wrote is replayed through a small terminal model.

use std::process::{Command, Stdio};

use sl_e2e::{bin, require};

/// The screen a VT100-like terminal would show for `bytes`, checked as it goes: returns
/// (the final rows, the most stages whose live lines were on the screen at once).
fn replay(bytes: &[u8], labels: &[&str]) -> (Vec<String>, usize) {
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut most_live = 0;
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars().peekable();
    let check = |rows: &Vec<Vec<char>>, most: &mut usize| {
        let mut live = 0;
        for r in rows {
            let s: String = r.iter().collect();
            let n = labels
                .iter()
                .filter(|l| s.contains(&format!("{l}: ")))
                .count();
            assert!(n <= 1, "two stages' text on one row: {s:?}");
            live += (n == 1 && s.contains("frame=")) as usize;
        }
        *most = (*most).max(live);
    };
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                row += 1;
                col = 0;
            }
            '\r' => {
                col = 0;
                check(&rows, &mut most_live);
            }
            '\x1b' => {
                if chars.peek() != Some(&'[') {
                    chars.next();
                    continue;
                }
                chars.next();
                let mut arg = String::new();
                let mut fin = ' ';
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        fin = c;
                        break;
                    }
                    arg.push(c);
                }
                let n: usize = arg.parse().unwrap_or(1);
                match fin {
                    'A' => row = row.saturating_sub(n),
                    'B' => row += n,
                    'K' if arg == "2" => rows.get_mut(row).map(Vec::clear).unwrap_or(()),
                    'K' => {
                        if let Some(r) = rows.get_mut(row) {
                            r.truncate(col)
                        }
                    }
                    _ => {}
                }
            }
            c if !c.is_control() => {
                while rows.len() <= row {
                    rows.push(Vec::new());
                }
                let r = &mut rows[row];
                while r.len() < col {
                    r.push(' ');
                }
                if col < r.len() {
                    r[col] = c;
                } else {
                    r.push(c);
                }
                col += 1;
            }
            _ => {}
        }
        while rows.len() <= row {
            rows.push(Vec::new());
        }
    }
    check(&rows, &mut most_live);
    let rows = rows
        .into_iter()
        .map(|r| r.into_iter().collect::<String>().trim_end().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    (rows, most_live)
}

#[test]
fn several_stages_on_one_terminal_each_keep_a_line_of_their_own() {
    require("script");
    let circle = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/circle.rhai");
    // three live meters for about 3 s of real time (a line every 0.5 s each)
    let pipeline = format!(
        "{} -s 64x48 -t 3s --progress | {} {} --progress | {} -f i420 --progress > /dev/null",
        bin("sl-test").display(),
        bin("sl-draw").display(),
        circle.display(),
        bin("sl-convert").display(),
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &pipeline, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux; scripts/setup.sh installs it)");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the pipeline failed under script:\n{shown}"
    );
    let labels = ["sl-test", "sl-draw", "sl-convert"];
    let (rows, most_live) = replay(&out.stdout, &labels);
    assert_eq!(
        most_live, 3,
        "the three live lines were never on the screen together: {shown:?}"
    );
    // at the end: one final stats line per stage, where its live line was
    let finals: Vec<&String> = rows
        .iter()
        .filter(|r| labels.iter().any(|l| r.starts_with(&format!("{l}: "))))
        .collect();
    assert_eq!(finals.len(), 3, "rows at the end: {rows:#?}");
    for l in labels {
        assert!(
            finals
                .iter()
                .any(|r| r.starts_with(&format!("{l}: ")) && r.contains(" frames in ")),
            "no final line for {l}: {rows:#?}"
        );
    }
}
