//! mod_wsgi's daemon-mode directives: `WSGIDaemonProcess name [options]`, the
//! `process-group` a request runs in (`WSGIProcessGroup`, `process-group=`),
//! `WSGISocketPrefix` and `WSGIRestrictEmbedded`.
//!
//! Parsing and the configtest checks only; starting the processes is `daemons.rs`.
//! Every option mod_wsgi documents is either honoured, accepted with its meaning written
//! in docs/daemon-mode.md, or refused at configtest by name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::runtime::check_python_home;
use oxwsgi_checks::{Account, can_read};

pub use crate::daemon::accounts::{User, fnv64, lookup_group, lookup_user};

/// One `WSGIDaemonProcess`.
#[derive(Clone, Debug)]
pub struct DaemonGroup {
    pub name: String,
    /// The directive's arguments as written (a changed definition gets a new socket).
    pub definition: String,
    pub processes: u32,
    pub threads: u32,
    /// `None`: the user and group of Apache's children (`User`/`Group`), as in mod_wsgi.
    pub user: Option<User>,
    pub group: Option<(String, u32)>,
    pub supplementary_groups: Vec<u32>,
    pub umask: Option<u32>,
    pub home: Option<PathBuf>,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    pub lang: Option<String>,
    pub locale: Option<String>,
    pub display_name: Option<String>,
    pub maximum_requests: Option<u64>,
    pub restart_interval: Option<Duration>,
    pub inactivity_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub graceful_timeout: Duration,
    pub eviction_timeout: Option<Duration>,
    pub shutdown_timeout: Duration,
    pub deadlock_timeout: Option<Duration>,
    pub queue_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    /// `None`: Apache's `Timeout`.
    pub socket_timeout: Option<Duration>,
    pub listen_backlog: u32,
    pub memory_limit: Option<u64>,
    pub virtual_memory_limit: Option<u64>,
    pub cpu_time_limit: Option<u64>,
    /// Scripts preloaded in each process of the group (`WSGIImportScript process-group=`,
    /// and `WSGIScriptAlias` with both `process-group=` and `application-group=`).
    pub imports: Vec<PathBuf>,
    /// The group's socket (set when the parent creates it, after configuration).
    pub socket: PathBuf,
    /// Apache's `Timeout`, the default socket-timeout (set with the socket).
    pub server_timeout: Duration,
    /// Where the group was defined: `None` at global scope, else the virtual host (its
    /// key, see `config::server_key`, and its `ServerName`, known once the configuration
    /// is read). As in mod_wsgi, only requests of that virtual host, or of one with the
    /// same `ServerName`, may select a group defined in a virtual host.
    pub vhost: Option<(usize, Option<String>)>,
}

/// mod_wsgi's defaults (docs/configuration-directives/WSGIDaemonProcess.rst).
impl DaemonGroup {
    fn new(name: &str, definition: String) -> DaemonGroup {
        DaemonGroup {
            vhost: None,
            name: name.to_string(),
            definition,
            processes: 1,
            threads: 15,
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            umask: None,
            home: None,
            python_home: None,
            python_path: Vec::new(),
            lang: None,
            locale: None,
            display_name: None,
            maximum_requests: None,
            restart_interval: None,
            inactivity_timeout: None,
            request_timeout: None,
            graceful_timeout: Duration::from_secs(15),
            eviction_timeout: None,
            shutdown_timeout: Duration::from_secs(5),
            deadlock_timeout: Some(Duration::from_secs(300)),
            queue_timeout: None,
            connect_timeout: Duration::from_secs(15),
            socket_timeout: None,
            listen_backlog: 100,
            memory_limit: None,
            virtual_memory_limit: None,
            cpu_time_limit: None,
            imports: Vec::new(),
            socket: PathBuf::new(),
            server_timeout: Duration::from_secs(300),
        }
    }

    /// How Apache's children wait for this group.
    pub fn client_timeouts(&self) -> crate::daemon::client::ClientTimeouts {
        crate::daemon::client::ClientTimeouts {
            connect: self.connect_timeout,
            socket: self.socket_timeout.unwrap_or(self.server_timeout),
            queue: self.queue_timeout,
        }
    }

    /// The process title: `display-name`, with `%{GROUP}` as mod_wsgi spells it.
    pub fn title(&self) -> Option<String> {
        self.display_name
            .as_ref()
            .map(|d| if d == "%{GROUP}" { format!("(wsgi:{})", self.name) } else { d.replace("%{GROUP}", &self.name) })
    }
}

/// mod_wsgi 4.9's options oxwsgi does not implement: refused by name, with why and what
/// to do instead (docs/mod_wsgi-migration.md has the same list).
const REFUSED: &[(&str, &str)] = &[
    (
        "script-user",
        "mod_wsgi refuses scripts not owned by that user; ignoring it would serve them. Own the scripts with \
         the group's user= and keep others from writing to their directory",
    ),
    ("script-group", "as script-user, for the scripts' group; remove it and restrict the directory's permissions"),
    ("chroot", "run Apache in a container or with systemd's RootDirectory= instead"),
    ("cpu-priority", "set the priority of Apache itself (systemd Nice=, or nice when starting it)"),
    ("socket-user", "the group's socket is owned by Apache's User with mode 0600; only Apache's children can connect"),
    ("send-buffer-size", "the daemon socket uses the kernel's buffer sizes; remove it"),
    ("receive-buffer-size", "the daemon socket uses the kernel's buffer sizes; remove it"),
    (
        "startup-timeout",
        "a process whose start-up hangs is not restarted for it; use request-timeout and deadlock-timeout",
    ),
    ("response-socket-timeout", "socket-timeout applies to the response as well; remove it or set socket-timeout"),
    ("server-metrics", "mod_wsgi.server_metrics() answers None in a daemon process; remove it"),
    ("newrelic-config-file", "initialize the agent from the WSGI script (newrelic.agent.initialize())"),
    ("newrelic-environment", "initialize the agent from the WSGI script (newrelic.agent.initialize())"),
];

/// Options of later mod_wsgi releases (or misspellings seen in the wild) that oxwsgi does
/// not implement: refused by name.
const NOT_SUPPORTED: &[&str] = &[
    "startup-time-limit",
    "error-override",
    "proxy-buffer-size",
    "max-requests-per-child",
    "cpu-time-limit-soft",
    "request-read-timeout",
    "shutdown-on-request",
    "name",
    "py-home",
    "python-homes",
    "maximum-requests-per-process",
    "threads-per-process",
    "graceful-shutdown",
    "enable-sendfile",
    "map-head-to-get",
    "trusted-proxy-headers",
    "trusted-proxies",
    "preload",
];

fn seconds(opt: &str, v: &str) -> Result<Duration, String> {
    let n: f64 = v
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("WSGIDaemonProcess: {opt} must be a number of seconds, not {v:?}"))?;
    Ok(Duration::from_secs_f64(n))
}

/// A timeout where 0 means "none", as in mod_wsgi.
fn opt_seconds(opt: &str, v: &str) -> Result<Option<Duration>, String> {
    let d = seconds(opt, v)?;
    Ok((!d.is_zero()).then_some(d))
}

fn number(opt: &str, v: &str, min: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| format!("WSGIDaemonProcess: {opt} must be a whole number of at least {min}, not {v:?}"))
}

/// Parse `WSGIDaemonProcess name [options]`. `worker` is the account Apache's children
/// run as (the default user of the daemons), `global_home` the `WSGIPythonHome` (the
/// default python-home).
pub fn parse(args: &[String], worker: &Account, global_home: Option<&Path>) -> Result<DaemonGroup, String> {
    let d = "WSGIDaemonProcess";
    let Some(name) = args.first() else {
        return Err(format!("{d} takes a group name and options, e.g. {d} mysite processes=2 threads=15"));
    };
    if name.is_empty() || name.contains('=') || name.starts_with("%{") {
        return Err(format!("{d}: {name:?} is not a valid process group name"));
    }
    let mut g = DaemonGroup::new(name, args.join(" "));
    for a in &args[1..] {
        let Some((k, v)) = a.split_once('=') else {
            return Err(format!("{d} {name}: unexpected argument {a:?} (options are key=value)"));
        };
        let k = k.to_ascii_lowercase();
        match k.as_str() {
            "processes" => g.processes = number(&k, v, 1)? as u32,
            "threads" => g.threads = number(&k, v, 1)? as u32,
            "user" => g.user = Some(lookup_user(v).ok_or_else(|| format!("{d} {name}: user {v:?} does not exist"))?),
            "group" => {
                g.group = Some((
                    v.to_string(),
                    lookup_group(v).ok_or_else(|| format!("{d} {name}: group {v:?} does not exist"))?,
                ))
            }
            "supplementary-groups" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    let gid = lookup_group(s)
                        .ok_or_else(|| format!("{d} {name}: supplementary group {s:?} does not exist"))?;
                    g.supplementary_groups.push(gid);
                }
            }
            "umask" => {
                g.umask = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| format!("{d} {name}: umask must be octal, e.g. 0007, not {v:?}"))?,
                )
            }
            "home" => {
                let p = PathBuf::from(v);
                if !p.is_dir() {
                    return Err(format!("{d} {name}: home {v} is not a directory"));
                }
                g.home = Some(p);
            }
            "python-home" => g.python_home = Some(PathBuf::from(v)),
            "python-path" => {
                for p in v.split(':').filter(|p| !p.is_empty()) {
                    let p = PathBuf::from(p);
                    if !p.is_dir() {
                        return Err(format!("{d} {name}: python-path {} is not a directory", p.display()));
                    }
                    g.python_path.push(p);
                }
            }
            // Eggs are a setuptools cache directory; nothing in Python 3.11 needs it.
            "python-eggs" => {}
            "lang" => g.lang = Some(v.to_string()),
            "locale" => g.locale = Some(v.to_string()),
            "display-name" => g.display_name = Some(v.to_string()),
            "maximum-requests" => g.maximum_requests = Some(number(&k, v, 0)?).filter(|n| *n > 0),
            "restart-interval" => g.restart_interval = opt_seconds(&k, v)?,
            "inactivity-timeout" => g.inactivity_timeout = opt_seconds(&k, v)?,
            "request-timeout" => g.request_timeout = opt_seconds(&k, v)?,
            "graceful-timeout" => g.graceful_timeout = seconds(&k, v)?,
            "eviction-timeout" => g.eviction_timeout = opt_seconds(&k, v)?,
            "shutdown-timeout" => g.shutdown_timeout = seconds(&k, v)?,
            "deadlock-timeout" => g.deadlock_timeout = opt_seconds(&k, v)?,
            "queue-timeout" => g.queue_timeout = opt_seconds(&k, v)?,
            "connect-timeout" => g.connect_timeout = seconds(&k, v)?,
            "socket-timeout" => g.socket_timeout = opt_seconds(&k, v)?,
            "listen-backlog" => g.listen_backlog = number(&k, v, 1)? as u32,
            // Accepted, documented in docs/daemon-mode.md: the protocol has no fixed-size
            // header buffer, response data streams in bounded frames, and thread stacks
            // are the runtime's default.
            "header-buffer-size" | "response-buffer-size" | "stack-size" => {
                number(&k, v, 1)?;
            }
            "memory-limit" => g.memory_limit = Some(number(&k, v, 1)?),
            "virtual-memory-limit" => g.virtual_memory_limit = Some(number(&k, v, 1)?),
            "cpu-time-limit" => g.cpu_time_limit = Some(number(&k, v, 1)?),
            _ if REFUSED.iter().any(|(o, _)| *o == k) => {
                let why = REFUSED.iter().find(|(o, _)| *o == k).map_or("", |(_, w)| *w);
                return Err(format!("{d} {name}: option {k:?} is not supported by oxwsgi: {why}"));
            }
            _ if NOT_SUPPORTED.contains(&k.as_str()) => {
                return Err(format!(
                    "{d} {name}: option {k:?} is not supported by oxwsgi; remove it (see docs/daemon-mode.md)"
                ));
            }
            _ => return Err(format!("{d} {name}: unknown option {k:?}")),
        }
    }
    let home = g.python_home.clone().or_else(|| global_home.map(Path::to_path_buf));
    if let Some(home) = home {
        let found = check_python_home(&home).map_err(|e| format!("{d} {name}: python-home: {e}"))?;
        let who = daemon_account(&g, worker);
        for dir in found.needs_access() {
            can_read(dir, &who).map_err(|e| {
                format!("{d} {name}: python-home {} is not accessible to the daemon's user: {e}", home.display())
            })?;
        }
    }
    Ok(g)
}

/// The account a group's daemons run as.
pub fn daemon_account(g: &DaemonGroup, worker: &Account) -> Account {
    match &g.user {
        Some(u) => {
            let gid = g.group.as_ref().map_or(u.gid, |x| x.1);
            let mut a = Account::new(&u.name, u.uid, gid);
            a.groups.extend(g.supplementary_groups.iter().copied());
            a
        }
        None => {
            let mut a = worker.clone();
            if let Some((_, gid)) = &g.group {
                a.gid = *gid;
                a.groups.push(*gid);
            }
            a.groups.extend(g.supplementary_groups.iter().copied());
            a
        }
    }
}

/// What a `process-group` value names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessGroup<'a> {
    /// `%{GLOBAL}` or empty: embedded mode, in Apache's children.
    Embedded,
    /// `%{ENV:variable}`: the variable's value when the request runs.
    Env(&'a str),
    /// A `WSGIDaemonProcess` group.
    Named(&'a str),
}

/// Read a `process-group` value; the `%{...}` forms mod_wsgi has for application groups
/// only (`%{RESOURCE}`, `%{SERVER}`, `%{HOST}`) are refused.
pub fn process_group(v: &str) -> Result<ProcessGroup<'_>, String> {
    if v.is_empty() || v == "%{GLOBAL}" {
        return Ok(ProcessGroup::Embedded);
    }
    if let Some(var) = v.strip_prefix("%{ENV:").and_then(|r| r.strip_suffix('}')) {
        if var.is_empty() {
            return Err("process group %{ENV:} names no variable".into());
        }
        return Ok(ProcessGroup::Env(var));
    }
    if v.starts_with("%{") {
        return Err(format!("process group {v:?} is not supported: use a name, %{{GLOBAL}} or %{{ENV:variable}}"));
    }
    Ok(ProcessGroup::Named(v))
}
