//! mod_wsgi's directives: parsing, checking, and the process-wide configuration they build.
//!
//! Directives run in the root parent while httpd reads its configuration (twice at start-up
//! and again on every graceful restart: `pre_config` resets the state). Children inherit
//! the result through fork. Per-directory settings live in the C dir-config struct so that
//! httpd merges them like any module's; everything server-wide lives here.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::daemon_conf::{self, DaemonGroup, ProcessGroup};
use super::httpd::{CmdParms, DirConf, Regex, Server, process};
use crate::core::runtime::{RuntimeConfig, check_python_home};
use crate::ffi::httpd::*;
use oxwsgi_checks::{Account, can_read};

/// One `WSGIScriptAlias` / `WSGIScriptAliasMatch`.
pub struct Alias {
    /// URL path as written (matched as mod_alias does), or the pattern text for a regex.
    pub prefix: String,
    pub regex: Option<Regex>,
    /// Script file, or directory of scripts, or a `$1` template for a regex alias.
    pub target: String,
    pub application_group: Option<String>,
    pub callable: Option<String>,
    pub pass_authorization: Option<bool>,
    /// `process-group=` (a daemon group, `%{GLOBAL}` or `%{ENV:variable}`).
    pub process_group: Option<String>,
}

/// A `WSGIImportScript`.
pub struct ImportScript {
    pub path: PathBuf,
    /// `process-group=<daemon group>`: preloaded there instead of in Apache's children.
    pub process_group: Option<String>,
    /// `application-group=`: the interpreter it is preloaded into ("" or `%{GLOBAL}`: the
    /// main one; a name: that sub-interpreter, embedded mode only).
    pub application_group: String,
}

#[derive(Default)]
pub struct Config {
    pub runtime: RuntimeConfig,
    /// Aliases per server: key 0 = main server, else the address of the vhost's server_rec.
    pub aliases: HashMap<usize, Vec<Alias>>,
    pub imports: Vec<ImportScript>,
    /// Application groups named anywhere, to say once what they map to.
    pub application_groups: BTreeSet<String>,
    /// `WSGIDaemonProcess` groups, in the order defined.
    pub groups: Vec<DaemonGroup>,
    /// `WSGISocketPrefix` (relative to ServerRoot), if set.
    pub socket_prefix: Option<String>,
    /// `WSGIRestrictEmbedded On`: no Python in Apache's own children.
    pub restrict_embedded: bool,
    /// Daemon groups named by a directive (name, directive), checked once all are read.
    pub named_groups: Vec<(String, String)>,
    /// One-line notices for accepted directives that do not apply (compat.rs).
    pub notices: BTreeSet<String>,
    /// `mod_wsgi.server_metrics()` answers with the scoreboard (`WSGIServerMetrics`).
    pub server_metrics: bool,
    /// `WSGIHandlerScript`s; dir configs refer to them by index.
    pub handler_scripts: Vec<HandlerScript>,
}

/// One `WSGIHandlerScript`.
pub struct HandlerScript {
    pub script: PathBuf,
    /// `process-group=` (a daemon group, `%{GLOBAL}` or `%{ENV:variable}`).
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub pass_authorization: Option<bool>,
}

impl Config {
    /// The daemon group called `name`.
    pub fn group(&self, name: &str) -> Option<&DaemonGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// A fresh configuration with Apache's defaults where they differ from the core's.
    fn new() -> Config {
        let mut c = Config::default();
        // As mod_wsgi: signal.signal() from applications is ignored (WSGIRestrictSignal).
        c.runtime.modwsgi.restrict_signal = true;
        // As mod_wsgi: the scoreboard is available unless WSGIServerMetrics Off.
        c.server_metrics = true;
        c
    }
}

pub static CONFIG: Mutex<Option<Config>> = Mutex::new(None);

/// The configuration a child serves with: taken from [`CONFIG`] once, in `child_init`.
static CHILD: OnceLock<Config> = OnceLock::new();

/// Freeze the parsed configuration for this child (`child_init`).
pub fn freeze() -> &'static Config {
    CHILD.get_or_init(|| CONFIG.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default())
}

/// This child's configuration (after `child_init`).
pub fn child() -> Option<&'static Config> {
    CHILD.get()
}

/// Start a fresh configuration pass (pre_config).
pub fn reset() {
    *CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = Some(Config::new());
}

/// Free the configuration (the configuration pool is being cleared).
pub fn clear() {
    drop(CONFIG.lock().unwrap_or_else(|p| p.into_inner()).take());
}

pub fn with<R>(f: impl FnOnce(&mut Config) -> R) -> R {
    let mut g = CONFIG.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Config::new))
}

/// The key under which a server's aliases are stored.
pub fn server_key(s: &Server) -> usize {
    if s.is_virtual() { s.as_ptr() as usize } else { 0 }
}

fn on_off(name: &str, v: &str) -> Result<i32, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" => Ok(1),
        "off" => Ok(0),
        _ => Err(format!("{name} must be On or Off, not {v:?}")),
    }
}

/// Options of WSGIScriptAlias / WSGIImportScript (`key=value`).
#[derive(Default)]
pub(super) struct Options {
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub callable: Option<String>,
    pub pass_authorization: Option<bool>,
}

pub(super) fn parse_options(name: &str, args: &[String], allowed: &[&str]) -> Result<Options, String> {
    let mut o = Options::default();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(format!("{name}: unexpected argument {a:?} (options are key=value)"));
        };
        if !allowed.contains(&k) {
            return Err(format!("{name}: option {k:?} is not supported by oxwsgi (supported: {})", allowed.join(", ")));
        }
        match k {
            "process-group" => {
                check_process_group(name, v)?;
                o.process_group = Some(v.to_string());
            }
            "application-group" => o.application_group = Some(v.to_string()),
            "callable-object" => o.callable = Some(v.to_string()),
            "pass-authorization" => o.pass_authorization = Some(on_off(&format!("{name} pass-authorization"), v)? == 1),
            _ => unreachable!(),
        }
    }
    Ok(o)
}

/// A process-group value: `%{GLOBAL}` (or empty) is embedded mode, `%{ENV:var}` is read per
/// request, a name must be a `WSGIDaemonProcess` group (checked once every directive is
/// read: the group may be defined further down).
fn check_process_group(name: &str, v: &str) -> Result<(), String> {
    match daemon_conf::process_group(v).map_err(|e| format!("{name}: {e}"))? {
        ProcessGroup::Named(g) => with(|c| c.named_groups.push((g.to_string(), name.to_string()))),
        ProcessGroup::Embedded | ProcessGroup::Env(_) => {}
    }
    Ok(())
}

/// Whether `target` names an existing file, directory, or a file followed by extra path
/// (`/srv/app.wsgi/accounts`: the rest becomes PATH_INFO, as under mod_wsgi).
fn target_exists(target: &Path) -> bool {
    // `/srv/index.py/` (a script with a trailing slash) is the file followed by "/".
    let trimmed = target.to_str().map(|t| t.trim_end_matches('/')).filter(|t| !t.is_empty());
    let target = trimmed.map_or(target, Path::new);
    target.exists() || target.ancestors().skip(1).find(|a| a.exists()).is_some_and(Path::is_file)
}

pub fn script_alias(server: &Server, args: &[String]) -> Result<(), String> {
    let name = "WSGIScriptAlias";
    if args.len() < 2 {
        return Err(format!("{name} takes a URL path and a script path, e.g. {name} /app /srv/app.wsgi"));
    }
    let target = Path::new(&args[1]);
    if !target.is_absolute() {
        return Err(format!("{name}: script path {:?} must be absolute", args[1]));
    }
    if !target_exists(target) {
        return Err(format!("{name}: WSGI script {} does not exist", target.display()));
    }
    let o = parse_options(
        name,
        &args[2..],
        &["process-group", "application-group", "callable-object", "pass-authorization"],
    )?;
    with(|c| {
        if let Some(g) = &o.application_group {
            c.application_groups.insert(g.clone());
        }
        c.aliases.entry(server_key(server)).or_default().push(Alias {
            prefix: args[0].clone(),
            regex: None,
            target: args[1].clone(),
            application_group: o.application_group,
            callable: o.callable,
            pass_authorization: o.pass_authorization,
            process_group: o.process_group,
        })
    });
    Ok(())
}

pub fn script_alias_match(cmd: &CmdParms, args: &[String]) -> Result<(), String> {
    let name = "WSGIScriptAliasMatch";
    if args.len() < 2 {
        return Err(format!("{name} takes a regular expression and a script path"));
    }
    if !args[1].contains('$') && !Path::new(&args[1]).exists() {
        return Err(format!("{name}: WSGI script {} does not exist", args[1]));
    }
    let o = parse_options(
        name,
        &args[2..],
        &["process-group", "application-group", "callable-object", "pass-authorization"],
    )?;
    let pattern = std::ffi::CString::new(args[0].as_str()).map_err(|_| format!("{name}: NUL in pattern"))?;
    // In the configuration pool (freed with it), as mod_alias does.
    let Some(re) = cmd.pool().regcomp(&pattern, AP_REG_EXTENDED as i32) else {
        return Err(format!("{name}: {:?} is not a valid regular expression", args[0]));
    };
    let server = cmd.server();
    with(|c| {
        if let Some(g) = &o.application_group {
            c.application_groups.insert(g.clone());
        }
        c.aliases.entry(server_key(server)).or_default().push(Alias {
            prefix: args[0].clone(),
            regex: Some(re),
            target: args[1].clone(),
            application_group: o.application_group,
            callable: o.callable,
            pass_authorization: o.pass_authorization,
            process_group: o.process_group,
        })
    });
    Ok(())
}

/// The account the children will run as (the User/Group directives, with the
/// supplementary groups of that user).
pub fn worker_account() -> Account {
    let (uid, gid) = process::unixd_ids();
    // httpd's default before a User directive is #-1.
    if uid != 0 && uid != u32::MAX {
        return Account::by_uid(uid, gid);
    }
    // User not configured yet (or root): assume Debian's www-data.
    Account::by_name("www-data").unwrap_or_else(|| Account::new("www-data", 33, 33))
}

/// The python-home and what it needs (a virtualenv's base Python) must be readable by
/// the children's user.
fn home_readable(home: &Path, found: &oxwsgi_checks::Home) -> Result<(), String> {
    let worker = worker_account();
    for dir in found.needs_access() {
        can_read(dir, &worker).map_err(|e| {
            let what = if dir == home {
                home.display().to_string()
            } else {
                format!("the base Python {} of {} (pyvenv.cfg home)", dir.display(), home.display())
            };
            format!("WSGIPythonHome: {what} is not accessible to the user the httpd children run as: {e}")
        })?;
    }
    Ok(())
}

/// The checks that need the whole configuration (`check_config`, also run by
/// `apache2 -t`): `User` may come after `WSGIPythonHome`, so the home's readability by the
/// children's user is checked again once it is known.
pub fn check(main: Option<&Server>) -> Result<(), String> {
    // The ServerName of each virtual host that defines a daemon group, now that every
    // directive of the virtual host has been read.
    let mut s = main;
    while let Some(server) = s {
        let key = server_key(server);
        with(|c| {
            for g in c.groups.iter_mut().filter(|g| g.vhost.as_ref().is_some_and(|(k, _)| *k == key)) {
                g.vhost = Some((key, Some(String::from_utf8_lossy(server.hostname()).into_owned())));
            }
        });
        s = server.next();
    }
    if let Some(problem) = process::load_problem() {
        return Err(problem);
    }
    let home = with(|c| c.runtime.start.home.clone());
    if let Some(home) = home {
        let found = check_python_home(&home).map_err(|e| format!("WSGIPythonHome: {e}"))?;
        home_readable(&home, &found)?;
    }
    with(|c| {
        for (g, directive) in &c.named_groups {
            if c.group(g).is_none() {
                return Err(format!(
                    "{directive}: process group {g:?} is not defined: add `WSGIDaemonProcess {g} ...` \
                     (or use %{{GLOBAL}} to run the application embedded in Apache's children)"
                ));
            }
        }
        // Preloads that name a daemon group go to that group.
        let imports = std::mem::take(&mut c.imports);
        for i in imports {
            match i.process_group.as_deref().map(daemon_conf::process_group) {
                Some(Ok(ProcessGroup::Named(g))) => {
                    if !crate::core::interp::is_main_name(&i.application_group) {
                        return Err(format!(
                            "WSGIImportScript {}: preloading into application group {:?} of a daemon process \
                             group is not supported yet; use application-group=%{{GLOBAL}} (the script is then \
                             preloaded into the daemon's main interpreter)",
                            i.path.display(),
                            i.application_group
                        ));
                    }
                    let g = g.to_string();
                    if let Some(group) = c.groups.iter_mut().find(|x| x.name == g) {
                        if !group.imports.contains(&i.path) {
                            group.imports.push(i.path.clone());
                        }
                    }
                }
                _ => c.imports.push(i),
            }
        }
        // mod_wsgi preloads a WSGIScriptAlias script when both its process-group and its
        // application-group are given.
        let preloads: Vec<(String, PathBuf)> = c
            .aliases
            .values()
            .flatten()
            // Only into the main interpreter: a daemon preloads into no other (yet).
            .filter(|a| {
                a.regex.is_none() && a.application_group.as_deref().is_some_and(crate::core::interp::is_main_name)
            })
            .filter_map(|a| match daemon_conf::process_group(a.process_group.as_deref()?) {
                Ok(ProcessGroup::Named(g)) if Path::new(&a.target).is_file() => {
                    Some((g.to_string(), PathBuf::from(&a.target)))
                }
                _ => None,
            })
            .collect();
        for (g, path) in preloads {
            if let Some(group) = c.groups.iter_mut().find(|x| x.name == g) {
                if !group.imports.contains(&path) {
                    group.imports.push(path);
                }
            }
        }
        Ok(())
    })
}

/// Read one directive (`cmd->info` says which) into the process-wide configuration or
/// the per-directory one, `dc`.
pub fn directive(cmd: &CmdParms, dc: &mut DirConf, args: &[String]) -> Result<(), String> {
    let name = String::from_utf8_lossy(cmd.name()).into_owned();
    let is_virtual = cmd.server().is_virtual();
    let global_only = |r: Result<(), String>| -> Result<(), String> {
        if is_virtual {
            Err(format!("{name} cannot occur within a <VirtualHost> section: it configures the Python of every child"))
        } else {
            r
        }
    };
    let id = u32::try_from(cmd.info()).unwrap_or(OXWSGI_D_UNSUPPORTED);
    if let Some(r) = super::compat::directive(cmd, dc, id, &name, args) {
        return r;
    }
    match id {
        OXWSGI_D_SCRIPT_ALIAS => script_alias(cmd.server(), args),
        OXWSGI_D_SCRIPT_ALIAS_MATCH => script_alias_match(cmd, args),
        OXWSGI_D_PYTHON_HOME => global_only(Ok(())).and_then(|_| python_home(args)),
        OXWSGI_D_PYTHON_PATH => global_only(Ok(())).and_then(|_| python_path(args)),
        OXWSGI_D_IMPORT_SCRIPT => import_script(args),
        OXWSGI_D_CALLABLE_OBJECT => one(&name, args).map(|v| dc.set_callable(cmd, v.as_bytes())),
        OXWSGI_D_APPLICATION_GROUP => one(&name, args).map(|v| {
            with(|c| c.application_groups.insert(v.to_string()));
            dc.set_application_group(cmd, v.as_bytes())
        }),
        OXWSGI_D_PASS_AUTHORIZATION => flag(&name, args).map(|v| dc.set_pass_authorization(v == 1)),
        OXWSGI_D_CHUNKED_REQUEST => flag(&name, args).map(|v| dc.set_chunked_request(v == 1)),
        OXWSGI_D_SCRIPT_RELOADING => flag(&name, args).map(|v| dc.set_script_reloading(v == 1)),
        OXWSGI_D_PROCESS_GROUP => {
            let v = one(&name, args)?;
            check_process_group(&name, v)?;
            dc.set_process_group(cmd, v.as_bytes());
            Ok(())
        }
        OXWSGI_D_RESTRICT_EMBEDDED => {
            global_only(flag(&name, args).map(|v| with(|c| c.restrict_embedded = v == 1)))
        }
        OXWSGI_D_DAEMON_PROCESS => daemon_process(cmd.server(), args),
        OXWSGI_D_SOCKET_PREFIX => global_only(one(&name, args).map(|v| with(|c| c.socket_prefix = Some(v.to_string())))),
        OXWSGI_D_LAZY_INITIALIZATION => flag(&name, args).and_then(|v| match v {
            1 => Ok(()),
            _ => Err("WSGILazyInitialization Off is not supported: oxwsgi always starts Python in the child processes, never as root in the parent".into()),
        }),
        OXWSGI_D_PYTHON_OPTIMIZE => global_only(python_optimize(args)),
        OXWSGI_D_PYTHON_HASH_SEED => global_only(hash_seed(args)),
        OXWSGI_D_DONT_WRITE_BYTECODE => {
            global_only(flag(&name, args).map(|v| with(|c| c.runtime.start.dont_write_bytecode = v == 1)))
        }
        OXWSGI_D_PYTHON_WARNINGS => {
            global_only(one(&name, args).map(|v| with(|c| c.runtime.start.warnings.push(v.to_string()))))
        }
        OXWSGI_D_SWITCH_INTERVAL => global_only(switch_interval(args)),
        _ => Err(format!(
            "{name} is a mod_wsgi directive that oxwsgi does not support yet; \
             remove it (see docs/mod_wsgi-migration.md)"
        )),
    }
}

pub fn python_home(args: &[String]) -> Result<(), String> {
    let [home] = args else { return Err("WSGIPythonHome takes one directory".into()) };
    let home = PathBuf::from(home);
    let found = check_python_home(&home).map_err(|e| format!("WSGIPythonHome: {e}"))?;
    home_readable(&home, &found)?;
    with(|c| c.runtime.start.home = Some(home));
    Ok(())
}

pub fn python_path(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("WSGIPythonPath takes one or more directories".into());
    }
    let mut dirs = Vec::new();
    for a in args {
        for d in a.split(':').filter(|d| !d.is_empty()) {
            let p = PathBuf::from(d);
            if !p.is_dir() {
                return Err(format!("WSGIPythonPath: {} is not a directory", p.display()));
            }
            dirs.push(p);
        }
    }
    with(|c| c.runtime.python_path.extend(dirs));
    Ok(())
}

pub fn import_script(args: &[String]) -> Result<(), String> {
    let name = "WSGIImportScript";
    let Some(path) = args.first() else { return Err(format!("{name} takes a script path")) };
    let path = PathBuf::from(path);
    if !path.is_file() {
        return Err(format!("{name}: script {} does not exist", path.display()));
    }
    let o = parse_options(name, &args[1..], &["process-group", "application-group"])?;
    let group = o.application_group.clone().unwrap_or_default();
    if group == "%{RESOURCE}" || group == "%{SERVER}" || group.starts_with("%{ENV:") {
        return Err(format!(
            "{name}: application-group={group} is named from a request, and a script is preloaded before any \
             request: use %{{GLOBAL}} or the group's name"
        ));
    }
    with(|c| {
        if let Some(g) = &o.application_group {
            c.application_groups.insert(g.clone());
        }
        c.imports.push(ImportScript { path, process_group: o.process_group, application_group: group })
    });
    Ok(())
}

/// `WSGIDaemonProcess name [options]`.
pub fn daemon_process(server: &Server, args: &[String]) -> Result<(), String> {
    let global_home = with(|c| c.runtime.start.home.clone());
    let mut g = daemon_conf::parse(args, &worker_account(), global_home.as_deref())?;
    if server.is_virtual() {
        g.vhost = Some((server_key(server), None));
    }
    with(|c| {
        if c.group(&g.name).is_some() {
            return Err(format!(
                "WSGIDaemonProcess: a process group named {:?} is already defined; group names must be unique",
                g.name
            ));
        }
        c.groups.push(g);
        Ok(())
    })
}

/// The single argument of a directive.
pub fn one<'a>(name: &str, args: &'a [String]) -> Result<&'a str, String> {
    match args {
        [a] => Ok(a),
        _ => Err(format!("{name} takes one argument")),
    }
}

pub fn flag(name: &str, args: &[String]) -> Result<i32, String> {
    on_off(name, one(name, args)?)
}

pub fn python_optimize(args: &[String]) -> Result<(), String> {
    let v = one("WSGIPythonOptimize", args)?;
    let n: i32 = v
        .parse()
        .ok()
        .filter(|n| (0..=2).contains(n))
        .ok_or_else(|| format!("WSGIPythonOptimize must be 0, 1 or 2, not {v:?}"))?;
    with(|c| c.runtime.start.optimize = n);
    Ok(())
}

pub fn hash_seed(args: &[String]) -> Result<(), String> {
    let v = one("WSGIPythonHashSeed", args)?;
    let seed = if v == "random" {
        None
    } else {
        Some(
            v.parse::<u32>()
                .map_err(|_| format!("WSGIPythonHashSeed must be 'random' or a number 0-4294967295, not {v:?}"))?,
        )
    };
    with(|c| c.runtime.start.hash_seed = seed);
    Ok(())
}

pub fn switch_interval(args: &[String]) -> Result<(), String> {
    let v = one("WSGISwitchInterval", args)?;
    let s: f64 = v
        .parse()
        .ok()
        .filter(|s: &f64| *s > 0.0)
        .ok_or_else(|| format!("WSGISwitchInterval must be a positive number of seconds, not {v:?}"))?;
    with(|c| c.runtime.switch_interval = Some(s));
    Ok(())
}

/// When several applications will share the interpreter of each Apache child (embedded
/// mode), say so at start-up, naming them, with the fix: modules they both import (a
/// `config` or `settings` module) would be the first one's for both.
pub fn shared_interpreter_notice(c: &Config) -> Option<String> {
    if c.restrict_embedded || c.named_groups.iter().any(|(_, d)| d == "WSGIProcessGroup") {
        return None; // a WSGIProcessGroup may move them: per-directory, not known here
    }
    // Applications share an interpreter when they are in one application group: the
    // default (%{RESOURCE}) gives each its own; a WSGIApplicationGroup (its scope is
    // per directory, not known here) may put those without an option together.
    let set_somewhere = c.application_groups.iter().any(|g| g != "%{RESOURCE}");
    let group_of = |a: &Alias| -> Option<String> {
        match a.application_group.as_deref() {
            Some(g) if g == "%{RESOURCE}" || g.starts_with("%{ENV:") => None,
            Some(g) => Some(g.to_string()),
            None if set_somewhere => Some(String::from("WSGIApplicationGroup")),
            None => None,
        }
    };
    let mut by_group: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for a in c.aliases.values().flatten() {
        let embedded = match a.process_group.as_deref().map(daemon_conf::process_group) {
            None | Some(Ok(ProcessGroup::Embedded)) => true,
            Some(_) => false,
        };
        let Some(group) = group_of(a).filter(|_| embedded) else { continue };
        let i = match by_group.iter().position(|(g, _)| *g == group) {
            Some(i) => i,
            None => {
                by_group.push((group, Vec::new()));
                by_group.len() - 1
            }
        };
        if !by_group[i].1.iter().any(|(_, t)| *t == a.target) {
            let url = if a.regex.is_some() { a.prefix.clone() } else { format!("{}/", a.prefix) };
            by_group[i].1.push((url, a.target.clone()));
        }
    }
    let apps = by_group.into_iter().map(|(_, apps)| apps).find(|apps| apps.len() >= 2)?;
    let list: Vec<String> = apps.iter().map(|(u, t)| format!("{u} ({t})")).collect();
    Some(format!(
        "oxwsgi: {} applications run embedded and share one Python interpreter in each Apache child: {}; \
         a module they both import (e.g. `config` or `settings`) is loaded once, for the first of them. To \
         isolate them, give each its own application group (application-group=NAME, or leave mod_wsgi's \
         default %{{RESOURCE}}; see docs/interpreters.md) or its own process group (WSGIDaemonProcess NAME \
         ... and process-group=NAME; see docs/daemon-mode.md)",
        apps.len(),
        list.join(", ")
    ))
}
