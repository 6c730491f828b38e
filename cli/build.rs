//! Embeds the console's map data (console/dist/world.json, made by `make
//! console` with npm) when it has been built. Without it `cargo build` still
//! works: the console then draws no map and says how to get one.
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console");
    let world = dir.join("dist/world.json");
    // Cargo reruns a script that watches a missing path on every build (and
    // then rebuilds this crate): watch console/ until dist/ exists.
    let dist = dir.join("dist");
    let watched = if dist.is_dir() { dist } else { dir.clone() };
    println!("cargo:rerun-if-changed={}", watched.display());
    let code = if world.is_file() {
        format!(
            "pub(super) const WORLD: Option<&[u8]> = Some(include_bytes!({:?}));\n",
            world.canonicalize().expect("world.json exists")
        )
    } else {
        "pub(super) const WORLD: Option<&[u8]> = None;\n".to_string()
    };
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("world.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
