//! Rebuilds the platform when any file of the web app (`web/`) is added, removed or changed:
//! the files are embedded into the binary (src/web.rs), and the embedding macro alone does not
//! notice new files.

fn main() {
    println!("cargo:rerun-if-changed=web");
}
