//! `oxwsgi doctor`: check what breaks real deployments, and say how to fix it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::app::{self, AppSpec};
use crate::cli::{Options, ServerKind};
use crate::locate::{self, User};

#[derive(Clone, Copy, PartialEq)]
enum Status {
    Ok,
    Warn,
    Fail,
    Info,
}

struct Report {
    fails: usize,
    warns: usize,
}

impl Report {
    fn line(&mut self, st: Status, what: &str, fix: Option<&str>) {
        let tag = match st {
            Status::Ok => "ok  ",
            Status::Warn => {
                self.warns += 1;
                "WARN"
            }
            Status::Fail => {
                self.fails += 1;
                "FAIL"
            }
            Status::Info => "    ",
        };
        let mut first = true;
        for l in what.lines() {
            if first {
                println!("{tag}  {l}");
                first = false;
            } else {
                println!("      {l}");
            }
        }
        if let Some(f) = fix {
            println!("      fix: {f}");
        }
    }
}

/// Run a command with a time limit; (success, stdout+stderr).
fn run(mut c: Command, limit: Duration) -> Result<(bool, String), String> {
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if t0.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text.trim().to_string()))
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

/// The interpreter that can stand in for the module's embedded Python when importing the app.
fn python_for(o: &Options, module_python: Option<&str>) -> Option<PathBuf> {
    if let Some(h) = &o.python_home {
        for n in ["bin/python", "bin/python3"] {
            if h.join(n).exists() {
                return Some(h.join(n));
            }
        }
        if let Some(v) = module_python {
            let p = h.join(format!("bin/python{v}"));
            if p.exists() {
                return Some(p);
            }
        }
    }
    let v = module_python.unwrap_or("3");
    [format!("/usr/bin/python{v}"), format!("/usr/local/bin/python{v}")]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

const IMPORT_CHECK: &str = r#"
import sys, types, traceback
kind, target, attr, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for p in reversed(paths):
    if p not in sys.path:
        sys.path.insert(0, p)
try:
    if kind == "script":
        m = types.ModuleType("_oxwsgi_doctor_app")
        m.__file__ = target
        sys.modules[m.__name__] = m
        with open(target, "rb") as f:
            code = compile(f.read(), target, "exec")
        exec(code, m.__dict__)
        obj = m
    else:
        import importlib
        obj = importlib.import_module(target)
    call = attr.endswith("()")
    for part in attr.rstrip("()").split("."):
        obj = getattr(obj, part)
    if call:
        obj = obj()
except Exception:
    traceback.print_exc()
    sys.exit(3)
if not callable(obj):
    print("%s is not callable (%r)" % (attr, type(obj)))
    sys.exit(4)
print("ok: Python %s, %s" % (sys.version.split()[0], sys.prefix))
"#;

pub fn doctor(o: &Options) -> i32 {
    let mut rep = Report { fails: 0, warns: 0 };
    let kinds: Vec<ServerKind> =
        if o.server_given { vec![o.server] } else { vec![ServerKind::Apache, ServerKind::Nginx] };
    println!("oxwsgi doctor: checking {}", kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(" and "));

    // --- the worker user
    let user: Option<User> = match locate::worker_user(o) {
        Ok(u) => {
            match &u {
                Some(u) => rep.line(
                    Status::Ok,
                    &format!("running as root: the server workers will run as {} (uid {})", u.name, u.uid),
                    None,
                ),
                None => rep.line(
                    Status::Info,
                    &format!("running as uid {}: the servers will run as this user", locate::current_uid()),
                    None,
                ),
            }
            u
        }
        Err(e) => {
            rep.line(Status::Fail, &e, Some("create the account, or pass --user NAME"));
            None
        }
    };

    // --- servers and modules
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

    // --- the system Python the module embeds
    if let Some(v) = &module_python {
        let stdlib = PathBuf::from(format!("/usr/lib/python{v}/os.py"));
        if o.python_home.is_none() && !stdlib.exists() {
            rep.line(
                Status::Fail,
                &format!("Python {v}'s standard library is not installed ({} missing)", stdlib.display()),
                Some(&format!("apt-get install python{v}")),
            );
        }
    }

    // --- the virtualenv / python-home
    match &o.python_home {
        None => rep.line(
            Status::Info,
            "no --python-home (and no $VIRTUAL_ENV): apps get the system Python's packages",
            None,
        ),
        Some(home) => check_home(&mut rep, home, module_python.as_deref(), user.as_ref()),
    }

    // --- the app
    if o.app.is_some() {
        check_app(&mut rep, o, module_python.as_deref(), user.as_ref());
    }

    println!();
    if rep.fails == 0 {
        println!(
            "oxwsgi doctor: no problems found{}",
            if rep.warns > 0 { format!(" ({} warning(s))", rep.warns) } else { String::new() }
        );
        0
    } else {
        println!("oxwsgi doctor: {} problem(s), {} warning(s)", rep.fails, rep.warns);
        1
    }
}

fn check_home(rep: &mut Report, home: &Path, module_python: Option<&str>, user: Option<&User>) {
    let name = format!("python-home {}", home.display());
    if !home.is_dir() {
        rep.line(
            Status::Fail,
            &format!("{name} does not exist"),
            Some("create it: /usr/bin/python3 -m venv DIR, or fix --python-home"),
        );
        return;
    }
    match locate::read_pyvenv(home) {
        Some(info) => {
            let v = info.version.clone().unwrap_or_default();
            match (module_python, info.version.as_deref()) {
                (Some(mp), Some(vv)) if locate::minor(vv) != mp => rep.line(
                    Status::Fail,
                    &format!("{name} is a virtualenv made with Python {vv}, but the module is built against Python {mp}:\nthe workers would fail to start (wrong standard library, incompatible compiled packages)"),
                    Some(&format!("recreate it with the module's Python: /usr/bin/python{mp} -m venv --clear {h}, then reinstall your packages into it (or rebuild oxwsgi against Python {})", locate::minor(vv), h = home.display())),
                ),
                (_, None) => rep.line(Status::Warn, &format!("{name}: pyvenv.cfg has no version line"), None),
                _ => rep.line(Status::Ok, &format!("{name}: virtualenv, Python {v}"), None),
            }
            let same_minor = match (module_python, info.version.as_deref()) {
                (Some(mp), Some(vv)) => locate::minor(vv) == mp,
                _ => true,
            };
            if let (Some(base), Some(mp)) = (&info.home, module_python) {
                let system = Path::new("/usr/bin");
                if same_minor && base != system && !base.starts_with("/usr/local") {
                    rep.line(
                        Status::Warn,
                        &format!("{name} was made from {} (pyvenv.cfg home), not from the Python the module embeds (/usr/bin/python{mp})", base.display()),
                        Some(&format!("recreate it with /usr/bin/python{mp} -m venv {}", home.display())),
                    );
                }
                if let Some(u) = user {
                    if let Err(e) = locate::user_can_read(base, u) {
                        rep.line(
                            Status::Fail,
                            &format!("the base Python of {name} is not readable by the workers: {e}"),
                            Some(&format!("recreate the venv with /usr/bin/python{mp} -m venv")),
                        );
                    }
                }
            }
            let sp = home.join("lib").join(format!("python{}", locate::minor(&v))).join("site-packages");
            if info.version.is_some() && !sp.is_dir() {
                rep.line(Status::Warn, &format!("{name}: {} is missing", sp.display()), None);
            }
        }
        None => {
            if let Some(mp) = module_python {
                let lib = home.join("lib").join(format!("python{mp}"));
                if lib.is_dir() {
                    rep.line(Status::Ok, &format!("{name}: a Python {mp} prefix"), None);
                } else {
                    rep.line(
                        Status::Fail,
                        &format!(
                            "{name} is neither a virtualenv (no pyvenv.cfg) nor a Python {mp} prefix (no {})",
                            lib.display()
                        ),
                        Some(&format!("point --python-home at a virtualenv made with /usr/bin/python{mp} -m venv")),
                    );
                }
            }
        }
    }
    if let Some(u) = user {
        match locate::user_can_read(home, u) {
            Ok(()) => rep.line(Status::Ok, &format!("{name} is readable by {}", u.name), None),
            Err(e) => rep.line(
                Status::Fail,
                &format!("{name} is not readable by the workers: {e}"),
                Some(&format!("move the virtualenv under /opt or /srv, or `chmod o+rX` every directory down to it, so that {} can read it", u.name)),
            ),
        }
    }
}

fn check_app(rep: &mut Report, o: &Options, module_python: Option<&str>, user: Option<&User>) {
    let spec = match app::resolve(o) {
        Ok(s) => s,
        Err(e) => {
            rep.line(Status::Fail, &e, None);
            return;
        }
    };
    let mut paths = o.python_path.clone();
    let (kind, target, attr) = match &spec {
        AppSpec::Script { path, callable } => {
            if let Some(d) = path.parent() {
                paths.push(d.to_path_buf());
            }
            if let Some(u) = user {
                if let Err(e) = locate::user_can_read(path, u) {
                    rep.line(
                        Status::Fail,
                        &format!("app {} is not readable by the workers: {e}", path.display()),
                        Some("move it where the worker user can read it"),
                    );
                    return;
                }
            }
            ("script", path.display().to_string(), callable.clone())
        }
        AppSpec::Module { module, attr } => {
            if let Ok(c) = std::env::current_dir() {
                paths.push(c);
            }
            ("module", module.clone(), attr.clone())
        }
        AppSpec::Demo => return,
    };
    let Some(py) = python_for(o, module_python) else {
        rep.line(Status::Warn, "no Python interpreter found to test-import the app", None);
        return;
    };
    let mut c = Command::new(&py);
    c.arg("-c").arg(IMPORT_CHECK).arg(kind).arg(&target).arg(&attr).args(&paths);
    c.env_remove("PYTHONHOME").env_remove("PYTHONPATH").env("PYTHONDONTWRITEBYTECODE", "1");
    if let Some(u) = user {
        c.uid(u.uid).gid(u.gid).env("HOME", "/").current_dir("/");
    }
    match run(c, Duration::from_secs(60)) {
        Ok((true, out)) => rep.line(
            Status::Ok,
            &format!("the app {target}:{attr} imports and is callable ({})", out.lines().last().unwrap_or("")),
            None,
        ),
        Ok((false, out)) => rep.line(
            Status::Fail,
            &format!(
                "the app {target} fails to import with {}{}:\n{out}",
                py.display(),
                user.map(|u| format!(" as {}", u.name)).unwrap_or_default()
            ),
            None,
        ),
        Err(e) => rep.line(Status::Warn, &format!("could not test-import the app: {e}"), None),
    }
}
