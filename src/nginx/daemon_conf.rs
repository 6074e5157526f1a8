//! `wsgi_daemon_process NAME [options];` (http) and `wsgi_process_group NAME|off;`
//! (http, server, location): the directives of daemon mode on nginx, parsed and checked
//! so that every mistake fails `nginx -t` with one precise message.
//!
//! The options are parsed by [`crate::daemon::definition`] with nginx's own time and size
//! parsers. The definitions live in a Rust value owned by the main configuration
//! (`daemons`), freed with the configuration's pool. Once the whole http block is read
//! (postconfiguration), every group a `wsgi_process_group` names must exist and every
//! group's python home must be readable by the group's account.
//!
//! The processes are daemons.rs (a keeper forked from the master), the workers' client
//! daemon_client.rs (docs/nginx-daemon.md).

use std::ffi::{c_char, c_void};
use std::path::PathBuf;

use oxwsgi_checks::Account;

use super::conf::{Conf, Failure, directive, text};
use super::ngx::{self, ERROR, OK};
use crate::daemon::definition::{self, Definition, Target, Units};
use crate::ffi::ngx::*;

/// What nginx's configuration says about daemon mode (one per configuration cycle).
#[derive(Default)]
pub struct Daemons {
    /// Each group with where it was defined.
    pub groups: Vec<(Definition, String)>,
    /// Each group a `wsgi_process_group` named, with where.
    uses: Vec<(String, String)>,
}

/// The pool cleanup that frees [`Daemons`] with the configuration.
unsafe extern "C" fn free_daemons(data: *mut c_void) {
    // SAFETY: data is the Box::into_raw of daemons_of, freed only here, once.
    drop(unsafe { Box::from_raw(data as *mut Daemons) });
}

/// The configuration's [`Daemons`], created on first use.
fn daemons_of(c: &mut Conf) -> Result<&'static mut Daemons, Failure> {
    let pool = c.pool();
    let mcf = c.main_conf();
    if mcf.daemons.is_null() {
        // SAFETY: the configuration pool is live; the cleanup runs when it is destroyed.
        let cln = unsafe { ngx_pool_cleanup_add(pool, 0) };
        if cln.is_null() {
            return Err(Failure::Logged);
        }
        let d = Box::into_raw(Box::<Daemons>::default());
        // SAFETY: cln is the fresh cleanup record.
        unsafe {
            (*cln).handler = Some(free_daemons);
            (*cln).data = d as *mut c_void;
        }
        mcf.daemons = d as *mut c_void;
    }
    // SAFETY: daemons is our Box, alive until the pool's cleanup; nginx parses (and runs
    // these hooks) on one thread, one directive at a time.
    Ok(unsafe { &mut *(mcf.daemons as *mut Daemons) })
}

/// `wsgi_daemon_process NAME [key=value ...];`
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_conf_daemon_process(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    let run = |c: &mut Conf| {
        let args: Vec<String> = c.args()[1..].iter().map(text).collect();
        let g = definition::parse(&args, &Units { time: &ngx::parse_time, size: &ngx::parse_size })?;
        let at = c.position();
        let d = daemons_of(c)?;
        if let Some((_, first)) = d.groups.iter().find(|(x, _)| x.name == g.name) {
            return Err(format!("group {:?} is defined twice (first in {first})", g.name).into());
        }
        d.groups.push((g, at));
        Ok(())
    };
    // SAFETY: nginx calls directive handlers with the live configuration.
    unsafe { directive(cf, run) }
}

/// `wsgi_process_group NAME|off;`
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_conf_process_group(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let run = |c: &mut Conf| {
        // SAFETY: NGX_HTTP_LOC_CONF_OFFSET: conf is our location configuration of this
        // block, live in the cycle pool.
        let lcf = unsafe { &mut *(conf as *mut ngx_http_oxwsgi_loc_conf_t) };
        if !lcf.process_group.data.is_null() {
            return Err(Failure::Nginx(c"is duplicate"));
        }
        let word = c.args()[1];
        let value = text(&word);
        if let Target::Named(name) = definition::target(&value)? {
            let at = c.position();
            daemons_of(c)?.uses.push((name.to_string(), at));
        }
        lcf.process_group = word;
        Ok(())
    };
    // SAFETY: nginx calls directive handlers with the live configuration.
    unsafe { directive(cf, run) }
}

/// The account of nginx's workers: the `user` directive, else nginx's default (`nobody`
/// when the master runs as root, the master's own user otherwise).
fn worker_account(c: &Conf) -> Account {
    // SAFETY: postconfiguration runs on the cycle being configured.
    match unsafe { ngx::configured_worker_ids(c.cycle()) } {
        Some((uid, gid)) => Account::by_uid(uid, gid),
        None if crate::ffi::os::euid() == 0 => {
            Account::by_name("nobody").unwrap_or_else(|| Account::new("nobody", 65534, 65534))
        }
        None => Account::by_uid(crate::ffi::os::euid(), crate::ffi::os::egid()),
    }
}

/// After the http block: the checks that need the whole configuration.
fn check_all(c: &mut Conf) -> Result<(), String> {
    let mcf = c.main_conf();
    if mcf.daemons.is_null() {
        return Ok(());
    }
    let global_home = (mcf.python_home.len > 0).then(|| PathBuf::from(text(&mcf.python_home)));
    // SAFETY: daemons is our live Box (daemons_of); nothing else borrows it now.
    let d = unsafe { &*(mcf.daemons as *const Daemons) };
    for (name, at) in &d.uses {
        if !d.groups.iter().any(|(g, _)| &g.name == name) {
            return Err(format!(
                "wsgi_process_group {name:?} in {at}: no wsgi_daemon_process {name:?} is defined in the http block"
            ));
        }
    }
    let worker = worker_account(c);
    for (g, at) in &d.groups {
        definition::check_access(g, &g.account(&worker), global_home.as_deref())
            .map_err(|e| format!("wsgi_daemon_process in {at}: {e}"))?;
    }
    Ok(())
}

/// The http module's postconfiguration hook.
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    crate::ffi::guard::guard("postconfiguration", ERROR, || {
        // SAFETY: nginx passes the live configuration of the http block.
        let c = unsafe { Conf::from_ptr(cf) };
        match check_all(c) {
            Ok(()) => OK,
            Err(e) => {
                c.log_emerg(&e);
                ERROR
            }
        }
    })
}

/// The daemon groups of a configured cycle's main configuration.
///
/// # Safety
/// `mcf` must be the main configuration of a live cycle (its pool, which owns the
/// [`Daemons`], alive while the result is used).
pub(super) unsafe fn daemons_in(mcf: &ngx_http_oxwsgi_main_conf_t) -> Option<&Daemons> {
    // SAFETY: daemons is NULL or our Box, freed only with the pool (caller).
    (!mcf.daemons.is_null()).then(|| unsafe { &*(mcf.daemons as *const Daemons) })
}
