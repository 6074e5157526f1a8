//! Daemon processes on nginx, the master's side (design: docs/nginx-daemon.md).
//!
//! - **init_module** (the master, each time it loads a configuration; never for `nginx
//!   -t`): bind each group's socket, or keep the one of the previous configuration when
//!   the group's definition did not change, then fork a **keeper**
//!   ([`crate::daemon::keeper`]) for this configuration. The keeper forks the daemons and
//!   restarts them; the master never starts Python, nor does the keeper.
//! - **The configuration's pool cleanup** (the master destroys the old cycle's pool right
//!   after the new one is initialised; on exit, after `exit_master`): tell that keeper to
//!   drain (`D`, a reload) or stop (`S`, nginx exits) through its pipe, and close the
//!   sockets no group uses any more.
//! - **A killed master**: the keeper sees end-of-file on its pipe (the master held the
//!   only write end; workers close their copies) and stops everything.
//! - **Workers and helpers** close the keepers' pipes and the group sockets they
//!   inherited (`child_init`): they connect by path.

use std::ffi::c_void;
use std::io::Write;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use oxwsgi_checks::Account;

use super::daemon_client::Target;
use super::daemon_conf::daemons_in;
use super::io::CycleLog;
use super::ngx::{self, ERROR, OK};
use crate::core::runtime::RuntimeConfig;
use crate::core::{Level, LogSink};
use crate::daemon::GroupSettings;
use crate::daemon::accounts::{fnv64, lookup_user};
use crate::daemon::client::ClientTimeouts;
use crate::daemon::definition::{DEFAULT_SOCKET_TIMEOUT, Definition};
use crate::daemon::keeper;
use crate::daemon::launch::Launch;
use crate::ffi::guard::guard;
use crate::ffi::ngx::*;
use crate::ffi::os::{self, Fork};

/// A group socket the master holds (it outlives configurations while its group does).
struct Socket {
    hash: u64,
    fd: RawFd,
    path: PathBuf,
}

/// A keeper and the write end of its pipe.
struct KeeperHandle {
    pid: i32,
    control: Option<OwnedFd>,
}

/// The master's daemon state. The module stays loaded across reloads (the new cycle loads
/// it before the old one unloads it), so this survives them.
struct Master {
    sockets: Vec<Socket>,
    /// The hashes of the newest configuration's groups.
    current: Vec<u64>,
    keepers: Vec<KeeperHandle>,
    /// `exit_master` ran: the next pool cleanup is the last one.
    exiting: bool,
    /// Where the newest configuration's groups listen (workers inherit it).
    targets: Vec<Target>,
    /// The pid that first loaded a configuration (names the sockets; the master's pid
    /// changes when nginx daemonizes after the first load).
    creator: u32,
}

static MASTER: Mutex<Master> = Mutex::new(Master {
    sockets: Vec::new(),
    current: Vec::new(),
    keepers: Vec::new(),
    exiting: false,
    targets: Vec::new(),
    creator: 0,
});

fn lock() -> MutexGuard<'static, Master> {
    MASTER.lock().unwrap_or_else(|p| p.into_inner())
}

/// nginx's error log for the keeper and the daemons, with nginx's cached time refreshed
/// first (they have no event loop that would refresh it).
///
/// `nginx -s reopen` (log rotation) reaches the master and the workers only: before
/// writing, at most once a second, a log file that was replaced at its path is opened
/// again onto the same descriptor. The master makes the new file and gives it to the
/// workers' user, so daemons running as that user can open it; others keep the old file.
struct DaemonLog {
    log: CycleLog,
    checked: Mutex<Instant>,
}

impl DaemonLog {
    fn new(log: CycleLog) -> DaemonLog {
        DaemonLog { log, checked: Mutex::new(Instant::now()) }
    }

    fn reopen_rotated(&self) {
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        *checked = Instant::now();
        for (fd, path) in self.log.files() {
            // A failure leaves the old file in use: there is nowhere else to say so.
            let _ = os::reopen_if_replaced(fd, &path);
        }
    }
}

impl LogSink for DaemonLog {
    fn log(&self, level: Level, msg: &str) {
        self.reopen_rotated();
        ngx::time_update();
        self.log.log(level, msg);
    }
}

/// Bind a group's socket: mode 0600 (umask 0177 during the bind, so it never exists with
/// wider permissions), owned by the workers' user, with the group's backlog.
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

/// What one group's daemons get.
fn launch(g: &Definition, worker: &Account, global_home: Option<PathBuf>, nginx: &str, socket: &Socket) -> Launch {
    let account = g.account(worker);
    let mut runtime = RuntimeConfig { python_path: g.python_path.clone(), ..Default::default() };
    runtime.start.home = g.python_home.clone().or(global_home);
    let home = match &g.home {
        Some(h) => h.clone(),
        None => lookup_user(&format!("#{}", account.uid)).map(|u| u.home).unwrap_or_else(|| "/".into()),
    };
    Launch {
        settings: GroupSettings {
            name: g.name.clone(),
            processes: g.processes,
            threads: g.threads,
            runtime,
            imports: Vec::new(),
            server_software: format!("{nginx} oxwsgi/{}", env!("CARGO_PKG_VERSION")),
            maximum_requests: g.maximum_requests,
            request_timeout: g.request_timeout,
            inactivity_timeout: g.inactivity_timeout,
            restart_interval: g.restart_interval,
            graceful_timeout: g.graceful_timeout,
            shutdown_timeout: g.shutdown_timeout,
            deadlock_timeout: g.deadlock_timeout,
        },
        fd: socket.fd,
        socket: socket.path.clone(),
        uid: account.uid,
        gid: account.gid,
        groups: account.groups,
        home,
        home_required: g.home.is_some(),
        umask: g.umask,
        lang: g.lang.clone(),
        locale: g.locale.clone(),
        title: g.display_name.as_ref().map(|d| d.replace("%{GROUP}", &g.name)),
        memory_limit: g.memory_limit,
        virtual_memory_limit: g.virtual_memory_limit,
        cpu_time_limit: g.cpu_time_limit,
    }
}

/// The accounts nginx's workers run as (the `user` directive; else the master's own).
fn worker_account(cycle: *mut ngx_cycle_t) -> Account {
    // SAFETY: init_module runs on a configured cycle.
    match unsafe { ngx::configured_worker_ids(cycle) } {
        Some((uid, gid)) => Account::by_uid(uid, gid),
        None => Account::by_uid(os::euid(), os::egid()),
    }
}

/// The pool cleanup of a configuration that has a keeper: drain or stop it.
unsafe extern "C" fn end_keeper(data: *mut c_void) {
    guard("the end of a configuration's daemons", (), || {
        let pid = data as usize as i32;
        let mut m = lock();
        let byte = if m.exiting { b'S' } else { b'D' };
        if let Some(k) = m.keepers.iter_mut().find(|k| k.pid == pid) {
            if let Some(w) = k.control.take() {
                let _ = std::fs::File::from(w).write_all(&[byte]);
            }
        }
        m.keepers.retain(|k| k.pid != pid);
        let exiting = m.exiting;
        let current = m.current.clone();
        m.sockets.retain(|s| {
            let keep = !exiting && current.contains(&s.hash);
            if !keep {
                os::close(s.fd);
                let _ = std::fs::remove_file(&s.path);
            }
            keep
        });
    })
}

/// Start this configuration's daemons; `Err` fails the (re)load with the message.
fn start(cycle: *mut ngx_cycle_t) -> Result<(), String> {
    let mut m = lock();
    if m.creator == 0 {
        m.creator = std::process::id();
    }
    // SAFETY: init_module runs on a configured cycle, whose pool owns what it returns.
    let mcf = unsafe { ngx::main_conf_of(cycle) };
    // SAFETY: as above.
    let groups = mcf.and_then(|c| unsafe { daemons_in(c) }).map(|d| &d.groups[..]).unwrap_or(&[]);
    m.current.clear();
    m.targets.clear();
    if groups.is_empty() {
        return Ok(());
    }
    let mcf = mcf.ok_or("daemon groups without an http block")?;
    let global_home = (mcf.python_home.len > 0).then(|| PathBuf::from(super::conf::text(&mcf.python_home)));
    // SAFETY: as above.
    let dir = unsafe { ngx::pid_dir(cycle) }.ok_or("cannot tell the directory of nginx's pid file")?;
    let worker = worker_account(cycle);
    // SAFETY: a static string of the shim.
    let nginx = unsafe { std::ffi::CStr::from_ptr(ngx_http_oxwsgi_nginx_version) }.to_string_lossy().into_owned();
    let mut launches = Vec::new();
    for (g, at) in groups {
        let hash = fnv64(&[g.text.as_bytes(), dir.as_os_str().as_encoded_bytes(), &worker.uid.to_le_bytes()]).max(1);
        if !m.sockets.iter().any(|s| s.hash == hash) {
            let path = dir.join(format!("oxwsgi.{}.{hash:016x}.sock", m.creator));
            if path.as_os_str().len() >= 108 {
                return Err(format!(
                    "wsgi_daemon_process {:?} ({at}): the socket path {} is longer than 107 bytes: move nginx's pid \
                     file to a shorter directory",
                    g.name,
                    path.display()
                ));
            }
            let fd = bind(&path, worker.uid, g.listen_backlog).map_err(|e| format!("group {:?}: {e}", g.name))?;
            m.sockets.push(Socket { hash, fd, path });
        }
        m.current.push(hash);
        let socket = m.sockets.iter().find(|s| s.hash == hash).ok_or("socket just bound is missing")?;
        launches.push(launch(g, &worker, global_home.clone(), &nginx, socket));
        let path = socket.path.clone();
        m.targets.push(Target {
            group: g.name.clone(),
            socket: path,
            timeouts: ClientTimeouts {
                connect: g.connect_timeout,
                socket: g.socket_timeout.unwrap_or(DEFAULT_SOCKET_TIMEOUT),
                queue: g.queue_timeout,
            },
        });
    }
    // SAFETY: the cycle's log lives in its pool, which a forked keeper never frees.
    let log: Arc<dyn LogSink> = Arc::new(DaemonLog::new(unsafe { CycleLog::new(ngx::cycle_log(cycle)) }));
    let (read, write) = os::pipe().map_err(|e| format!("cannot create the keeper's pipe: {e}"))?;
    let pid = match os::fork().map_err(|e| format!("cannot fork the daemons' keeper: {e}"))? {
        Fork::Child => {
            // The keeper holds its own read end and its groups' sockets only.
            drop(write);
            for k in m.keepers.iter_mut() {
                drop(k.control.take());
            }
            let keep: Vec<RawFd> = launches.iter().map(|l| l.fd).collect();
            os::close_sockets_except_all(&keep);
            drop(m);
            let code = guard("the daemons' keeper", 1, || keeper::run(launches, read, log, ngx::set_pid));
            os::exit_now(code)
        }
        Fork::Parent(pid) => pid,
    };
    drop(read);
    m.keepers.push(KeeperHandle { pid, control: Some(write) });
    drop(m);
    // SAFETY: the cycle's pool is live; the cleanup runs when nginx destroys it.
    let cln = unsafe { ngx_pool_cleanup_add(ngx::cycle_pool(cycle), 0) };
    if cln.is_null() {
        return Err("cannot register the keeper's cleanup".into());
    }
    // SAFETY: cln is the fresh cleanup record; data carries the keeper's pid.
    unsafe {
        (*cln).handler = Some(end_keeper);
        (*cln).data = pid as usize as *mut c_void;
    }
    Ok(())
}

/// `init_module`: the master loaded a configuration (also the first one, before nginx
/// daemonizes; also `nginx -t`, which starts nothing).
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_init_module(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    guard("init_module", ERROR, || {
        if ngx::process_kind().testing {
            return OK;
        }
        match start(cycle) {
            Ok(()) => OK,
            Err(e) => {
                // SAFETY: the cycle's log is live during init_module.
                let log = unsafe { CycleLog::new(ngx::cycle_log(cycle)) };
                log.log(Level::Critical, &format!("oxwsgi: daemon mode: {e}"));
                ERROR
            }
        }
    })
}

/// `exit_master`: nginx exits; the pool cleanup that follows stops the keeper.
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_exit_master(_cycle: *mut ngx_cycle_t) {
    guard("exit_master", (), || lock().exiting = true)
}

/// In a worker or cache helper, first thing: drop what belongs to the master and the
/// keepers (the pipes, whose end-of-file tells a keeper that the master is gone, and the
/// group sockets: workers connect by path).
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_child_init() {
    guard("child_init", (), || {
        if !ngx::process_kind().child {
            return;
        }
        let mut m = lock();
        m.keepers.clear();
        for s in m.sockets.drain(..) {
            os::close(s.fd);
        }
    })
}

/// Where a group of this process's configuration listens (a worker: its cycle's groups).
pub fn target(group: &[u8]) -> Option<Target> {
    lock().targets.iter().find(|t| t.group.as_bytes() == group).cloned()
}
