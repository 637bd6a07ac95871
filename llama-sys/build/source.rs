//! Steps 2 and 3: the llama.cpp source tree (`LLAMA_CPP_DIR`, else `vendor/llama.cpp/`, else
//! the pinned crate that `cargo metadata` on `vendor/pin/` downloads), its sha256 verification
//! against `vendor/llama.cpp.sha256`, and the patched build copy made only when this machine
//! needs a patch.

use std::env;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::tools::Vulkan;
use crate::{Failure, Result, env_flag, env_path, fail, fail_with, hex, tail};

/// Where the llama.cpp source comes from.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// `vendor/llama.cpp/`, materialised by `scripts/vendor-llama-cpp`.
    Vendored,
    /// The `llama.cpp/` folder of the pinned crate in cargo's registry cache.
    CargoPin,
    /// `LLAMA_CPP_DIR`: a local checkout, used as is and never patched.
    Local,
}

/// The source tree CMake builds (or a build copy of it, see [`build_tree`]).
pub struct Source {
    pub kind: SourceKind,
    pub dir: PathBuf,
    /// `name version` of the pin, or `local <path>`.
    pub pin: String,
}

impl Source {
    /// Reruns the script when the tree's entry points change (it does not stat the whole tree).
    pub fn rerun_if_changed(&self) {
        println!(
            "cargo:rerun-if-changed={}",
            self.dir.join("include/llama.h").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            self.dir.join("CMakeLists.txt").display()
        );
    }
}

/// Finds the source tree: `LLAMA_CPP_DIR` (checked to be a llama.cpp tree, used as is), else the
/// vendored or pinned tree, verified against `vendor/llama.cpp.sha256`.
pub fn resolve(vendor: &Path) -> Result<Source> {
    if let Some(dir) = env_path("LLAMA_CPP_DIR") {
        let dir = dir.canonicalize().or_else(|e| {
            fail(format!("LLAMA_CPP_DIR={} does not exist ({e}): point it at a llama.cpp checkout, or unset it to use the pinned tree", dir.display()))
        })?;
        for f in [
            "CMakeLists.txt",
            "include/llama.h",
            "ggml/include/ggml.h",
            "ggml/CMakeLists.txt",
        ] {
            if !dir.join(f).is_file() {
                return fail(format!(
                    "LLAMA_CPP_DIR={} is not a llama.cpp source tree (no {f}): point it at the root of a llama.cpp \
                     checkout (the folder with CMakeLists.txt, include/ and ggml/), or unset it",
                    dir.display()
                ));
            }
        }
        let pin = format!("local {}", dir.display());
        return Ok(Source {
            kind: SourceKind::Local,
            dir,
            pin,
        });
    }

    let (want_sum, pin) = read_pin_sum(vendor)?;
    let vendored = vendor.join("llama.cpp");
    let (kind, dir) = if vendored.join("include/llama.h").is_file() {
        (SourceKind::Vendored, vendored)
    } else {
        let (crate_pin, dir) = locate_pinned_crate(vendor)?;
        if crate_pin != pin {
            return fail(format!(
                "vendor/llama.cpp.sha256 is for `{pin}` but vendor/pin/Cargo.toml pins `{crate_pin}`: \
                 run scripts/vendor-llama-cpp --update"
            ));
        }
        (SourceKind::CargoPin, dir)
    };
    let got = tree_sha256(&dir).map_err(|e| Failure {
        line: format!("cannot read the llama.cpp tree at {}: {e}", dir.display()),
        details: String::new(),
    })?;
    if got != want_sum {
        let fix = match kind {
            SourceKind::Vendored => {
                "run scripts/vendor-llama-cpp to materialise it again".to_string()
            }
            _ => format!(
                "delete {} and build again so that cargo downloads it afresh",
                dir.parent().unwrap_or(&dir).display()
            ),
        };
        return fail(format!(
            "checksum mismatch: the llama.cpp tree at {} hashes to {got}, but vendor/llama.cpp.sha256 pins {want_sum}; \
             the tree is corrupted or modified: {fix}",
            dir.display()
        ));
    }
    Ok(Source { kind, dir, pin })
}

/// The tree CMake builds from, and the patches applied to it.
pub struct BuildTree {
    pub dir: PathBuf,
    /// The patches of a build copy, by name (empty when the tree is built as it is).
    pub patches: Vec<&'static str>,
}

/// Step 3: the source tree itself, or, only when it needs a patch for this machine (Vulkan
/// headers that predate `VK_EXT_layer_settings`), a patched copy in
/// `cmake_root/llama.cpp-patched`. `LLAMA_CPP_DIR` trees are never patched.
pub fn build_tree(
    source: &Source,
    vulkan: Option<&Vulkan>,
    cmake_root: &Path,
) -> Result<BuildTree> {
    let mut patches = Vec::new();
    let dir = match vulkan {
        Some(vk) if !vk.has_layer_settings => {
            if matches!(source.kind, SourceKind::Local) {
                return fail(format!(
                    "the Vulkan headers in {} lack VK_EXT_layer_settings, which this llama.cpp needs, \
                     and LLAMA_CPP_DIR trees are never patched: install Vulkan-Headers >= 1.3.261 \
                     (or the LunarG SDK and set VULKAN_SDK), or build the pinned tree instead",
                    vk.include_dir.display()
                ));
            }
            let copy = cmake_root.join("llama.cpp-patched");
            // Made once per build folder: a fresh copy would give every source a new mtime,
            // and make would then rebuild everything.
            let stamp = copy.join(".llama-sys-copy-of");
            let want = format!("{}\n{}\n", source.pin, source.dir.display());
            if fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
                make_build_copy(&source.dir, &copy)?;
                patch_vulkan_layer_settings(&copy)?;
                fs::write(&stamp, &want)
                    .or_else(|e| fail(format!("cannot write {}: {e}", stamp.display())))?;
            }
            patches.push("vulkan-layer-settings-guard");
            println!(
                "cargo:warning=llama-sys: the Vulkan headers in {} predate VK_EXT_layer_settings; \
                 building a copy of llama.cpp with the `vulkan-layer-settings-guard` patch \
                 (validation-layer settings are skipped; see llama-sys/README.md)",
                vk.include_dir.display()
            );
            copy
        }
        _ => source.dir.clone(),
    };
    Ok(BuildTree { dir, patches })
}

/// Reads `vendor/llama.cpp.sha256`: `<sha256>  <crate> <version>`.
fn read_pin_sum(vendor: &Path) -> Result<(String, String)> {
    let path = vendor.join("llama.cpp.sha256");
    let text = fs::read_to_string(&path).or_else(|e| {
        fail(format!(
            "cannot read {} ({e}): the checkout is incomplete; restore it with git",
            path.display()
        ))
    })?;
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(sum), Some(name), Some(version)) if sum.len() == 64 => {
            Ok((sum.to_string(), format!("{name} {version}")))
        }
        _ => fail(format!(
            "{} is malformed: run scripts/vendor-llama-cpp --update",
            path.display()
        )),
    }
}

/// Asks cargo where the pinned crate is, downloading it if needed, and returns
/// (`name version`, path of its `llama.cpp/` folder).
fn locate_pinned_crate(vendor: &Path) -> Result<(String, PathBuf)> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = vendor.join("pin/Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--manifest-path",
    ])
    .arg(&manifest);
    if env_flag("CARGO_NET_OFFLINE").unwrap_or(false) {
        cmd.arg("--offline");
    }
    // Do not let the outer build's target dir or flags leak into the nested cargo.
    cmd.env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let out = cmd.output().or_else(|e| {
        fail(format!(
            "cannot run cargo to resolve the llama.cpp pin: {e}"
        ))
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return fail_with(
            "cargo could not fetch the pinned llama.cpp tree (see above): check the network (it downloads the pinned \
             crate once), run scripts/vendor-llama-cpp, or set LLAMA_CPP_DIR to a local llama.cpp checkout",
            tail(&stderr, 20),
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).or_else(|e| {
        fail(format!(
            "cargo metadata printed something that is not JSON: {e}"
        ))
    })?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let dep_name = packages
        .iter()
        .find(|p| p["name"] == "llama-cpp-pin")
        .and_then(|p| p["dependencies"][0]["name"].as_str())
        .map(str::to_string);
    let found = dep_name.and_then(|d| packages.iter().find(|p| p["name"] == d.as_str()));
    let Some(pkg) = found else {
        return fail("vendor/pin/Cargo.toml names no carrier crate: restore it with git");
    };
    let manifest_path = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default());
    let dir = manifest_path
        .parent()
        .map(|p| p.join("llama.cpp"))
        .unwrap_or_default();
    let pin = format!(
        "{} {}",
        pkg["name"].as_str().unwrap_or("?"),
        pkg["version"].as_str().unwrap_or("?")
    );
    if !dir.join("include/llama.h").is_file() {
        return fail(format!(
            "the pinned crate {pin} has no llama.cpp/ tree at {}",
            dir.display()
        ));
    }
    Ok((pin, dir))
}

/// sha256 over a tree, equal to
/// `find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum` run inside it.
fn tree_sha256(root: &Path) -> std::io::Result<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ty = entry.file_type()?;
            let rel = format!("{rel}/{name}");
            if ty.is_dir() {
                walk(&entry.path(), &rel, out)?;
            } else if ty.is_file() {
                out.push((rel, entry.path()));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(root, ".", &mut files)?;
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut manifest = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for (rel, path) in files {
        let mut h = Sha256::new();
        let mut f = fs::File::open(&path)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        manifest.update(format!("{}  {rel}\n", hex(&h.finalize())).as_bytes());
    }
    Ok(hex(&manifest.finalize()))
}

fn make_build_copy(from: &Path, to: &Path) -> Result<()> {
    fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            let dest = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_dir(&entry.path(), &dest)?;
            } else {
                fs::copy(entry.path(), &dest)?;
            }
        }
        Ok(())
    }
    let tmp = to.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    copy_dir(from, &tmp)
        .and_then(|_| {
            let _ = fs::remove_dir_all(to);
            fs::rename(&tmp, to)
        })
        .or_else(|e| {
            fail(format!(
                "cannot make a build copy of llama.cpp in {}: {e}",
                to.display()
            ))
        })
}

/// Guards the use of `VK_EXT_layer_settings` types in ggml-vulkan.cpp with
/// `#ifdef VK_EXT_layer_settings`, for Vulkan headers older than 1.3.261 (Debian 12 has 1.3.239).
/// With older headers the instance is created without validation-layer settings; nothing else
/// changes. Applied only to a build copy of the pinned tree.
fn patch_vulkan_layer_settings(tree: &Path) -> Result<()> {
    let path = tree.join("ggml/src/ggml-vulkan/ggml-vulkan.cpp");
    let text = fs::read_to_string(&path)
        .or_else(|e| fail(format!("cannot read {} to patch it: {e}", path.display())))?;
    let start = "    std::vector<vk::LayerSettingEXT> settings = {";
    let end_marker = "vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, &layer_setting_info);";
    let (Some(s), Some(e)) = (text.find(start), text.find(end_marker)) else {
        return fail(
            "the vulkan-layer-settings-guard patch does not apply to this llama.cpp tree: \
             install Vulkan-Headers >= 1.3.261 (or the LunarG SDK and set VULKAN_SDK) instead",
        );
    };
    let e = e + end_marker.len();
    let original = &text[s..e];
    let replacement = format!(
        "#ifdef VK_EXT_layer_settings /* ollamars: guard for Vulkan headers < 1.3.261 */\n{original}\n#else\n    \
         (void) enable_best_practice;\n    \
         vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{{}}, &app_info, layers, extensions);\n#endif"
    );
    let patched = format!("{}{}{}", &text[..s], replacement, &text[e..]);
    fs::write(&path, patched).or_else(|e| fail(format!("cannot write {}: {e}", path.display())))
}
