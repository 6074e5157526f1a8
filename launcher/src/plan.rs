//! The [`Plan`]: every fact the server configuration depends on, resolved (what `serve`
//! stages and runs, and what `config` prints).

use std::path::PathBuf;

use crate::app::AppSpec;
use crate::locate;
use crate::options::{Options, ServerKind};
use crate::resolve::Resolved;
use crate::users::User;

/// Everything the configuration depends on, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: ServerKind,
    /// The private server directory (ServerRoot / nginx prefix).
    pub dir: PathBuf,
    /// The module .so the configuration loads.
    pub module: PathBuf,
    /// The WSGI script the server runs (the user's file, a shim, or the demo).
    pub script: PathBuf,
    pub callable: String,
    pub mount: String,
    pub host: String,
    pub port: u16,
    pub processes: u32,
    pub threads: u32,
    /// The app runs in a daemon process group of `processes` x `threads`.
    pub daemon: bool,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    pub url_aliases: Vec<(String, PathBuf)>,
    pub reload: bool,
    pub access_log: bool,
    pub max_in_flight: Option<u32>,
    /// Worker user when started as root; None: run as the invoking user.
    pub user: Option<User>,
    pub log_level: String,
    /// Apache's own modules (mpm, alias ...).
    pub apache_modules: PathBuf,
}

impl Plan {
    pub fn error_log(&self) -> PathBuf {
        self.dir.join("logs/error.log")
    }
    pub fn access_log_path(&self) -> PathBuf {
        self.dir.join("logs/access.log")
    }
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join(match self.kind {
            ServerKind::Apache => "httpd.conf",
            ServerKind::Nginx => "nginx.conf",
        })
    }
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let mount = if self.mount == "/" { "/".to_string() } else { format!("{}/", self.mount) };
        format!("http://{host}:{}{mount}", self.port)
    }
}

impl Plan {
    /// The plan for options `o` resolved into `r`, served from the private directory `dir`
    /// with the module at `module`, the script `script` and the port `port`.
    pub fn new(o: &Options, r: &Resolved, dir: PathBuf, module: PathBuf, script: PathBuf, port: u16) -> Plan {
        Plan {
            kind: o.server,
            dir,
            module,
            script,
            callable: match &r.app {
                AppSpec::Script { callable, .. } => callable.clone(),
                _ => "application".into(),
            },
            mount: o.mount.clone(),
            host: o.host.clone(),
            port,
            processes: o.processes,
            threads: o.threads,
            daemon: o.daemon,
            python_home: o.python_home.clone(),
            python_path: r.python_path.clone(),
            url_aliases: o.url_aliases.clone(),
            reload: o.reload_on_change,
            access_log: o.access_log,
            max_in_flight: o.max_in_flight,
            user: r.user.clone(),
            log_level: o.log_level.clone().unwrap_or_else(|| "notice".into()),
            apache_modules: locate::apache_modules_dir().unwrap_or_else(|| PathBuf::from("/usr/lib/apache2/modules")),
        }
    }
}

/// Directories joined with ':' (WSGIPythonPath).
pub fn joined_path(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":")
}

/// A plan with every option set, for the configuration tests.
#[cfg(test)]
pub fn sample(kind: ServerKind) -> Plan {
    Plan {
        kind,
        dir: "/tmp/oxwsgi-serve-x".into(),
        module: "/tmp/oxwsgi-serve-x/modules/m.so".into(),
        script: "/srv/app/app.wsgi".into(),
        callable: "app".into(),
        mount: "/".into(),
        host: "127.0.0.1".into(),
        port: 8123,
        processes: 2,
        threads: 4,
        daemon: false,
        python_home: Some("/opt/venv".into()),
        python_path: vec!["/srv/app".into(), "/srv/lib".into()],
        url_aliases: vec![("/static".into(), "/".into())],
        reload: true,
        access_log: true,
        max_in_flight: Some(7),
        user: None,
        log_level: "notice".into(),
        apache_modules: "/usr/lib/apache2/modules".into(),
    }
}
