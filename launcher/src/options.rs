//! What the user asked for: the options `serve`, `config` and `doctor` share, as parsed
//! by [`crate::cli`] and before anything is checked (see [`crate::resolve`]).

use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Apache,
    Nginx,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Apache => "apache",
            ServerKind::Nginx => "nginx",
        }
    }
    /// File name of our module for this server.
    pub fn module_file(self) -> &'static str {
        match self {
            ServerKind::Apache => "mod_oxwsgi.so",
            ServerKind::Nginx => "ngx_http_oxwsgi_module.so",
        }
    }
}

/// Options shared by `serve`, `config` and `doctor`.
#[derive(Debug, Clone)]
pub struct Options {
    pub app: Option<String>,
    pub server: ServerKind,
    pub server_given: bool,
    pub host: String,
    pub port: u16,
    pub processes: u32,
    pub threads: u32,
    /// Run the app in a daemon process group (WSGIDaemonProcess, wsgi_daemon_process) of `processes` x
    /// `threads`, not in Apache's own children.
    pub daemon: bool,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    pub url_aliases: Vec<(String, PathBuf)>,
    pub callable: Option<String>,
    pub mount: String,
    pub reload_on_change: bool,
    pub access_log: bool,
    pub max_in_flight: Option<u32>,
    pub module_dir: Option<PathBuf>,
    pub user: Option<String>,
    pub log_level: Option<String>,
    pub startup_timeout: u64,
    pub keep: bool,
    pub full: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            app: None,
            server: ServerKind::Apache,
            server_given: false,
            host: "127.0.0.1".into(),
            port: 8000,
            processes: 1,
            threads: 5,
            daemon: false,
            python_home: None,
            python_path: Vec::new(),
            url_aliases: Vec::new(),
            callable: None,
            mount: "/".into(),
            reload_on_change: false,
            access_log: false,
            max_in_flight: None,
            module_dir: None,
            user: None,
            log_level: None,
            startup_timeout: 20,
            keep: false,
            full: false,
        }
    }
}
