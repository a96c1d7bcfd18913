//! The `anklume` command line.
fn main() {}
