//! Each desktop stage pulls only its own heavy dependency: xcap (Wayland, PipeWire, EGL, GBM
//! and XCB build dependencies, ~230 crates) must stay out of sl-show and sl-cam, and so on.
//! Checked on cargo's resolved dependency graph (normal dependencies, transitively).

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// The names of every package `root` depends on at run time (transitively, normal deps).
fn runtime_deps(meta: &Value, root: &str) -> BTreeSet<String> {
    let packages: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root_id = packages
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("{root} is not in the workspace"));
    let mut seen = BTreeSet::new();
    let mut todo = vec![root_id];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(packages[pkg].to_string()) {
                todo.push(pkg);
            }
        }
    }
    seen
}

/// The triple this test was built for, as rustc names it (`x86_64-unknown-linux-gnu`).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
}

#[test]
fn each_desktop_stage_has_only_its_own_heavy_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this platform's graph: a plain `--offline` resolve wants the crates other platforms
    // use (anstyle-wincon, windows-sys...), which a new machine's build never downloaded.
    let host = host_triple();
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let heavy = ["minifb", "xcap", "nokhwa"];
    for (stage, own) in [
        ("sl-show", "minifb"),
        ("sl-screen", "xcap"),
        ("sl-cam", "nokhwa"),
    ] {
        let deps = runtime_deps(&meta, stage);
        assert!(deps.contains(own), "{stage} should use {own}");
        for other in heavy.iter().filter(|h| **h != own) {
            assert!(
                !deps.contains(*other),
                "{stage} pulls {other}, which belongs to another stage"
            );
        }
        if stage != "sl-screen" {
            // xcap's system-library bindings
            for sys in ["pipewire", "wayland-client", "xcb"] {
                assert!(!deps.contains(sys), "{stage} pulls {sys}");
            }
        }
    }
}
