//! Fetches the browser's Socket.IO client (`socket.io-client`, pinned in
//! `package.json` / `package-lock.json`) when the crate is built for the
//! browser. `src/ui/io.rs` binds its ES module with wasm-bindgen, which copies
//! it next to the site's WASM: the server serves it, no CDN is involved.

use std::path::Path;
use std::process::Command;

const CLIENT: &str = "node_modules/socket.io-client/dist/socket.io.esm.min.js";

fn main() {
    println!("cargo:rerun-if-changed=package-lock.json");
    println!("cargo:rerun-if-changed={CLIENT}");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("wasm32") {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    if Path::new(&dir).join(CLIENT).is_file() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(&dir)
        .status();
    match status {
        Ok(s) if s.success() && Path::new(&dir).join(CLIENT).is_file() => {}
        Ok(s) => panic!("`npm ci` in {dir} failed ({s}); the browser build needs socket.io-client"),
        Err(e) => panic!(
            "cannot run npm ({e}); the browser build needs Node.js and npm to fetch socket.io-client"
        ),
    }
}
