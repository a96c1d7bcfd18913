//! Embeds anklume's Ansible content (`ansible/`: the playbook, its
//! configuration, plugins and roles; not its tests) in the binary, so an
//! installed anklume needs no source tree: `src/ansible_content.rs` writes
//! it out to a cache directory when it is first needed.

use std::path::{Path, PathBuf};

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
        .unwrap_or_else(|e| panic!("{}: {e}", root.join(rel).display()))
        .map(|e| e.expect("directory entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        // Runtime leftovers of Python and editors are not content.
        if name == "__pycache__"
            || name.ends_with(".pyc")
            || name.starts_with(".#")
            || name.ends_with('~')
        {
            continue;
        }
        let path = rel.join(&*name);
        let ty = e.file_type().expect("file type");
        if ty.is_dir() {
            if path == Path::new("tests") {
                continue;
            }
            walk(root, &path, out);
        } else if ty.is_file() {
            out.push(path);
        } else {
            panic!(
                "ansible/{}: only regular files and directories may be shipped",
                path.display()
            );
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible");
    println!("cargo:rerun-if-changed=ansible");
    let mut files = Vec::new();
    walk(&root, Path::new(""), &mut files);
    let mut code = String::from("/// anklume's Ansible content: (path, bytes, executable).\npub static FILES: &[(&str, &[u8], bool)] = &[\n");
    for f in &files {
        let full = root.join(f);
        let exec = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&full)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o111
                != 0
        };
        code.push_str(&format!(
            "    ({:?}, include_bytes!({:?}), {exec}),\n",
            f.to_str().expect("UTF-8 path"),
            full.to_str().expect("UTF-8 path")
        ));
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("ansible_content.rs");
    std::fs::write(out, code).expect("write the embedded file list");
}
