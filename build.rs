//! Build script: compiles the C shim of the selected server module with `cc` and
//! generates Rust bindings to that server's headers with bindgen.
//!
//! `--features apache` builds the httpd module, `--features nginx` the nginx one;
//! with neither (plain `cargo test`) only the server-agnostic core is built.
//! The details of each server live in build/apache.rs and build/nginx.rs.

#[path = "build/apache.rs"]
mod apache;
#[path = "build/nginx.rs"]
mod nginx;

/// bindgen settings both servers' bindings share: no layout tests or Debug derives (far less
/// generated code), `Default` for the C structs, unsafe calls wrapped per operation, C enum
/// constants without their enum's name.
fn bindgen_base(header: &str) -> bindgen::Builder {
    bindgen::Builder::default()
        .header(header)
        .layout_tests(false)
        .derive_debug(false)
        .derive_default(true)
        .wrap_unsafe_ops(true)
        .generate_comments(false)
        .prepend_enum_name(false)
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=build");
    let apache = std::env::var_os("CARGO_FEATURE_APACHE").is_some();
    let nginx = std::env::var_os("CARGO_FEATURE_NGINX").is_some();
    if apache && nginx {
        // One cdylib can only be one server's module: each references the other
        // server's symbols, which are undefined when loaded into the wrong host.
        panic!("features `apache` and `nginx` are exclusive: build them one at a time (see Makefile)");
    }
    if apache {
        apache::build();
    }
    if nginx {
        nginx::build();
    }
}
