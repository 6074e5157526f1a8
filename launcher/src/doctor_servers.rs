//! `oxwsgi doctor`, the servers and modules: each server binary and its version, which of
//! our modules it would use, the libpython that module links (and that it resolves), and
//! that the server really loads it (`apache2 -t` / `nginx -t` on a minimal configuration).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::locate;
use crate::options::{Options, ServerKind};
use crate::procs::run;
use crate::report::{Report, Status};

/// Check every server asked about (both without --server). Returns the Python version
/// (major.minor) the first module found is built against.
pub fn check_servers(rep: &mut Report, o: &Options) -> Option<String> {
    let kinds: Vec<ServerKind> =
        if o.server_given { vec![o.server] } else { vec![ServerKind::Apache, ServerKind::Nginx] };
    let mut module_python: Option<String> = None;
    let mut servers_found = 0;
    let mut modules_found = 0;
    for &kind in &kinds {
        let bin = match locate::server_binary(kind) {
            Ok(b) => b,
            Err(e) => {
                let st = if o.server_given { Status::Fail } else { Status::Warn };
                rep.line(st, &e, None);
                continue;
            }
        };
        servers_found += 1;
        match locate::server_version(kind, &bin) {
            Ok(v) => rep.line(Status::Ok, &format!("{}: {v}", bin.display()), None),
            Err(e) => rep.line(Status::Warn, &e, None),
        }
        if kind == ServerKind::Apache && locate::apache_modules_dir().is_none() {
            rep.line(
                Status::Fail,
                "Apache's own modules (mod_mpm_event.so ...) were not found",
                Some("apt-get install apache2"),
            );
        }
        let file = kind.module_file();
        let dirs = locate::module_dirs(o, kind);
        let module = match locate::find_module(o, kind) {
            Ok(m) => m,
            Err(e) => {
                // Only a problem for a server the user asked about (or if no module exists).
                rep.line(if o.server_given { Status::Fail } else { Status::Warn }, &e, None);
                continue;
            }
        };
        modules_found += 1;
        let whence =
            dirs.iter().find(|(d, _)| locate::normalize(&d.join(file)) == module).map(|(_, w)| *w).unwrap_or("");
        let others: Vec<String> = dirs
            .iter()
            .map(|(d, _)| locate::normalize(&d.join(file)))
            .filter(|p| p.is_file() && *p != module)
            .map(|p| p.display().to_string())
            .collect();
        rep.line(Status::Ok, &format!("{file}: {} ({whence})", module.display()), None);
        if !others.is_empty() {
            rep.line(Status::Info, &format!("also present (not used): {}", others.join(", ")), None);
        }
        let mp = locate::module_python_version(&module);
        match (&mp, ldd(&module)) {
            (None, _) => rep.line(Status::Warn, &format!("{file}: cannot tell which libpython it links"), None),
            (Some(v), Some((missing, libpython))) => {
                if missing.is_empty() {
                    let at = libpython.map(|p| format!(" ({})", p.display())).unwrap_or_default();
                    rep.line(Status::Ok, &format!("{file} is built against Python {v}{at}"), None);
                } else {
                    rep.line(
                        Status::Fail,
                        &format!("{file} needs libraries that are not installed: {}", missing.join("; ")),
                        Some(&format!("apt-get install libpython{v}")),
                    );
                }
            }
            (Some(v), None) => rep.line(Status::Ok, &format!("{file} is built against Python {v}"), None),
        }
        if let (Some(a), Some(b)) = (&module_python, &mp) {
            if a != b {
                rep.line(
                    Status::Warn,
                    &format!("the Apache and nginx modules are built against different Pythons ({a} vs {b})"),
                    Some("rebuild both with `make modules`"),
                );
            }
        }
        if module_python.is_none() {
            module_python = mp.clone();
        }
        match load_test(kind, &bin, &module) {
            Ok((true, _)) => rep.line(Status::Ok, &format!("{} loads {file} ({} -t)", bin.display(), bin.file_name().unwrap_or_default().to_string_lossy()), None),
            Ok((false, out)) => rep.line(
                Status::Fail,
                &format!("{} cannot load {}:\n{out}", bin.display(), module.display()),
                Some(match kind {
                    ServerKind::Nginx => "rebuild the module against this nginx (`make nginx`): nginx only loads modules built for its exact version and configure flags",
                    ServerKind::Apache => "rebuild the module (`make apache`) on this machine",
                }),
            ),
            Err(e) => rep.line(Status::Warn, &format!("could not run the load test: {e}"), None),
        }
    }
    if servers_found > 0 && modules_found == 0 && !o.server_given {
        rep.line(
            Status::Fail,
            "no oxwsgi module was found for any installed server",
            Some("build them with `make modules` (or `make install`)"),
        );
    }
    if servers_found == 0 && !o.server_given {
        rep.line(
            Status::Fail,
            "neither Apache httpd nor nginx is installed",
            Some("apt-get install apache2 (or nginx)"),
        );
    }

    module_python
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Option<TempDir> {
        let mut tmpl = b"/tmp/oxwsgi-doctor-XXXXXX\0".to_vec();
        // SAFETY: writable NUL-terminated template ending in XXXXXX.
        let p = unsafe { libc::mkdtemp(tmpl.as_mut_ptr() as *mut libc::c_char) };
        if p.is_null() {
            return None;
        }
        tmpl.pop();
        Some(TempDir(PathBuf::from(String::from_utf8_lossy(&tmpl).into_owned())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Does the server accept our module? (`apache2 -t` / `nginx -t` on a minimal config.)
fn load_test(kind: ServerKind, bin: &Path, module: &Path) -> Result<(bool, String), String> {
    let tmp = TempDir::new().ok_or("cannot create a temporary directory")?;
    let d = &tmp.0;
    let mut c = Command::new(bin);
    match kind {
        ServerKind::Apache => {
            let mods = locate::apache_modules_dir().ok_or("Apache's module directory was not found")?;
            let conf = d.join("httpd.conf");
            let text = format!(
                "ServerRoot {d}\nServerName 127.0.0.1\nListen 127.0.0.1:1\nPidFile {d}/httpd.pid\n\
                 DefaultRuntimeDir {d}\nErrorLog {d}/error.log\n\
                 LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
                 LoadModule authz_core_module {m}/mod_authz_core.so\n\
                 LoadModule oxwsgi_module {so}\n",
                d = d.display(),
                m = mods.display(),
                so = module.display()
            );
            std::fs::write(&conf, text).map_err(|e| e.to_string())?;
            c.arg("-t").arg("-f").arg(&conf);
        }
        ServerKind::Nginx => {
            let conf = d.join("nginx.conf");
            let text = format!(
                "load_module {so};\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 16; }}\nhttp {{ access_log off; \
                 client_body_temp_path {d}/cb; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; \
                 uwsgi_temp_path {d}/u; scgi_temp_path {d}/s; }}\n",
                d = d.display(),
                so = module.display()
            );
            std::fs::write(&conf, text).map_err(|e| e.to_string())?;
            c.arg("-t")
                .arg("-p")
                .arg(format!("{}/", d.display()))
                .arg("-e")
                .arg(d.join("error.log"))
                .arg("-c")
                .arg(&conf);
        }
    }
    c.env_remove("PYTHONHOME").env_remove("PYTHONPATH");
    run(c, Duration::from_secs(30))
}

/// The shared libraries of `so` that the dynamic linker cannot find, and libpython's path.
fn ldd(so: &Path) -> Option<(Vec<String>, Option<PathBuf>)> {
    let mut c = Command::new("ldd");
    c.arg(so);
    let (_, text) = run(c, Duration::from_secs(10)).ok()?;
    let missing = text.lines().filter(|l| l.contains("not found")).map(|l| l.trim().to_string()).collect();
    let libpython = text.lines().find(|l| l.contains("libpython")).and_then(|l| {
        let (_, rest) = l.split_once("=>")?;
        let p = rest.split_whitespace().next()?;
        p.starts_with('/').then(|| PathBuf::from(p))
    });
    Some((missing, libpython))
}
