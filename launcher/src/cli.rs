//! Command-line parsing: `oxwsgi <command> [app] [options]`, by hand (std only).

use std::path::{Path, PathBuf};

use crate::options::{Options, ServerKind};

#[derive(Debug)]
pub enum Command {
    Serve(Options),
    Config(Options),
    Doctor(Options),
    Demo,
    Help,
    Version,
}

pub const USAGE: &str = "\
usage: oxwsgi <command> [options]

Run a WSGI application inside Apache httpd or nginx with the oxwsgi module.

commands:
  serve [APP] [options]   generate a private server config, start the server in the
                          foreground, stream its logs; Ctrl-C stops everything
  config [APP] [options]  print the configuration `serve` would use, to paste into an
                          existing httpd.conf / nginx.conf (--full: the whole file)
  doctor [APP] [options]  check the servers, the modules, Python and the virtualenv
  demo                    print the built-in demo app (a .wsgi file)
  help [command]          this text

APP is a WSGI script (app.wsgi, app.py) or module:callable (myproj.wsgi:application,
app:create_app() calls a factory). Without APP the built-in demo app is served.

options:
  --server apache|nginx     web server to run (default apache)
  --host ADDR               address to listen on (default 127.0.0.1)
  --port N                  port (default 8000; 0 picks a free one)
  --processes N             server worker processes (default 1); with --daemon, the
                            daemon processes of the app's process group
  --threads N               Python threads per process (default 5)
  --daemon                  run the app in a process group of its own (mod_wsgi's daemon
                            mode: WSGIDaemonProcess / wsgi_daemon_process) rather than in
                            the server's worker processes
  --python-home DIR         virtualenv or Python prefix (default: $VIRTUAL_ENV if set)
  --python-path DIR         add DIR to sys.path (repeatable)
  --url-alias URL PATH      serve the file or directory PATH at URL from the web server
                            itself, not from Python (repeatable), e.g. /static ./static
  --callable NAME           name of the WSGI callable in the script (default application)
  --mount PREFIX            URL prefix the app is mounted at (default /)
  --reload-on-change        restart the workers when a .py/.wsgi file of the app changes
  --access-log              write and show the access log
  --max-in-flight N         nginx: cap on requests in flight per worker (503 beyond)
  --module-dir DIR          where mod_oxwsgi.so / ngx_http_oxwsgi_module.so are
                            (default: $OXWSGI_MODULE_DIR, <oxwsgi>/../modules, system dirs)
  --user NAME               when run as root: user the workers run as (default www-data)
  --log-level LEVEL         server error log level (default notice)
  --startup-timeout SECS    how long to wait for the server to answer (default 20)
  --keep                    keep the private server directory after exit
  --full                    config: print the complete standalone configuration

environment: OXWSGI_MODULE_DIR (module directory), OXWSGI_APACHE_BIN / OXWSGI_NGINX_BIN
(server binaries; default: apache2/httpd and nginx on PATH or in /usr/sbin), VIRTUAL_ENV.
";

fn take_value(args: &[String], i: &mut usize, name: &str, inline: &mut Option<String>) -> Result<String, String> {
    if let Some(v) = inline.take() {
        return Ok(v);
    }
    *i += 1;
    args.get(*i).cloned().ok_or_else(|| format!("{name} needs a value (see `oxwsgi help`)"))
}

fn number<T>(name: &str, v: &str, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match v.parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{name} takes a number >= {min}, not {v:?}")),
    }
}

/// Make `p` absolute against the current directory (without resolving symlinks).
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let mut out = cwd;
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }
}

pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some(cmd) = args.first() else { return Ok(Command::Help) };
    match cmd.as_str() {
        "help" | "-h" | "--help" => return Ok(Command::Help),
        "version" | "-V" | "--version" => return Ok(Command::Version),
        "demo" => return Ok(Command::Demo),
        "serve" | "config" | "doctor" => {}
        other => return Err(format!("unknown command {other:?}; commands: serve, config, doctor, demo, help")),
    }
    let mut o = Options::default();
    let rest = &args[1..];
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        if a == "-h" || a == "--help" {
            return Ok(Command::Help);
        }
        if !a.starts_with("--") || a == "--" {
            if a == "--" {
                i += 1;
                if let Some(v) = rest.get(i) {
                    set_app(&mut o, v)?;
                }
            } else {
                set_app(&mut o, a)?;
            }
            i += 1;
            continue;
        }
        let (name, mut inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let n = name.as_str();
        match n {
            "--server" => {
                let v = take_value(rest, &mut i, n, &mut inline)?;
                o.server = match v.as_str() {
                    "apache" | "apache2" | "httpd" => ServerKind::Apache,
                    "nginx" => ServerKind::Nginx,
                    _ => return Err(format!("--server takes apache or nginx, not {v:?}")),
                };
                o.server_given = true;
            }
            "--host" => o.host = take_value(rest, &mut i, n, &mut inline)?,
            "--port" => o.port = number(n, &take_value(rest, &mut i, n, &mut inline)?, 0u16)?,
            "--processes" => o.processes = number(n, &take_value(rest, &mut i, n, &mut inline)?, 1u32)?,
            "--threads" => o.threads = number(n, &take_value(rest, &mut i, n, &mut inline)?, 1u32)?,
            "--python-home" => o.python_home = Some(absolute(Path::new(&take_value(rest, &mut i, n, &mut inline)?))),
            "--python-path" => {
                let v = take_value(rest, &mut i, n, &mut inline)?;
                for d in v.split(':').filter(|d| !d.is_empty()) {
                    o.python_path.push(absolute(Path::new(d)));
                }
            }
            "--url-alias" => {
                let url = take_value(rest, &mut i, n, &mut inline)?;
                i += 1;
                let Some(path) = rest.get(i) else {
                    return Err("--url-alias takes a URL and a path, e.g. --url-alias /static ./static".into());
                };
                if !url.starts_with('/') {
                    return Err(format!("--url-alias: the URL must start with '/', not {url:?}"));
                }
                o.url_aliases.push((url, absolute(Path::new(path))));
            }
            "--callable" => o.callable = Some(take_value(rest, &mut i, n, &mut inline)?),
            "--mount" => {
                let v = take_value(rest, &mut i, n, &mut inline)?;
                o.mount = normalize_mount(&v);
            }
            "--reload-on-change" | "--reload-on-changes" => o.reload_on_change = true,
            "--daemon" => o.daemon = true,
            "--access-log" => o.access_log = true,
            "--max-in-flight" => o.max_in_flight = Some(number(n, &take_value(rest, &mut i, n, &mut inline)?, 1u32)?),
            "--module-dir" => o.module_dir = Some(absolute(Path::new(&take_value(rest, &mut i, n, &mut inline)?))),
            "--user" => o.user = Some(take_value(rest, &mut i, n, &mut inline)?),
            "--log-level" => o.log_level = Some(take_value(rest, &mut i, n, &mut inline)?),
            "--startup-timeout" => o.startup_timeout = number(n, &take_value(rest, &mut i, n, &mut inline)?, 1u64)?,
            "--keep" => o.keep = true,
            "--full" => o.full = true,
            _ => return Err(format!("unknown option {name} (see `oxwsgi help`)")),
        }
        if inline.is_some() {
            return Err(format!("{name} takes no value"));
        }
        i += 1;
    }
    if o.python_home.is_none() {
        if let Some(v) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
            o.python_home = Some(PathBuf::from(v));
        }
    }
    Ok(match cmd.as_str() {
        "serve" => Command::Serve(o),
        "config" => Command::Config(o),
        _ => Command::Doctor(o),
    })
}

fn set_app(o: &mut Options, v: &str) -> Result<(), String> {
    if let Some(prev) = &o.app {
        return Err(format!("only one app may be given (got {prev:?} and {v:?})"));
    }
    o.app = Some(v.to_string());
    Ok(())
}

/// "/", or "/prefix" without a trailing slash.
pub fn normalize_mount(v: &str) -> String {
    let t = v.trim_matches('/');
    if t.is_empty() { "/".into() } else { format!("/{t}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn serve_options() {
        let Command::Serve(o) = p(&[
            "serve",
            "app.wsgi",
            "--server",
            "nginx",
            "--port=9000",
            "--url-alias",
            "/static",
            "/srv/s",
            "--python-path",
            "/a:/b",
            "--reload-on-change",
            "--mount",
            "/app/",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.app.as_deref(), Some("app.wsgi"));
        assert_eq!(o.server, ServerKind::Nginx);
        assert_eq!(o.port, 9000);
        assert_eq!(o.url_aliases, vec![("/static".to_string(), PathBuf::from("/srv/s"))]);
        assert_eq!(o.python_path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(o.reload_on_change);
        assert_eq!(o.mount, "/app");
        assert!(!o.daemon);
        let Command::Serve(o) = p(&["serve", "--daemon", "--processes", "3", "--threads=2"]).unwrap() else { panic!() };
        assert!(o.daemon && o.processes == 3 && o.threads == 2);
    }

    #[test]
    fn errors() {
        assert!(p(&["serve", "--port", "x"]).unwrap_err().contains("--port"));
        assert!(p(&["serve", "--server", "iis"]).unwrap_err().contains("apache or nginx"));
        assert!(p(&["serve", "a", "b"]).unwrap_err().contains("only one app"));
        assert!(p(&["serve", "--bogus"]).unwrap_err().contains("unknown option"));
        assert!(p(&["frobnicate"]).unwrap_err().contains("unknown command"));
        assert!(p(&["serve", "--url-alias", "/s"]).unwrap_err().contains("URL and a path"));
        assert!(p(&["serve", "--keep=1"]).unwrap_err().contains("takes no value"));
    }

    #[test]
    fn mounts() {
        assert_eq!(normalize_mount("/"), "/");
        assert_eq!(normalize_mount(""), "/");
        assert_eq!(normalize_mount("app"), "/app");
        assert_eq!(normalize_mount("/a/b/"), "/a/b");
    }
}
