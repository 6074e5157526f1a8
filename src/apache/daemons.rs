//! Daemon process groups on Apache: the parent creates each group's socket, forks the
//! group's processes after the configuration is read, restarts the ones that die (with a
//! back-off), replaces them on a restart and stops them with Apache.
//!
//! - **Forked from the parent** in `post_config` of the real configuration pass (never for
//!   `apache2 -t`, never in the first, throw-away pass); Python never starts in the parent:
//!   each daemon starts its own in [`crate::daemon::serve`] after dropping privileges.
//! - **Watched by the MPM**: each daemon is an APR "other child"; when the MPM's main loop
//!   reaps it, the callback ([`on_event`]) starts a replacement. A process that failed
//!   within [`QUICK`] of its start counts as a quick failure; the replacement then waits
//!   0.25 s, 0.5 s, 1 s, ... up to [`MAX_BACKOFF`] before it starts Python, so a crash loop
//!   never spins.
//! - **Sockets survive restarts**: the listening socket of a group whose definition did not
//!   change is kept across `apachectl graceful` in httpd's retained memory (the module
//!   itself is unloaded), so connections keep queueing on it while new daemons start; the
//!   old daemons get SIGTERM (stop accepting, finish what they have) once the new ones are
//!   forked. A changed or removed group's socket is closed and unlinked.
//! - **Nothing outlives Apache**: on stop the daemons get SIGTERM, then SIGKILL after their
//!   shutdown-timeout; each daemon also asks the kernel for SIGTERM when the parent dies
//!   (`PR_SET_PDEATHSIG`) and exits at once if the parent is already gone.
//! - **Only Apache's user can connect**: the socket is created with mode 0600 and owned by
//!   the user of Apache's children (root aside, no other local user can connect).

use std::collections::HashMap;
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::Config;
use super::daemon_conf::{DaemonGroup, fnv64};
use super::httpd::{OtherChildFn, Pool, Server, process, register_other_child, unregister_other_child, with_retained};
use super::io::ServerLog;
use crate::core::Level;
use crate::core::runtime::RuntimeConfig;
use crate::daemon::launch::Launch;
use crate::daemon::{self, GroupSettings};
use crate::ffi::httpd::{APR_OC_REASON_DEATH, APR_OC_REASON_LOST, APR_OC_REASON_RESTART};
use crate::ffi::os::{self, Fork};

/// A failure this soon after the start counts towards the back-off.
const QUICK: Duration = Duration::from_secs(5);
/// The longest a replacement waits before starting.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Everything a group's daemon needs, prepared in the parent.
struct Spawn {
    group: DaemonGroup,
    settings: GroupSettings,
    hash: u64,
    fd: RawFd,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    home: PathBuf,
}

struct Slot {
    pid: i32,
    key: usize,
    started: Instant,
    quick_failures: u32,
}

/// Which process a registration key stands for.
#[derive(Clone)]
enum Member {
    /// The current generation's process `slot` of group `group`.
    Current { group: usize, slot: usize },
    /// A process of an earlier generation, finishing its requests.
    Retiring { group: String },
}

struct State {
    parent: i32,
    server: &'static Server,
    groups: Vec<(Arc<Spawn>, Vec<Slot>)>,
    keys: HashMap<usize, (Member, i32)>,
    next_key: usize,
    /// Stop or restart under way: no more replacements in this generation.
    ending: bool,
    callback: OtherChildFn,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn log(&self, level: Level, msg: &str) {
        self.server.log(level, &format!("oxwsgi: {msg}"));
    }

    fn key(&mut self) -> usize {
        self.next_key += 1;
        self.next_key
    }
}

/// The socket path of a group: `<prefix>.<parent pid>.<hash>.sock`.
fn socket_path(prefix: &str, parent: i32, hash: u64) -> PathBuf {
    PathBuf::from(format!("{prefix}.{parent}.{hash:016x}.sock"))
}

/// Bind a group's socket: mode 0600 (umask 0177 during the bind, so it never exists with
/// wider permissions), owned by Apache's user, with the group's backlog.
fn bind(path: &Path, owner: u32, backlog: u32) -> Result<RawFd, String> {
    let _ = std::fs::remove_file(path);
    let old = os::umask(0o177);
    let l = UnixListener::bind(path);
    os::umask(old);
    let l = l.map_err(|e| format!("cannot create the socket {}: {e}", path.display()))?;
    std::os::unix::fs::chown(path, Some(owner), None)
        .map_err(|e| format!("cannot give the socket {} to uid {owner}: {e}", path.display()))?;
    let fd = l.into_raw_fd();
    os::listen(fd, backlog).map_err(|e| format!("listen on {}: {e}", path.display()))?;
    Ok(fd)
}

fn settings(g: &DaemonGroup, c: &Config) -> GroupSettings {
    let mut runtime: RuntimeConfig = c.runtime.clone();
    // WSGIPythonPath is embedded mode's; a group has its python-path (as in mod_wsgi).
    runtime.python_path = g.python_path.clone();
    if g.python_home.is_some() {
        runtime.start.home = g.python_home.clone();
    }
    // The `mod_wsgi` module of a daemon process describes its group, as in mod_wsgi.
    runtime.modwsgi.process_group = g.name.clone();
    (runtime.modwsgi.maximum_processes, runtime.modwsgi.threads_per_process) = (g.processes, g.threads);
    GroupSettings {
        name: g.name.clone(),
        processes: g.processes,
        threads: g.threads,
        runtime,
        imports: g.imports.clone(),
        server_software: format!("{} oxwsgi/{}", process::server_banner(), env!("CARGO_PKG_VERSION")),
        maximum_requests: g.maximum_requests,
        request_timeout: g.request_timeout,
        inactivity_timeout: g.inactivity_timeout,
        restart_interval: g.restart_interval,
        graceful_timeout: g.graceful_timeout,
        shutdown_timeout: g.shutdown_timeout,
        deadlock_timeout: g.deadlock_timeout,
    }
}

/// Create or reuse the groups' sockets and start their processes (`post_config`, real
/// pass). Records each group's socket in `c` for the children; then retires the processes
/// of the previous generation.
pub fn start(pool: &Pool, server: &'static Server, c: &mut Config, callback: OtherChildFn) -> Result<(), String> {
    let parent = std::process::id() as i32;
    let (apache_uid, apache_gid) = process::unixd_ids();
    let worker = super::config::worker_account();
    let prefix = match &c.socket_prefix {
        Some(p) => process::server_root_relative(pool, p),
        None => process::runtime_dir_relative(pool, "wsgi"),
    }
    .ok_or("cannot resolve the socket prefix (WSGISocketPrefix / DefaultRuntimeDir)")?;
    let timeout = server.timeout();

    // Sockets: reuse a retained one with the same definition, else bind a new one.
    let mut spawns = Vec::new();
    let mut groups = std::mem::take(&mut c.groups);
    for g in groups.iter_mut() {
        let hash = fnv64(&[g.text.as_bytes(), prefix.as_bytes(), &apache_uid.to_le_bytes()]).max(1);
        let kept = with_retained(|r| {
            r.sockets
                .iter()
                .find(|s| s.hash == hash)
                .map(|s| (s.fd, PathBuf::from(String::from_utf8_lossy(&s.path[..s.path_len as usize]).into_owned())))
        });
        let (fd, path) = match kept {
            Some(k) => k,
            None => {
                let path = socket_path(&prefix, parent, hash);
                if path.as_os_str().len() >= 108 {
                    return Err(format!(
                        "the socket path {} of process group {:?} is longer than 107 bytes: set a shorter \
                         WSGISocketPrefix",
                        path.display(),
                        g.name
                    ));
                }
                let fd = bind(&path, apache_uid, g.listen_backlog)?;
                with_retained(|r| {
                    let slot =
                        r.sockets.iter_mut().find(|s| s.hash == 0).ok_or("too many process groups (64 at most)")?;
                    let bytes = path.as_os_str().as_encoded_bytes();
                    slot.hash = hash;
                    slot.fd = fd;
                    slot.path_len = bytes.len() as u32;
                    slot.path[..bytes.len()].copy_from_slice(bytes);
                    Ok::<(), String>(())
                })?;
                (fd, path)
            }
        };
        g.socket = path;
        g.server_timeout = timeout;
        let account = g.account(&worker);
        let (uid, gid, home) = match &g.user {
            Some(u) => (u.uid, g.group.as_ref().map_or(u.gid, |x| x.1), u.home.clone()),
            None => {
                let home = super::daemon_conf::lookup_user(&format!("#{apache_uid}")).map(|u| u.home);
                (apache_uid, g.group.as_ref().map_or(apache_gid, |x| x.1), home.unwrap_or_else(|| "/".into()))
            }
        };
        spawns.push(Spawn {
            settings: settings(g, c),
            group: g.clone(),
            hash,
            fd,
            uid,
            gid,
            groups: account.groups,
            home: g.home.clone().unwrap_or(home),
        });
    }
    c.groups = groups;

    // The previous generation's processes, and the sockets no group uses any more.
    let (old_pids, unused) = with_retained(|r| {
        let old: Vec<(i32, u64)> = r.pids.iter().filter(|p| p.pid > 0).map(|p| (p.pid, p.hash)).collect();
        for p in r.pids.iter_mut() {
            p.pid = 0;
        }
        let mut unused = Vec::new();
        for s in r.sockets.iter_mut().filter(|s| s.hash != 0) {
            if !spawns.iter().any(|sp| sp.hash == s.hash) {
                unused
                    .push((s.fd, PathBuf::from(String::from_utf8_lossy(&s.path[..s.path_len as usize]).into_owned())));
                s.hash = 0;
            }
        }
        (old, unused)
    });

    let mut st =
        State { parent, server, groups: Vec::new(), keys: HashMap::new(), next_key: 0, ending: false, callback };
    for (gi, sp) in spawns.into_iter().enumerate() {
        let sp = Arc::new(sp);
        let mut slots = Vec::new();
        for si in 0..sp.group.processes as usize {
            let pid = fork_daemon(&st, &sp, Duration::ZERO)?;
            let key = st.key();
            register_other_child(pool, pid, key, callback);
            st.keys.insert(key, (Member::Current { group: gi, slot: si }, pid));
            slots.push(Slot { pid, key, started: Instant::now(), quick_failures: 0 });
        }
        st.groups.push((sp, slots));
    }
    // New daemons are on their way: the old ones stop accepting and finish their requests.
    for (pid, hash) in old_pids {
        let name = st.groups.iter().find(|(sp, _)| sp.hash == hash).map(|(sp, _)| sp.group.name.clone());
        let name = name.unwrap_or_else(|| "(removed or changed)".into());
        if os::kill(pid, libc::SIGTERM) {
            st.log(Level::Notice, &format!("daemon process {pid} of group {name:?} retires (Apache restarted)"));
            let key = st.key();
            register_other_child(pool, pid, key, callback);
            st.keys.insert(key, (Member::Retiring { group: name }, pid));
        }
    }
    for (fd, path) in unused {
        os::close(fd);
        let _ = std::fs::remove_file(&path);
        st.log(
            Level::Notice,
            &format!("closed the socket {} (its process group changed or was removed)", path.display()),
        );
    }
    *lock() = Some(st);
    Ok(())
}

/// Fork one daemon of `sp`; the child never returns from here.
fn fork_daemon(st: &State, sp: &Arc<Spawn>, delay: Duration) -> Result<i32, String> {
    match os::fork() {
        Err(e) => Err(format!("cannot fork a daemon process of group {:?}: {e}", sp.group.name)),
        Ok(Fork::Parent(pid)) => {
            let how =
                if delay.is_zero() { String::new() } else { format!(", starting in {:.2} s", delay.as_secs_f64()) };
            st.log(
                Level::Notice,
                &format!(
                    "daemon process {pid} of group {:?} forked (processes={}, threads={}, uid {}{how})",
                    sp.group.name, sp.group.processes, sp.group.threads, sp.uid
                ),
            );
            Ok(pid)
        }
        Ok(Fork::Child) => {
            // From here on this is the daemon; a panic must not unwind into httpd's frames.
            let code = crate::ffi::guard::guard("daemon process", 1, || run_daemon(sp, st.parent, st.server, delay));
            os::exit_now(code)
        }
    }
}

/// The daemon's life (shared with nginx's keeper: `daemon::launch`): become its user,
/// then serve until told to stop. Returns its exit status (0: a planned exit, 1: a
/// failure).
fn run_daemon(sp: &Spawn, parent: i32, server: &'static Server, delay: Duration) -> i32 {
    os::close_sockets_except(sp.fd);
    let g = &sp.group;
    let launch = Launch {
        settings: sp.settings.clone(),
        fd: sp.fd,
        socket: g.socket.clone(),
        uid: sp.uid,
        gid: sp.gid,
        groups: sp.groups.clone(),
        home: sp.home.clone(),
        home_required: g.home.is_some(),
        umask: g.umask,
        lang: g.lang.clone(),
        locale: g.locale.clone(),
        title: g.title(),
        memory_limit: g.memory_limit,
        virtual_memory_limit: g.virtual_memory_limit,
        cpu_time_limit: g.cpu_time_limit,
    };
    daemon::launch::run(&launch, parent, Arc::new(ServerLog::new(server)), delay)
}

/// The MPM reports on a daemon (`APR_OC_REASON_*`). A dead daemon of the current
/// generation gets a replacement, after the back-off if it failed quickly.
pub fn on_event(pool: &Pool, key: usize, reason: u32, status: i32) {
    let mut guard = lock();
    let Some(st) = guard.as_mut() else { return };
    if reason == APR_OC_REASON_RESTART {
        st.ending = true; // the MPM is reclaiming its processes: stop or restart
        return;
    }
    if reason != APR_OC_REASON_DEATH && reason != APR_OC_REASON_LOST {
        return;
    }
    let Some((member, pid)) = st.keys.remove(&key) else { return };
    // Ends the registration (its callback is called with UNREGISTER, which does nothing).
    unregister_other_child(key);
    // `status` is APR's exit code or signal number, not a raw wait status.
    let how = os::describe_apr_exit_code(if reason == APR_OC_REASON_LOST { -1 } else { status });
    let (gi, si) = match member {
        Member::Retiring { group } => {
            st.log(Level::Notice, &format!("retired daemon process {pid} of group {group:?} exited ({how})"));
            return;
        }
        Member::Current { group, slot } => (group, slot),
    };
    let sp = st.groups[gi].0.clone();
    if st.ending || process::mpm_stopping() {
        st.log(Level::Notice, &format!("daemon process {pid} of group {:?} exited ({how})", sp.group.name));
        return;
    }
    let slot = &mut st.groups[gi].1[si];
    let quick = slot.started.elapsed() < QUICK && status != 0;
    slot.quick_failures = if quick { slot.quick_failures + 1 } else { 0 };
    let delay = match slot.quick_failures {
        0 => Duration::ZERO,
        n => (Duration::from_millis(250) * 2u32.saturating_pow(n.min(8) - 1)).min(MAX_BACKOFF),
    };
    st.log(
        if status == 0 { Level::Notice } else { Level::Error },
        &format!(
            "daemon process {pid} of group {:?} exited ({how}); starting a replacement{}",
            sp.group.name,
            if delay.is_zero() { String::new() } else { format!(" in {:.2} s (back-off)", delay.as_secs_f64()) }
        ),
    );
    match fork_daemon(st, &sp, delay) {
        Ok(new) => {
            let k = st.key();
            register_other_child(pool, new, k, st.callback);
            st.keys.insert(k, (Member::Current { group: gi, slot: si }, new));
            let slot = &mut st.groups[gi].1[si];
            slot.pid = new;
            slot.key = k;
            slot.started = Instant::now() + delay;
        }
        Err(e) => st.log(Level::Error, &e),
    }
}

/// The configuration pool is going away. On a restart the daemons keep serving until the
/// next generation's are forked (their pids and sockets stay in retained memory); on stop
/// they get SIGTERM, then SIGKILL after the longest shutdown-timeout, and the sockets go.
pub fn on_config_cleared(exiting: bool) {
    let Some(st) = lock().take() else { return };
    let current: Vec<(i32, u64)> =
        st.groups.iter().flat_map(|(sp, slots)| slots.iter().map(|s| (s.pid, sp.hash))).collect();
    let retiring: Vec<i32> =
        st.keys.values().filter(|(m, _)| matches!(m, Member::Retiring { .. })).map(|(_, p)| *p).collect();
    if !exiting {
        with_retained(|r| {
            let all = current.iter().copied().chain(retiring.iter().map(|&p| (p, 0)));
            for ((pid, hash), slot) in all.zip(r.pids.iter_mut()) {
                slot.pid = pid;
                slot.hash = hash;
            }
        });
        return;
    }
    let pids: Vec<i32> = current.iter().map(|c| c.0).chain(retiring).collect();
    for &p in &pids {
        os::kill(p, libc::SIGTERM);
    }
    let wait = st.groups.iter().map(|(sp, _)| sp.group.shutdown_timeout).max().unwrap_or(Duration::from_secs(5));
    let left = os::wait_all(&pids, wait);
    for &p in &left {
        os::kill(p, libc::SIGKILL);
    }
    let left = os::wait_all(&left, Duration::from_secs(2));
    let sockets = with_retained(|r| {
        let v: Vec<(RawFd, PathBuf)> = r
            .sockets
            .iter()
            .filter(|s| s.hash != 0)
            .map(|s| (s.fd, PathBuf::from(String::from_utf8_lossy(&s.path[..s.path_len as usize]).into_owned())))
            .collect();
        for s in r.sockets.iter_mut() {
            s.hash = 0;
        }
        v
    });
    for (fd, path) in sockets {
        os::close(fd);
        let _ = std::fs::remove_file(path);
    }
    let msg = if left.is_empty() {
        format!("oxwsgi: {} daemon process(es) stopped", pids.len())
    } else {
        format!("oxwsgi: daemon processes {left:?} did not stop after SIGKILL")
    };
    st.server.log(Level::Notice, &msg);
}

/// In a child of Apache's MPM: close the daemon sockets inherited from the parent (the
/// child connects by path; only the parent and the daemons hold the listening sockets).
pub fn close_inherited_sockets() {
    let fds: Vec<RawFd> = with_retained(|r| r.sockets.iter().filter(|s| s.hash != 0).map(|s| s.fd).collect());
    for fd in fds {
        os::close(fd);
    }
}
