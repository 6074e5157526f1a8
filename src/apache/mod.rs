//! The Apache httpd 2.4 adapter: the `oxwsgi_module` symbol httpd loads, the hook entry
//! points the C shim (apache-module/mod_oxwsgi.c) calls, directives, and request handling.
//!
//! Process model: configuration is parsed in the root parent; Python starts in each child
//! (`child_init`) and never in the parent, so a graceful restart simply brings up fresh
//! children (DESIGN.md, "Process and interpreter model").

mod auth;
mod compat;
mod config;
mod daemon_conf;
mod daemons;
mod entry;
mod handler;
mod httpd;
mod io;
mod modpython;
mod modpython_conf;
mod modpython_filter;
mod modpython_req;

use std::ptr::null_mut;

use crate::ffi::httpd::*;

unsafe extern "C" {
    /// The directive table, in the C shim.
    static oxwsgi_cmds: [command_rec; 0];
    fn oxwsgi_create_dir_conf(p: *mut apr_pool_t, dir: *mut std::ffi::c_char) -> *mut std::ffi::c_void;
    fn oxwsgi_merge_dir_conf(
        p: *mut apr_pool_t,
        base: *mut std::ffi::c_void,
        add: *mut std::ffi::c_void,
    ) -> *mut std::ffi::c_void;
    fn oxwsgi_register_hooks(p: *mut apr_pool_t);
}

/// The module record: the same for both symbols below (only the one httpd loads is used).
/// `name` is mod_wsgi's, so that `<IfModule mod_wsgi.c>` sections written for mod_wsgi are
/// read when oxwsgi is loaded (httpd's `<IfModule x.c>` compares this field).
macro_rules! record {
    () => {
        module {
            version: MODULE_MAGIC_NUMBER_MAJOR as _,
            minor_version: MODULE_MAGIC_NUMBER_MINOR as _,
            module_index: -1,
            name: c"mod_wsgi.c".as_ptr(),
            dynamic_load_handle: null_mut(),
            next: null_mut(),
            magic: MODULE_MAGIC_COOKIE as _,
            rewrite_args: None,
            create_dir_config: Some(oxwsgi_create_dir_conf),
            merge_dir_config: Some(oxwsgi_merge_dir_conf),
            create_server_config: None,
            merge_server_config: None,
            // Only the address of the C table is taken (no unsafe needed); httpd reads it as a
            // NULL-terminated array, which is how the shim defines it.
            cmds: &raw const oxwsgi_cmds as *const command_rec,
            register_hooks: Some(oxwsgi_register_hooks),
            flags: 0,
        }
    };
}

/// The module record httpd looks up by name after `LoadModule oxwsgi_module ...`.
/// It must be defined in Rust: a cdylib exports only Rust items (docs/build.md).
#[unsafe(no_mangle)]
#[used]
pub static mut oxwsgi_module: module = record!();

/// The same module under mod_wsgi's symbol: `LoadModule wsgi_module .../mod_oxwsgi.so`
/// (a mod_wsgi configuration with only the file name changed) loads it, and
/// `<IfModule wsgi_module>` then holds. The C shim works with whichever record httpd
/// loaded, and refuses the configuration if both are (`oxwsgi_ap_load_problem`).
#[unsafe(no_mangle)]
#[used]
pub static mut wsgi_module: module = record!();
