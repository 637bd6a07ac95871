//! Proof of the AMX tile-config fix at the machine-code level, on any x86-64 machine with GCC.
//!
//! The stock native build of this llama.cpp crashes on AMX CPUs with a general-protection fault
//! in `ggml_backend_amx_mul_mat`: GCC's `_tile_loadconfig` declares an 8-byte memory input for a
//! 64-byte configuration, so GCC drops the stores of `colsb[]`/`rows[]` before `ldtilecfg`.
//! llama-sys force-includes `amx-tilecfg-fix.h`. This test compiles upstream's
//! `ggml/src/ggml-cpu/amx/mmq.cpp` for Sapphire Rapids with the same compiler, disassembles it,
//! and checks that with the fix the configuration's `colsb[]` (bytes 16..48) and `rows[]`
//! (bytes 48..64) are stored before `ldtilecfg`. It also reports whether the stock build drops
//! them with this compiler. Running AMX code needs an AMX CPU; the greedy token test does that
//! where one is present (flavour `cpu-native-amx`).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::path::{Path, PathBuf};
use std::process::Command;

use llama_sys::build_info;

/// Which parts of the tile config are stored right before the first `ldtilecfg`:
/// (colsb stored, rows stored).
fn stores_before_ldtilecfg(object: &Path) -> (bool, bool) {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(object)
        .output()
        .expect("objdump runs (binutils)");
    assert!(
        out.status.success(),
        "objdump failed on {}",
        object.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("ldtilecfg"))
        .expect("mmq.cpp compiled for AMX contains ldtilecfg");
    // `ldtilecfg 0xc0(%rsp)`: the config's offset and base register.
    let operand = lines[at].split("ldtilecfg").nth(1).unwrap().trim();
    let (off, reg) = operand.split_once('(').expect("memory operand");
    let base = i64::from_str_radix(off.trim_start_matches("0x"), 16).unwrap_or(0);
    let reg = format!("({reg}");
    let (mut colsb, mut rows) = (false, false);
    // The stores that fill the config sit in the same basic block, a few instructions up.
    for l in lines[at.saturating_sub(24)..at].iter().rev() {
        if l.contains("ret") || l.trim_end().ends_with(':') {
            break;
        }
        let Some(dest) = l.rsplit(',').next() else {
            continue;
        };
        if !dest.ends_with(&reg) || !l.contains("mov") {
            continue;
        }
        let Ok(o) = i64::from_str_radix(
            dest.trim_end_matches(&reg).trim().trim_start_matches("0x"),
            16,
        ) else {
            continue;
        };
        match o - base {
            16..=47 => colsb = true,
            48..=63 => rows = true,
            _ => {}
        }
    }
    (colsb, rows)
}

fn compile(src: &Path, out: &Path, fix: Option<&Path>) {
    let mut cmd = Command::new(build_info::CXX);
    cmd.args([
        "-std=c++17",
        "-O3",
        "-march=sapphirerapids",
        "-DGGML_USE_CPU",
        "-w",
        "-c",
    ]);
    if let Some(h) = fix {
        cmd.arg("-include").arg(h);
    }
    for inc in ["ggml/include", "ggml/src", "ggml/src/ggml-cpu"] {
        cmd.arg(format!("-I{}", src.join(inc).display()));
    }
    cmd.arg(src.join("ggml/src/ggml-cpu/amx/mmq.cpp"))
        .arg("-o")
        .arg(out);
    let status = cmd
        .status()
        .expect("the C++ compiler that built llama.cpp runs");
    assert!(status.success(), "compiling mmq.cpp for AMX failed");
}

#[test]
fn amx_tile_config_is_stored_before_ldtilecfg() {
    let version = Command::new(build_info::CXX)
        .arg("--version")
        .output()
        .expect("C++ compiler runs");
    let version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        build_info::AMX_FIX,
        if version.contains("clang") {
            "off"
        } else {
            "on"
        },
        "the fix is applied exactly for GCC"
    );
    if version.contains("clang") {
        eprintln!(
            "{version}: clang models ldtilecfg's operand correctly; the fix header is not used"
        );
        return;
    }
    let src = PathBuf::from(build_info::SOURCE_DIR);
    let dir = std::env::temp_dir().join(format!("llama-sys-amx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fix = Path::new(env!("CARGO_MANIFEST_DIR")).join("amx-tilecfg-fix.h");

    let fixed = dir.join("mmq-fixed.o");
    compile(&src, &fixed, Some(&fix));
    let (colsb, rows) = stores_before_ldtilecfg(&fixed);

    let stock = dir.join("mmq-stock.o");
    compile(&src, &stock, None);
    let (stock_colsb, stock_rows) = stores_before_ldtilecfg(&stock);
    let _ = std::fs::remove_dir_all(&dir);

    eprintln!(
        "{version}\nstock build: colsb stored {stock_colsb}, rows stored {stock_rows}\nwith fix:    colsb stored {colsb}, rows stored {rows}"
    );
    assert!(
        colsb && rows,
        "with amx-tilecfg-fix.h the tile configuration must be fully stored before ldtilecfg"
    );
}
