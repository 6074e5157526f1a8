//! mod_wsgi's daemon-mode directives: `WSGIDaemonProcess name [options]`, the
//! `process-group` a request runs in (`WSGIProcessGroup`, `process-group=`),
//! `WSGISocketPrefix` and `WSGIRestrictEmbedded`.
//!
//! Parsing and the configtest checks only; starting the processes is `daemons.rs`.
//! Every option mod_wsgi documents is either honoured, accepted with its meaning written
//! in docs/daemon-mode.md, or refused at configtest by name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::daemon::definition::{Definition, Syntax, check_home, common_option};
use oxwsgi_checks::Account;

pub use crate::daemon::accounts::{fnv64, lookup_user};

/// One `WSGIDaemonProcess`: the options it shares with nginx's `wsgi_daemon_process`
/// ([`Definition`], read through `Deref`), and what is Apache's own.
#[derive(Clone, Debug)]
pub struct DaemonGroup {
    pub def: Definition,
    pub eviction_timeout: Option<Duration>,
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

impl std::ops::Deref for DaemonGroup {
    type Target = Definition;
    fn deref(&self) -> &Definition {
        &self.def
    }
}

impl std::ops::DerefMut for DaemonGroup {
    fn deref_mut(&mut self) -> &mut Definition {
        &mut self.def
    }
}

/// mod_wsgi's defaults (docs/configuration-directives/WSGIDaemonProcess.rst).
impl DaemonGroup {
    fn new(name: &str, definition: String) -> DaemonGroup {
        DaemonGroup {
            def: Definition::new(name, definition),
            eviction_timeout: None,
            imports: Vec::new(),
            socket: PathBuf::new(),
            server_timeout: Duration::from_secs(300),
            vhost: None,
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

/// mod_wsgi's spelling: seconds and plain numbers, messages naming the directive.
struct Apache<'a> {
    name: &'a str,
}

impl Syntax for Apache<'_> {
    fn at(&self, msg: String) -> String {
        format!("WSGIDaemonProcess {}: {msg}", self.name)
    }
    fn count(&self, k: &str, v: &str, min: u64) -> Result<u64, String> {
        number(k, v, min)
    }
    fn time(&self, k: &str, v: &str) -> Result<Duration, String> {
        seconds(k, v)
    }
    fn size(&self, k: &str, v: &str) -> Result<u64, String> {
        number(k, v, 1)
    }
    fn dir(&self, k: &str, v: &str) -> Result<PathBuf, String> {
        let p = PathBuf::from(v);
        if !p.is_dir() {
            return Err(self.at(format!("{k} {v} is not a directory")));
        }
        Ok(p)
    }
    fn umask_error(&self, v: &str) -> String {
        self.at(format!("umask must be octal, e.g. 0007, not {v:?}"))
    }
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
    let syntax = Apache { name };
    for a in &args[1..] {
        let Some((k, v)) = a.split_once('=') else {
            return Err(format!("{d} {name}: unexpected argument {a:?} (options are key=value)"));
        };
        let k = k.to_ascii_lowercase();
        // mod_wsgi spells options with '-' only: "python_home" is unknown here.
        if !k.contains('_') && common_option(&mut g.def, &k.replace('-', "_"), &k, v, &syntax)? {
            continue;
        }
        match k.as_str() {
            "python-home" => g.python_home = Some(PathBuf::from(v)),
            // Eggs are a setuptools cache directory; nothing in Python 3.11 needs it.
            "python-eggs" => {}
            "eviction-timeout" => g.eviction_timeout = opt_seconds(&k, v)?,
            "socket-timeout" => g.socket_timeout = opt_seconds(&k, v)?,
            // Accepted, documented in docs/daemon-mode.md: the protocol has no fixed-size
            // header buffer, response data streams in bounded frames, and thread stacks
            // are the runtime's default.
            "header-buffer-size" | "response-buffer-size" | "stack-size" => {
                number(&k, v, 1)?;
            }
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
    let at = |m: String| syntax.at(m);
    check_home(&g.def, &g.account(worker), global_home, &at, "python-home", "the daemon's user")?;
    Ok(g)
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
