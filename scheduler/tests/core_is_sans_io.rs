//! Architecture invariant: `scheduler/src/core` never imports tokio, zeromq
//! or sled. The core decides; the service shell does the IO.
use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 3] = ["tokio", "zeromq", "sled"];

/// The forbidden crates that `source` names as a path or an import,
/// comments aside.
fn forbidden_uses(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).collect();
        for word in words {
            let word = word.trim_start_matches("::");
            for name in FORBIDDEN {
                let as_path = word.starts_with(&format!("{name}::"));
                let trimmed = code.trim_start();
                let import_line = trimmed.starts_with("use ")
                    || trimmed.starts_with("pub use ")
                    || trimmed.starts_with("extern crate ");
                let as_import = word == name && import_line;
                if as_path || as_import {
                    found.push(format!("line {}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_imports_no_io_crate() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    rust_files(&core, &mut files);
    assert!(files.len() >= 5, "expected the core's modules under {}", core.display());
    let mut offences = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("readable source");
        for hit in forbidden_uses(&source) {
            offences.push(format!("{}: {hit}", file.display()));
        }
    }
    assert!(offences.is_empty(), "the core must stay sans-IO:\n{}", offences.join("\n"));
}

#[test]
fn the_check_catches_imports_and_paths_but_not_comments() {
    assert_eq!(forbidden_uses("use tokio::sync::mpsc;").len(), 1);
    assert_eq!(forbidden_uses("let db = sled::open(p);").len(), 1);
    assert_eq!(forbidden_uses("    zeromq::RouterSocket::new()").len(), 1);
    assert_eq!(forbidden_uses("use {tokio, serde};\nextern crate sled;").len(), 2);
    assert!(forbidden_uses("// the service uses tokio::select!").is_empty());
    assert!(forbidden_uses("let tokio_like = 1; // no").is_empty());
}
