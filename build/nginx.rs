//! nginx: configured header tree, C shim (ngx-module/) and bindings.
//!
//! A module must be compiled against headers configured exactly like the nginx binary
//! that loads it: struct layouts depend on the configure flags (`--with-compat` alone is
//! not enough, see research/build-facts.md §0.2). Debian's nginx-dev ships the headers,
//! `configure` and the flags its binary was built with (`conf_flags`), so we configure a
//! copy of that tree with those flags, once, into a cache directory next to cargo's
//! profile directories (`target/nginx-configured/<hash>`): it survives `cargo clean -p`,
//! is shared by debug and release builds, and CI can cache it. The hash covers the flags
//! and the nginx version, so a new nginx-dev package or other flags configure afresh.
//!
//! Environment:
//! - `NGX_OXWSGI_SRC`: the nginx-dev tree (default /usr/share/nginx/src).
//! - `NGX_OXWSGI_CONFIGURED`: an already configured tree to use as-is (skips configure).
//! - `OXWSGI_NGX_ADDON=1`: build only the Rust half, for nginx's own build of the module
//!   (`--add-dynamic-module=ngx-module`, see ngx-module/README.md); unsupported otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

const INCLUDE_DIRS: [&str; 8] = [
    "src/core",
    "src/event",
    "src/event/modules",
    "src/os/unix",
    "src/http",
    "src/http/modules",
    "src/http/v2",
    "objs",
];

/// FNV-1a: stable across builds and toolchains (unlike std's hasher).
fn fnv(data: &[u8], mut h: u64) -> u64 {
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// `target/<profile>/build/oxwsgi-*/out` -> `target/nginx-configured`.
fn cache_root(out_dir: &Path) -> PathBuf {
    let build = out_dir.ancestors().find(|p| p.file_name().is_some_and(|n| n == "build"));
    match build.and_then(|b| b.parent()).and_then(|profile| profile.parent()) {
        Some(target) => target.join("nginx-configured"),
        None => out_dir.join("nginx-configured"),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("running cp");
    assert!(st.success(), "copying {} to {} failed", from.display(), to.display());
}

/// A tree configured with the flags of the installed nginx, from the cache if possible.
fn configured_tree(src: &Path, out_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("NGX_OXWSGI_CONFIGURED") {
        return PathBuf::from(dir);
    }
    let flags = std::fs::read(src.join("conf_flags")).unwrap_or_else(|e| {
        panic!(
            "{}/conf_flags: {e}: install nginx-dev (the headers of the nginx that will load the module)",
            src.display()
        )
    });
    let version = std::fs::read(src.join("src/core/nginx.h")).expect("nginx-dev tree without src/core/nginx.h");
    let hash = fnv(&version, fnv(&flags, 0xcbf29ce484222325));
    let root = cache_root(out_dir);
    let dir = root.join(format!("{hash:016x}"));
    if dir.join("objs/ngx_auto_config.h").exists() {
        return dir;
    }
    std::fs::create_dir_all(&root).expect("creating the nginx-configured cache directory");
    // Configure in a private directory, then rename: concurrent builds (debug and release)
    // never see a half-configured tree.
    let tmp = root.join(format!("{hash:016x}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_tree(src, &tmp);
    let out = Command::new("bash")
        .arg("-c")
        .arg(". ./conf_flags && ./configure \"${NGX_CONF_FLAGS[@]}\"")
        .current_dir(&tmp)
        .output()
        .expect("running nginx's configure");
    if !out.status.success() || !tmp.join("objs/ngx_auto_config.h").exists() {
        panic!(
            "configuring nginx headers with Debian's conf_flags failed (needs libssl-dev, libpcre2-dev, zlib1g-dev):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another build won the race; use its tree.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

pub fn build() {
    println!("cargo::rerun-if-changed=ngx-module");
    println!("cargo::rerun-if-env-changed=NGX_OXWSGI_SRC");
    println!("cargo::rerun-if-env-changed=NGX_OXWSGI_CONFIGURED");
    let src = PathBuf::from(std::env::var("NGX_OXWSGI_SRC").unwrap_or_else(|_| "/usr/share/nginx/src".into()));
    println!("cargo::rerun-if-changed={}", src.join("conf_flags").display());
    println!("cargo::rerun-if-changed={}", src.join("src/core/nginx.h").display());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let tree = configured_tree(&src, &out_dir);
    let incs: Vec<PathBuf> = INCLUDE_DIRS.iter().map(|d| tree.join(d)).collect();

    // OXWSGI_NGX_ADDON=1: the library for nginx's own build (ngx-module/config), which
    // compiles the shim and generates the ngx_modules arrays itself.
    println!("cargo::rerun-if-env-changed=OXWSGI_NGX_ADDON");
    println!("cargo::rustc-check-cfg=cfg(ngx_addon_build)");
    if std::env::var_os("OXWSGI_NGX_ADDON").is_some_and(|v| v != "0") {
        println!("cargo::rustc-cfg=ngx_addon_build");
    } else {
        let mut cc = cc::Build::new();
        cc.file("ngx-module/ngx_http_oxwsgi_module.c")
            .include("ngx-module")
            .warnings(true)
            .extra_warnings(false)
            .flag_if_supported("-Wno-unused-parameter");
        for i in &incs {
            cc.include(i);
        }
        cc.compile("oxwsgi_nginx_shim");
    }

    let mut b = super::bindgen_base("ngx-module/wrapper.h")
        .allowlist_type(
            "ngx_http_request_t|ngx_module_t|ngx_cycle_t|ngx_table_elt_t|ngx_list_part_t|ngx_http_oxwsgi_.*|\
             ngx_thread_task_t|ngx_chain_t|ngx_buf_t|ngx_event_t|ngx_conf_t|ngx_command_t|ngx_http_conf_ctx_t|\
             ngx_http_core_loc_conf_t|ngx_http_core_srv_conf_t|ngx_http_compile_complex_value_t|\
             ngx_pool_cleanup_file_t|ngx_file_t|ngx_conf_num_bounds_t|ngx_core_conf_t",
        )
        .allowlist_function(
            "ngx_http_oxwsgi_.*|ngx_http_send_header|ngx_http_finalize_request|ngx_pnalloc|ngx_list_push|\
             ngx_array_create|ngx_array_push|ngx_conf_full_name|ngx_http_compile_complex_value|ngx_http_complex_value|\
             ngx_connection_local_sockaddr|ngx_inet_get_port|ngx_chain_get_free_buf|ngx_chain_update_chains|\
             ngx_http_output_filter|ngx_pool_cleanup_add|ngx_pool_cleanup_file|ngx_pcalloc|\
             ngx_http_read_client_request_body|ngx_thread_task_post|ngx_http_run_posted_requests|\
             ngx_conf_set_num_slot|ngx_conf_set_str_slot|ngx_conf_set_flag_slot|ngx_conf_check_num_bounds|\
             ngx_parse_time|ngx_parse_offset|ngx_time_update|\
             ngx_get_connection|ngx_close_connection|ngx_handle_read_event|ngx_handle_write_event",
        )
        .allowlist_var(
            "NGX_OK|NGX_ERROR|NGX_DONE|NGX_HTTP_.*|NGX_LOG_.*|NGX_CONF_.*|ngx_http_core_module|ngx_http_oxwsgi_.*|ngx_cycle|\
             ngx_core_module|ngx_http_module|ngx_test_config|ngx_process|ngx_pid|NGX_PROCESS_.*|ngx_event_actions",
        )
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new().rerun_on_header_files(false)));
    for i in &incs {
        b = b.clang_arg(format!("-I{}", i.display()));
    }
    b = b.clang_arg("-Ingx-module");
    b.generate()
        .expect("bindgen failed on ngx-module/wrapper.h")
        .write_to_file(out_dir.join("nginx_bindings.rs"))
        .expect("writing nginx bindings");
}
