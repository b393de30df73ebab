//! Generates the raw bindings (bindgen over vendor/wrapper.h) and links Debian's static
//! libzookeeper_mt.a, so the binary has no runtime dependency on libzookeeper.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    for var in ["ZOOKEEPER_INCLUDE_DIR", "ZOOKEEPER_LIB_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=vendor/wrapper.h");

    let include = env_dir("ZOOKEEPER_INCLUDE_DIR").unwrap_or_else(|| "/usr/include/zookeeper".into());
    if !include.join("zookeeper.h").exists() {
        fail(&format!(
            "ZooKeeper C headers not found in {}: run `vendor/setup.sh` (or set ZOOKEEPER_INCLUDE_DIR)",
            include.display()
        ));
    }
    let version = read_zoo_version(&include.join("zookeeper_version.h"));
    if !version.starts_with("3.8.") {
        fail(&format!("libzookeeper_mt {version} found, 3.8.x required (see vendor/README.md)"));
    }

    // `zkutil --version` names the C client it was built with and the commit.
    println!("cargo:rustc-env=ZKUTIL_C_CLIENT_VERSION={version}");
    println!("cargo:rustc-env=ZKUTIL_GIT_HASH={}", git_hash());

    let lib_dir = env_dir("ZOOKEEPER_LIB_DIR").unwrap_or_else(debian_lib_dir);
    if !lib_dir.join("libzookeeper_mt.a").exists() {
        fail(&format!(
            "libzookeeper_mt.a not found in {}: run `vendor/setup.sh` (or set ZOOKEEPER_LIB_DIR)",
            lib_dir.display()
        ));
    }
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    // Static: the binary must not need libzookeeper at run time.
    println!("cargo:rustc-link-lib=static=zookeeper_mt");
    // `nm -u libzookeeper_mt.a` needs nothing beyond libc but pthread.
    println!("cargo:rustc-link-lib=pthread");

    let bindings = bindgen::Builder::default()
        .header("vendor/wrapper.h")
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_function("zoo_.*|zookeeper_.*|zerror|deallocate_.*")
        .allowlist_var("ZOO_.*|ZOOKEEPER_.*")
        .allowlist_type("ZOO_ERRORS|ZooLogLevel")
        .prepend_enum_name(false)
        .layout_tests(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|_| {
            fail("bindgen failed on vendor/wrapper.h (is libclang-dev installed? run `vendor/setup.sh`)")
        });
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    bindings.write_to_file(out.join("zk_bindings.rs")).unwrap_or_else(|e| fail(&format!("writing bindings: {e}")));
}

fn env_dir(var: &str) -> Option<PathBuf> {
    env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn debian_lib_dir() -> PathBuf {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let multiarch = format!("/usr/lib/{arch}-{os}-gnu");
    if Path::new(&multiarch).join("libzookeeper_mt.a").exists() { multiarch.into() } else { "/usr/lib".into() }
}

/// `#define ZOO_VERSION "3.8.0"` -> `3.8.0`
fn read_zoo_version(header: &Path) -> String {
    let text = std::fs::read_to_string(header)
        .unwrap_or_else(|e| fail(&format!("reading {}: {e}: run `vendor/setup.sh`", header.display())));
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("#define ZOO_VERSION"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .unwrap_or_else(|| fail(&format!("no ZOO_VERSION in {}", header.display())))
}

/// The short hash of HEAD (the commit the build started from; uncommitted changes are not
/// marked), or `unknown` outside a git checkout. Reruns when HEAD moves (a worktree's .git is a file, so ask git where its
/// files are).
fn git_hash() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(hash) = git(&["rev-parse", "--short=12", "HEAD"]) else { return "unknown".into() };
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = PathBuf::from(dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from).unwrap_or(dir.clone());
            for f in [dir.join(&r), common.join(&r)] {
                if f.exists() {
                    println!("cargo:rerun-if-changed={}", f.display());
                }
            }
        }
    }
    hash
}

/// One clear line, then stop: no panic backtrace for a missing package.
fn fail(msg: &str) -> ! {
    eprintln!("zkutil build: {msg}");
    std::process::exit(1)
}
