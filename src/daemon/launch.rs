//! Becoming one daemon process of a group, in a freshly forked child: limits, umask,
//! locale, the group's user, the parent-death signal, the group's socket, then
//! [`crate::daemon::serve`] until it says why it stopped. Server-neutral: the nginx
//! supervisor (src/daemon/keeper.rs) forks daemons with it; the parent process that forks
//! and restarts them is the adapter's or the keeper's business.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Exit, GroupSettings};
use crate::core::{Level, LogSink};
use crate::ffi::os::{self, Limit};

/// Everything one daemon of a group needs, prepared in the parent before the fork.
#[derive(Clone, Debug)]
pub struct Launch {
    pub settings: GroupSettings,
    /// The group's listening socket (inherited through fork) and its path (for the log).
    pub fd: RawFd,
    pub socket: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary one first).
    pub groups: Vec<u32>,
    /// Working directory; `home_required`: failing to enter it is an error (`home=` was
    /// given), else the process falls back to `/`.
    pub home: PathBuf,
    pub home_required: bool,
    pub umask: Option<u32>,
    pub lang: Option<String>,
    pub locale: Option<String>,
    /// The process name (`/proc/PID/comm`).
    pub title: Option<String>,
    pub memory_limit: Option<u64>,
    pub virtual_memory_limit: Option<u64>,
    pub cpu_time_limit: Option<u64>,
}

/// Why a daemon stopped, as the log says it.
pub fn describe(exit: &Exit) -> String {
    match exit {
        Exit::MaximumRequests => "maximum-requests reached".into(),
        Exit::RestartInterval => "restart-interval reached".into(),
        Exit::InactivityTimeout => "inactivity-timeout reached".into(),
        Exit::RequestTimeout => "a request exceeded request-timeout".into(),
        Exit::Deadlock => "deadlock-timeout: the Python interpreter stopped making progress".into(),
        Exit::Signal => "asked to stop".into(),
        Exit::ScriptChanged => "its WSGI script changed (script reloading)".into(),
        Exit::Failed(e) => format!("failed: {e}"),
    }
}

/// The daemon's life in the forked child: become the group's user, then serve until told
/// to stop. `parent` is the process that forked it (it dies with it). Returns the exit
/// status for `_exit` (0: a planned exit, 1: a failure).
pub fn run(l: &Launch, parent: i32, log: Arc<dyn LogSink>, delay: Duration) -> i32 {
    os::reset_signals();
    if !os::die_with_parent(parent, libc::SIGTERM) {
        return 0; // the parent is already gone
    }
    let name = &l.settings.name;
    let pid = std::process::id();
    let fail = |what: String| {
        log.log(Level::Error, &format!("oxwsgi: daemon process {pid} of group {name:?}: {what}"));
        1
    };
    if let Some(t) = &l.title {
        os::set_thread_name(t);
    }
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    for (limit, value) in
        [(Limit::Data, l.memory_limit), (Limit::AddressSpace, l.virtual_memory_limit), (Limit::Cpu, l.cpu_time_limit)]
    {
        if let Some(v) = value {
            if let Err(e) = os::set_limit(limit, v) {
                return fail(format!("cannot set the {limit:?} limit to {v}: {e}"));
            }
        }
    }
    if let Some(m) = l.umask {
        os::umask(m);
    }
    if let Some(v) = &l.lang {
        os::set_env("LANG", v);
    }
    if let Some(v) = &l.locale {
        os::set_env("LC_ALL", v);
    }
    if os::euid() == 0 {
        if let Err(e) = os::drop_privileges(l.uid, l.gid, &l.groups) {
            return fail(format!("cannot switch to uid {} gid {}: {e}", l.uid, l.gid));
        }
    }
    // A change of credentials clears the parent-death signal: ask again.
    if !os::die_with_parent(parent, libc::SIGTERM) {
        return 0;
    }
    if let Err(e) = std::env::set_current_dir(&l.home) {
        if l.home_required {
            return fail(format!("cannot change to the home directory {}: {e}", l.home.display()));
        }
        let _ = std::env::set_current_dir("/");
    }
    let listener = match os::dup_listener(l.fd) {
        Ok(s) => s,
        Err(e) => return fail(format!("the group's socket is gone: {e}")),
    };
    os::close(l.fd);
    log.log(Level::Info, &format!("oxwsgi: daemon process {pid} of group {name:?} serving on {}", l.socket.display()));
    let exit = super::serve(&l.settings, listener, log.clone());
    let (level, code) = if matches!(exit, Exit::Failed(_)) { (Level::Error, 1) } else { (Level::Notice, 0) };
    log.log(level, &format!("oxwsgi: daemon process {pid} of group {name:?} exits: {}", describe(&exit)));
    code
}
