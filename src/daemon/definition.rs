//! A process group as nginx's configuration defines it:
//! `wsgi_daemon_process NAME [key=value ...]`, the options of Apache's
//! `WSGIDaemonProcess` in nginx's spelling (`python_home=`, `request_timeout=30s`).
//! The options both servers share are one [`Definition`] and one [`common_option`],
//! driven by each server's [`Syntax`] (Apache's is in `src/apache/daemon_conf.rs`).
//!
//! Pure parsing and checks, kept out of the nginx adapter so that the unit tests run
//! without a server: the adapter passes nginx's own time and size parsers ([`Units`]),
//! so `30s`, `1m30s`, `500ms` and `512m` mean what they mean in any nginx directive.
//! The meaning of each option is the Apache one (docs/daemon-mode.md); what differs is
//! listed in docs/nginx-daemon.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oxwsgi_checks::{Account, can_read};

use super::accounts::{User, lookup_group, lookup_user};
use crate::core::runtime::check_python_home;

/// How a server spells times and sizes (nginx: `ngx_parse_time`, `ngx_parse_offset`).
pub struct Units<'a> {
    pub time: &'a dyn Fn(&str) -> Option<Duration>,
    pub size: &'a dyn Fn(&str) -> Option<u64>,
}

/// Apache's default `Timeout`: the socket timeout of a group on nginx, which has no
/// server-wide timeout for it to follow.
pub const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(300);

/// One daemon process group: nginx's `wsgi_daemon_process`, and the options Apache's
/// `WSGIDaemonProcess` shares with it (`apache::daemon_conf::DaemonGroup` is this plus
/// what is Apache's own).
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub name: String,
    /// The arguments as written: a changed definition is a new group (new socket).
    pub text: String,
    pub processes: u32,
    pub threads: u32,
    /// `None`: the account of the server's workers (Apache's `User`/`Group`, nginx's `user`).
    pub user: Option<User>,
    pub group: Option<(String, u32)>,
    pub supplementary_groups: Vec<u32>,
    pub umask: Option<u32>,
    pub home: Option<PathBuf>,
    /// `None`: the server's python home (`WSGIPythonHome`, `wsgi_python_home`).
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
    pub shutdown_timeout: Duration,
    pub deadlock_timeout: Option<Duration>,
    pub queue_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    /// `None`: the server's default (Apache's `Timeout`; [`DEFAULT_SOCKET_TIMEOUT`] on nginx).
    pub socket_timeout: Option<Duration>,
    pub listen_backlog: u32,
    pub memory_limit: Option<u64>,
    pub virtual_memory_limit: Option<u64>,
    pub cpu_time_limit: Option<u64>,
}

impl Definition {
    /// mod_wsgi's defaults (docs/configuration-directives/WSGIDaemonProcess.rst).
    pub(crate) fn new(name: &str, text: String) -> Definition {
        Definition {
            name: name.to_string(),
            text,
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
            shutdown_timeout: Duration::from_secs(5),
            deadlock_timeout: Some(Duration::from_secs(300)),
            queue_timeout: None,
            connect_timeout: Duration::from_secs(15),
            socket_timeout: None,
            listen_backlog: 100,
            memory_limit: None,
            virtual_memory_limit: None,
            cpu_time_limit: None,
        }
    }

    /// The account the group's processes run as; `worker` is the account of the server's
    /// workers.
    pub fn account(&self, worker: &Account) -> Account {
        let mut a = match &self.user {
            Some(u) => Account::new(&u.name, u.uid, self.group.as_ref().map_or(u.gid, |g| g.1)),
            None => {
                let mut a = worker.clone();
                if let Some((_, gid)) = &self.group {
                    a.gid = *gid;
                    a.groups.push(*gid);
                }
                a
            }
        };
        a.groups.extend(self.supplementary_groups.iter().copied());
        a
    }
}

/// Options of `WSGIDaemonProcess` that change nothing in oxwsgi: refused rather than
/// silently accepted in a new configuration syntax.
const NO_EFFECT: &[(&str, &str)] = &[
    ("python_eggs", "Python 3 needs no egg cache"),
    ("header_buffer_size", "the protocol has no fixed-size header buffer"),
    ("response_buffer_size", "responses stream in bounded frames"),
    ("stack_size", "threads use the runtime's stack size"),
    ("eviction_timeout", "graceful_timeout applies to every graceful replacement"),
];

/// mod_wsgi options oxwsgi does not implement (docs/daemon-mode.md).
const NOT_SUPPORTED: &[&str] = &[
    "script_user",
    "cpu_priority",
    "chroot",
    "send_buffer_size",
    "receive_buffer_size",
    "startup_timeout",
    "response_socket_timeout",
    "server_metrics",
    "error_override",
    "proxy_buffer_size",
    "request_read_timeout",
    "shutdown_on_request",
];

/// Every option `parse` knows, for the message about a misspelt one.
const KNOWN: &[&str] = &[
    "processes",
    "threads",
    "user",
    "group",
    "supplementary_groups",
    "umask",
    "home",
    "python_home",
    "python_path",
    "lang",
    "locale",
    "display_name",
    "maximum_requests",
    "restart_interval",
    "inactivity_timeout",
    "request_timeout",
    "graceful_timeout",
    "shutdown_timeout",
    "deadlock_timeout",
    "queue_timeout",
    "connect_timeout",
    "socket_timeout",
    "listen_backlog",
    "memory_limit",
    "virtual_memory_limit",
    "cpu_time_limit",
];

/// How a server spells the values of an option and its mistakes about them, so that
/// [`common_option`] is written once for Apache's `WSGIDaemonProcess` and nginx's
/// `wsgi_daemon_process`.
pub trait Syntax {
    /// `msg` prefixed with the directive or group it is about.
    fn at(&self, msg: String) -> String;
    /// A whole number of at least `min`.
    fn count(&self, k: &str, v: &str, min: u64) -> Result<u64, String>;
    fn time(&self, k: &str, v: &str) -> Result<Duration, String>;
    /// A size in bytes, more than 0.
    fn size(&self, k: &str, v: &str) -> Result<u64, String>;
    fn dir(&self, k: &str, v: &str) -> Result<PathBuf, String>;
    fn umask_error(&self, v: &str) -> String;
}

/// Apply one of the options both servers take with the same meaning; `canon` is its name
/// spelt with `_`, `k` as written. `Ok(false)`: not one of them (the server's own, or
/// unknown).
pub fn common_option(g: &mut Definition, canon: &str, k: &str, v: &str, s: &dyn Syntax) -> Result<bool, String> {
    // 0 means "none", as in mod_wsgi.
    let opt_time = |v: &str| s.time(k, v).map(|d| (!d.is_zero()).then_some(d));
    match canon {
        "processes" => g.processes = s.count(k, v, 1)? as u32,
        "threads" => g.threads = s.count(k, v, 1)? as u32,
        "user" => g.user = Some(lookup_user(v).ok_or_else(|| s.at(format!("user {v:?} does not exist")))?),
        "group" => {
            g.group = Some((v.into(), lookup_group(v).ok_or_else(|| s.at(format!("group {v:?} does not exist")))?))
        }
        "supplementary_groups" => {
            for x in v.split(',').filter(|x| !x.is_empty()) {
                let gid = lookup_group(x).ok_or_else(|| s.at(format!("supplementary group {x:?} does not exist")))?;
                g.supplementary_groups.push(gid);
            }
        }
        "umask" => {
            let m = u32::from_str_radix(v, 8).ok().filter(|m| *m <= 0o777);
            g.umask = Some(m.ok_or_else(|| s.umask_error(v))?);
        }
        "home" => g.home = Some(s.dir(k, v)?),
        "python_path" => {
            for p in v.split(':').filter(|p| !p.is_empty()) {
                g.python_path.push(s.dir(k, p)?);
            }
        }
        "lang" => g.lang = Some(v.into()),
        "locale" => g.locale = Some(v.into()),
        "display_name" => g.display_name = Some(v.into()),
        "maximum_requests" => g.maximum_requests = Some(s.count(k, v, 0)?).filter(|n| *n > 0),
        "restart_interval" => g.restart_interval = opt_time(v)?,
        "inactivity_timeout" => g.inactivity_timeout = opt_time(v)?,
        "request_timeout" => g.request_timeout = opt_time(v)?,
        "graceful_timeout" => g.graceful_timeout = s.time(k, v)?,
        "shutdown_timeout" => g.shutdown_timeout = s.time(k, v)?,
        "deadlock_timeout" => g.deadlock_timeout = opt_time(v)?,
        "queue_timeout" => g.queue_timeout = opt_time(v)?,
        "connect_timeout" => g.connect_timeout = s.time(k, v)?,
        "listen_backlog" => g.listen_backlog = s.count(k, v, 1)? as u32,
        "memory_limit" => g.memory_limit = Some(s.size(k, v)?),
        "virtual_memory_limit" => g.virtual_memory_limit = Some(s.size(k, v)?),
        _ => return Ok(false),
    }
    Ok(true)
}

/// nginx's spelling: `key=value` with nginx's time and size syntax, messages naming the
/// group.
struct Nginx<'a> {
    name: &'a str,
    units: &'a Units<'a>,
}

impl Syntax for Nginx<'_> {
    fn at(&self, msg: String) -> String {
        format!("group {:?}: {msg}", self.name)
    }
    fn count(&self, k: &str, v: &str, min: u64) -> Result<u64, String> {
        v.parse::<u64>()
            .ok()
            .filter(|n| *n >= min && *n <= u64::from(u32::MAX))
            .ok_or_else(|| self.at(format!("{k}={v:?} is not a whole number of at least {min}")))
    }
    fn time(&self, k: &str, v: &str) -> Result<Duration, String> {
        (self.units.time)(v).ok_or_else(|| self.at(format!("{k}={v:?} is not a time (nginx's syntax: 30s, 2m, 500ms)")))
    }
    fn size(&self, k: &str, v: &str) -> Result<u64, String> {
        (self.units.size)(v).filter(|n| *n > 0).ok_or_else(|| self.at(format!("{k}={v:?} is not a size (512m, 2g)")))
    }
    fn dir(&self, k: &str, v: &str) -> Result<PathBuf, String> {
        let p = PathBuf::from(v);
        if !p.is_absolute() {
            return Err(self.at(format!("{k}={v}: the directory must be an absolute path")));
        }
        if !p.is_dir() {
            return Err(self.at(format!("{k}={v} is not a directory")));
        }
        Ok(p)
    }
    fn umask_error(&self, v: &str) -> String {
        self.at(format!("umask={v:?} is not an octal mask such as 0007"))
    }
}

/// A group name: it appears in socket paths, process titles and log lines.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && name != "off";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid process group name (1 to 64 letters, digits, '_', '-' or '.'; \"off\" is reserved)"
        ))
    }
}

/// What `wsgi_process_group` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `off`: embedded, in nginx's workers (undoes an inherited group).
    Embedded,
    /// A `wsgi_daemon_process` group.
    Named(&'a str),
}

/// Read a `wsgi_process_group` value.
pub fn target(v: &str) -> Result<Target<'_>, String> {
    if v == "off" {
        return Ok(Target::Embedded);
    }
    if v.starts_with('$') {
        return Err(format!("{v:?}: variables are not supported here; name a wsgi_daemon_process group or \"off\""));
    }
    if v.starts_with("%{") {
        return Err(format!(
            "{v:?} is mod_wsgi's spelling; on nginx name a wsgi_daemon_process group, or \"off\" for embedded mode"
        ));
    }
    check_name(v)?;
    Ok(Target::Named(v))
}

/// Parse `wsgi_daemon_process NAME [options]` (`args` without the directive's name).
/// Checks what can be checked without knowing the rest of the configuration: values,
/// users and groups, directories, python_home's layout. [`check_access`] follows once
/// the account and the global python home are known.
pub fn parse(args: &[String], units: &Units) -> Result<Definition, String> {
    let Some(name) = args.first() else {
        return Err("takes a group name and options, e.g. wsgi_daemon_process site processes=2 threads=15".into());
    };
    check_name(name)?;
    let mut g = Definition::new(name, args.join(" "));
    let mut seen: Vec<&str> = Vec::new();
    let syntax = Nginx { name, units };
    let at = |msg: String| syntax.at(msg);
    for a in &args[1..] {
        let Some((k, v)) = a.split_once('=') else {
            return Err(at(format!("unexpected argument {a:?} (options are key=value, e.g. processes=2)")));
        };
        if seen.contains(&k) {
            return Err(at(format!("option {k:?} is given twice")));
        }
        seen.push(k);
        if common_option(&mut g, k, k, v, &syntax)? {
            continue;
        }
        match k {
            "python_home" => {
                let p = syntax.dir(k, v)?;
                check_python_home(&p).map_err(|e| at(format!("python_home={v}: {e}")))?;
                g.python_home = Some(p);
            }
            "socket_timeout" => {
                let t = syntax.time(k, v)?;
                if t.is_zero() {
                    return Err(at("socket_timeout must be more than 0".into()));
                }
                g.socket_timeout = Some(t);
            }
            "cpu_time_limit" => {
                let secs = syntax.time(k, v)?.as_secs();
                g.cpu_time_limit = Some(secs).filter(|s| *s > 0);
                if g.cpu_time_limit.is_none() {
                    return Err(at(format!("cpu_time_limit={v:?} must be at least 1s")));
                }
            }
            _ => return Err(at(unknown(k))),
        }
    }
    Ok(g)
}

/// The message for an option `parse` does not take.
fn unknown(k: &str) -> String {
    if let Some((_, why)) = NO_EFFECT.iter().find(|(o, _)| *o == k) {
        return format!("option {k:?} would have no effect in oxwsgi ({why}); remove it");
    }
    if NOT_SUPPORTED.contains(&k) {
        return format!("option {k:?} is not supported by oxwsgi; remove it (see docs/daemon-mode.md)");
    }
    let underscored = k.replace('-', "_");
    if underscored != k && (KNOWN.contains(&underscored.as_str()) || NO_EFFECT.iter().any(|(o, _)| *o == underscored)) {
        return format!("unknown option {k:?}: nginx spells it {underscored:?}");
    }
    format!("unknown option {k:?}")
}

/// The checks that need the group's account and the python home it ends up with
/// (its own, else `wsgi_python_home`): every directory Python needs is readable by it.
pub fn check_access(g: &Definition, account: &Account, global_home: Option<&Path>) -> Result<(), String> {
    check_home(g, account, global_home, &|m| format!("group {:?}: {m}", g.name), "python home", &account.name)
}

/// The python home a group ends up with (its own, else the server's) has Python's
/// layout, and `account` can read every directory Python needs in it. `at` names the
/// group in a message, `option` and `who` are how the server's messages name the
/// option and the account.
pub fn check_home(
    g: &Definition,
    account: &Account,
    global_home: Option<&Path>,
    at: &dyn Fn(String) -> String,
    option: &str,
    who: &str,
) -> Result<(), String> {
    let Some(home) = g.python_home.as_deref().or(global_home) else { return Ok(()) };
    let found = check_python_home(home).map_err(|e| at(format!("{option}: {e}")))?;
    for dir in found.needs_access() {
        can_read(dir, account)
            .map_err(|e| at(format!("{option} {} is not accessible to {who}: {e}", home.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds with an s/m/ms suffix or none (nginx's full syntax is nginx's).
    fn time(v: &str) -> Option<Duration> {
        if let Some(n) = v.strip_suffix("ms") {
            return n.parse().ok().map(Duration::from_millis);
        }
        if let Some(n) = v.strip_suffix('m') {
            return n.parse::<u64>().ok().map(|m| Duration::from_secs(m * 60));
        }
        v.strip_suffix('s').unwrap_or(v).parse().ok().map(Duration::from_secs)
    }

    fn size(v: &str) -> Option<u64> {
        v.strip_suffix('m').unwrap_or(v).parse::<u64>().ok().map(|n| if v.ends_with('m') { n << 20 } else { n })
    }

    fn p(line: &str) -> Result<Definition, String> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&args, &Units { time: &time, size: &size })
    }

    #[test]
    fn defaults_and_options() {
        let g = p("site").unwrap();
        assert_eq!((g.processes, g.threads, g.request_timeout), (1, 15, None));
        let g = p("site processes=2 threads=4 request_timeout=30s queue_timeout=2m maximum_requests=100 \
                   memory_limit=512m user=root graceful_timeout=0 python_path=/tmp:/")
        .unwrap();
        assert_eq!((g.processes, g.threads), (2, 4));
        assert_eq!(g.request_timeout, Some(Duration::from_secs(30)));
        assert_eq!(g.queue_timeout, Some(Duration::from_secs(120)));
        assert_eq!(g.maximum_requests, Some(100));
        assert_eq!(g.memory_limit, Some(512 << 20));
        assert_eq!(g.user.as_ref().map(|u| u.uid), Some(0));
        assert_eq!(g.graceful_timeout, Duration::ZERO);
        assert_eq!(g.python_path, vec![PathBuf::from("/tmp"), PathBuf::from("/")]);
        assert_eq!(p("site request_timeout=0").unwrap().request_timeout, None);
    }

    #[test]
    fn mistakes_have_one_precise_message() {
        for (line, msg) in [
            ("", "takes a group name"),
            ("bad/name", "not a valid process group name"),
            ("off", "not a valid process group name"),
            ("site processes=0", "processes=\"0\" is not a whole number of at least 1"),
            ("site threads=x", "threads=\"x\" is not a whole number"),
            ("site request_timeout=soon", "request_timeout=\"soon\" is not a time"),
            ("site processes", "unexpected argument \"processes\""),
            ("site processes=1 processes=2", "option \"processes\" is given twice"),
            ("site user=no-such-user-here", "user \"no-such-user-here\" does not exist"),
            ("site group=no-such-group-here", "group \"no-such-group-here\" does not exist"),
            ("site python-home=/tmp", "nginx spells it \"python_home\""),
            ("site stack_size=1", "would have no effect"),
            ("site chroot=/", "is not supported by oxwsgi"),
            ("site frobnicate=1", "unknown option \"frobnicate\""),
            ("site python_path=/nowhere/at/all", "python_path=/nowhere/at/all is not a directory"),
            ("site home=relative", "must be an absolute path"),
            ("site python_home=/tmp", "python_home=/tmp:"),
            ("site umask=999", "not an octal mask"),
            ("site socket_timeout=0", "socket_timeout must be more than 0"),
            ("site cpu_time_limit=500ms", "must be at least 1s"),
        ] {
            let e = p(line).expect_err(line);
            assert!(e.contains(msg), "{line}: {e}");
        }
    }

    #[test]
    fn process_group_targets() {
        assert_eq!(target("off"), Ok(Target::Embedded));
        assert_eq!(target("site"), Ok(Target::Named("site")));
        assert!(target("$var").unwrap_err().contains("variables"));
        assert!(target("%{GLOBAL}").unwrap_err().contains("mod_wsgi's spelling"));
        assert!(target("a b").unwrap_err().contains("not a valid"));
    }

    #[test]
    fn account_follows_user_and_group() {
        let worker = Account::new("nobody", 65534, 65534);
        let g = p("site group=root").unwrap();
        let a = g.account(&worker);
        assert_eq!((a.uid, a.gid), (65534, 0));
        let g = p("site user=root").unwrap();
        assert_eq!(g.account(&worker).uid, 0);
    }
}
