//! Apache httpd 2.4: C shim (apache-module/) and bindings to httpd + APR headers.

use std::path::PathBuf;
use std::process::Command;

/// Ask a `*-config` tool for a value, falling back to Debian's layout.
fn query(cmd: &str, args: &[&str], fallback: &str) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

pub fn build() {
    println!("cargo::rerun-if-changed=apache-module");
    let httpd_inc = query("apxs", &["-q", "INCLUDEDIR"], "/usr/include/apache2");
    let apr_inc = query("apr-1-config", &["--includedir"], "/usr/include/apr-1.0");
    let apu_inc = query("apu-1-config", &["--includedir"], "/usr/include/apr-1.0");
    let defines = ["LINUX", "_REENTRANT", "_GNU_SOURCE"];
    let incs = [httpd_inc.as_str(), apr_inc.as_str(), apu_inc.as_str(), "apache-module"];
    if !PathBuf::from(&httpd_inc).join("httpd.h").exists() {
        panic!("httpd headers not found in {httpd_inc}: install apache2-dev (make deps)");
    }

    let mut cc = cc::Build::new();
    cc.file("apache-module/mod_oxwsgi.c").warnings(true).extra_warnings(false);
    for d in defines {
        cc.define(d, None);
    }
    for i in incs {
        cc.include(i);
    }
    cc.compile("oxwsgi_apache_shim");

    let mut b = super::bindgen_base("apache-module/wrapper.h")
        .allowlist_type("request_rec|server_rec|conn_rec|module|command_rec|cmd_parms|oxwsgi_.*|ap_regex_t|ap_regmatch_t|apr_table_entry_t|apr_array_header_t|apr_finfo_t")
        .allowlist_function("ap_.*|apr_table_.*|apr_p.*|apr_array_.*|apr_pool_.*|apr_brigade_.*|oxwsgi_.*")
        .allowlist_var("MODULE_MAGIC_.*|OK|DECLINED|DONE|HTTP_.*|APLOG_.*|M_.*|OXWSGI_.*|AP_REG_.*|AP_MAX_REG_MATCH|RSRC_CONF|ACCESS_CONF|OR_.*|AP_SQ_.*|AP_MPMQ_.*|REQUEST_CHUNKED_.*|APR_OC_REASON_.*|ap_server_conf|ap_unixd_config")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for d in defines {
        b = b.clang_arg(format!("-D{d}"));
    }
    for i in incs {
        b = b.clang_arg(format!("-I{i}"));
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    b.generate()
        .expect("bindgen failed on apache-module/wrapper.h")
        .write_to_file(out.join("apache_bindings.rs"))
        .expect("writing apache bindings");
}
