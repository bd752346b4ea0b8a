//! Compiles templates/locales/*.toml into static tables, so no TOML parser runs (or ships) at
//! run time, and a broken locale file fails the build instead of a page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

const LOCALES: [&str; 3] = ["en", "sv", "da"];

fn main() {
    // Read when the script runs, not baked in when it was built: a script built for one checkout
    // must not read another's locale files.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../templates/locales");
    let mut out = String::from("pub static LOCALE_STRINGS: &[(&str, &[(&str, &str)])] = &[\n");
    for code in LOCALES {
        let path = dir.join(format!("{code}.toml"));
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let table: BTreeMap<String, String> =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{} must be a flat table of strings: {e}", path.display()));
        let _ = writeln!(out, "    ({code:?}, &[");
        for (key, value) in &table {
            let _ = writeln!(out, "        ({key:?}, {value:?}),");
        }
        out.push_str("    ]),\n");
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("locales.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}
