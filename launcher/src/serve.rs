//! `oxwsgi serve` and `oxwsgi config`: resolve the options into a [`Plan`], stage a private
//! server directory, run the server in the foreground, and stop it completely.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::app::{self, AppSpec};
use crate::cli::{Options, ServerKind};
use crate::confgen::{self, Plan};
use crate::locate::{self, User};
use crate::procs;
use crate::{Failure, say};

/// Lines in an error log that mean "the WSGI script could not be loaded".
const LOAD_FAILURE_MARKERS: &[&str] =
    &["failed to load the WSGI script", "failed to load WSGI script", "failed to import"];

fn server_label(kind: ServerKind, bin: &Path) -> String {
    let name = bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| kind.name().into());
    name
}

/// The checks and facts both `serve` and `config` need.
pub struct Resolved {
    pub app: AppSpec,
    pub module: PathBuf,
    pub module_python: Option<String>,
    pub user: Option<User>,
    pub python_path: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// Check the python-home against the module's Python; Err is a clear message.
pub fn check_python_home(home: &Path, module_python: Option<&str>, module: &Path) -> Result<String, String> {
    if !home.is_dir() {
        return Err(format!("--python-home {} is not a directory", home.display()));
    }
    if let Some(info) = locate::read_pyvenv(home) {
        let v = info.version.clone().unwrap_or_else(|| "?".into());
        if let (Some(mp), Some(vv)) = (module_python, info.version.as_deref()) {
            if locate::minor(vv) != mp {
                return Err(format!(
                    "the virtualenv {} was made with Python {vv}, but {} is built against Python {mp}; \
                     recreate it with python{mp}: python{mp} -m venv {}",
                    home.display(),
                    module.display(),
                    home.display()
                ));
            }
        }
        return Ok(format!("virtualenv, Python {v}"));
    }
    if let Some(mp) = module_python {
        let lib = home.join("lib").join(format!("python{mp}"));
        if !lib.is_dir() {
            return Err(format!(
                "--python-home {} is neither a virtualenv (no pyvenv.cfg) nor a Python {mp} prefix (no {})",
                home.display(),
                lib.display()
            ));
        }
    }
    Ok("Python prefix".into())
}

pub fn resolve(o: &Options, for_serve: bool) -> Result<Resolved, Failure> {
    let kind = o.server;
    let app = app::resolve(o).map_err(Failure::msg)?;
    let module = locate::find_module(o, kind).map_err(Failure::msg)?;
    let module_python = locate::module_python_version(&module);
    let user = locate::worker_user(o).map_err(Failure::msg)?;
    let mut notes = Vec::new();
    if let Some(home) = &o.python_home {
        let what = check_python_home(home, module_python.as_deref(), &module).map_err(Failure::msg)?;
        if let Some(u) = user.as_ref().filter(|_| for_serve) {
            locate::user_can_read(home, u).map_err(|e| {
                Failure::msg(format!(
                    "the server's workers run as {} and cannot use --python-home {}: {e}. \
                     Put the virtualenv where {} can read it (e.g. /opt or /srv), or run oxwsgi as a non-root user",
                    u.name,
                    home.display(),
                    u.name
                ))
            })?;
        }
        notes.push(format!("python   {} ({what})", home.display()));
    } else {
        notes.push(format!(
            "python   the system Python {} (no --python-home / $VIRTUAL_ENV)",
            module_python.as_deref().unwrap_or("")
        ));
    }
    // sys.path: the user's --python-path, then the app's own directory (like mod_wsgi-express's
    // working directory) so that app.wsgi can import the modules beside it.
    let mut python_path = o.python_path.clone();
    match &app {
        AppSpec::Script { path, .. } => {
            if let Some(d) = path.parent() {
                if !python_path.iter().any(|p| p == d) {
                    python_path.push(d.to_path_buf());
                }
            }
            // And the current directory, as gunicorn and `manage.py runserver` do, so that
            // `cd project && oxwsgi serve mysite/wsgi.py` finds `mysite.settings`.
            if let Ok(cwd) = std::env::current_dir() {
                let readable = match user.as_ref().filter(|_| for_serve) {
                    Some(u) => locate::user_can_read(&cwd, u).is_ok(),
                    None => true,
                };
                if python_path.contains(&cwd) {
                } else if readable {
                    python_path.push(cwd);
                } else if let Some(u) = &user {
                    notes.push(format!(
                        "note     the current directory {} is not on sys.path: {} cannot read it",
                        cwd.display(),
                        u.name
                    ));
                }
            }
        }
        AppSpec::Module { module: m, .. } => {
            let cwd = std::env::current_dir().map_err(|e| Failure::msg(format!("current directory: {e}")))?;
            if !python_path.contains(&cwd) {
                python_path.push(cwd);
            }
            if app::find_module_file(m, &python_path).is_none() {
                notes.push(format!(
                    "note     module {m} is not in {}; it must then be installed in the Python environment",
                    python_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        AppSpec::Demo => {}
    }
    for d in &python_path {
        if !d.is_dir() {
            return Err(Failure::msg(format!("--python-path {} is not a directory", d.display())));
        }
    }
    for (url, p) in &o.url_aliases {
        if !p.exists() {
            return Err(Failure::msg(format!("--url-alias {url}: {} does not exist", p.display())));
        }
    }
    if let (Some(u), true) = (&user, for_serve) {
        let mut need: Vec<(String, PathBuf)> = Vec::new();
        if let AppSpec::Script { path, .. } = &app {
            need.push(("the app".into(), path.clone()));
        }
        for d in &python_path {
            need.push(("--python-path".into(), d.clone()));
        }
        for (url, p) in &o.url_aliases {
            need.push((format!("--url-alias {url}"), p.clone()));
        }
        for (what, p) in need {
            locate::user_can_read(&p, u).map_err(|e| {
                Failure::msg(format!(
                    "the server's workers run as {} and cannot read {what} {}: {e}. Move it where {} can \
                     read it, make the path readable (chmod o+rX), or run oxwsgi as a non-root user \
                     (the server then runs as that user)",
                    u.name,
                    p.display(),
                    u.name
                ))
            })?;
        }
    }
    if o.max_in_flight.is_some() && kind == ServerKind::Apache {
        notes.push("note     --max-in-flight applies to nginx only; Apache's cap is processes x threads".into());
    }
    Ok(Resolved { app, module, module_python, user, python_path, notes })
}

fn make_plan(o: &Options, r: &Resolved, dir: PathBuf, module: PathBuf, script: PathBuf, port: u16) -> Plan {
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

/// `oxwsgi config`.
pub fn config(o: &Options) -> Result<(), Failure> {
    let r = resolve(o, false)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut preamble = String::new();
    let script = match &r.app {
        AppSpec::Script { path, .. } => path.clone(),
        AppSpec::Demo => {
            let p = cwd.join("oxwsgi-demo.wsgi");
            preamble.push_str(&format!(
                "# No app given: this uses the built-in demo app. Save it first with:\n#   oxwsgi demo > {}\n",
                p.display()
            ));
            p
        }
        AppSpec::Module { module, attr } => {
            let p = cwd.join(format!("{}.oxwsgi.wsgi", module.replace('.', "_")));
            preamble.push_str(&format!(
                "# The app is {module}:{attr}; the server needs a script file. Save these lines\n\
                 # (without the leading '# | ') as {}:\n",
                p.display()
            ));
            for l in app::shim(module, attr, &r.python_path).lines() {
                preamble.push_str(&format!("# | {l}\n"));
            }
            p
        }
    };
    let (dir, module) = if o.full {
        let d = PathBuf::from("/tmp/oxwsgi-serve-XXXXXX");
        let m = d.join("modules").join(o.server.module_file());
        (d, m)
    } else {
        (PathBuf::from("/tmp/oxwsgi-serve-XXXXXX"), r.module.clone())
    };
    let plan = make_plan(o, &r, dir, module, script, o.port);
    let text = if o.full { format!("{preamble}{}", confgen::full(&plan)) } else { confgen::snippet(&plan, &preamble) };
    print!("{text}");
    Ok(())
}

/// Bind test for host:port (port 0: pick a free one). Err is the message to show.
fn check_port(host: &str, port: u16) -> Result<u16, String> {
    let addrs: Vec<_> =
        (host, port).to_socket_addrs().map_err(|e| format!("--host {host}: cannot resolve it: {e}"))?.collect();
    let Some(addr) = addrs.first() else { return Err(format!("--host {host}: no address")) };
    match TcpListener::bind(addr) {
        Ok(l) => Ok(l.local_addr().map(|a| a.port()).unwrap_or(port)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "port {port} on {host} is already in use (another server, or an `oxwsgi serve` still running?); \
             pick another with --port N (--port 0 picks a free one)"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "no permission to listen on port {port} (ports below 1024 need root): pick another with --port N"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(format!("cannot listen on {host}: it is not an address of this machine ({e})"))
        }
        Err(e) => Err(format!("cannot listen on {host}:{port}: {e}")),
    }
}

fn mkdtemp() -> Result<PathBuf, String> {
    let mut tmpl = b"/tmp/oxwsgi-serve-XXXXXX\0".to_vec();
    // SAFETY: tmpl is a writable NUL-terminated buffer ending in XXXXXX, as mkdtemp requires.
    let p = unsafe { libc::mkdtemp(tmpl.as_mut_ptr() as *mut libc::c_char) };
    if p.is_null() {
        return Err(format!("cannot create a directory in /tmp: {}", std::io::Error::last_os_error()));
    }
    tmpl.pop();
    let dir = PathBuf::from(String::from_utf8_lossy(&tmpl).into_owned());
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// The private directory: layout, staged module and scripts.
fn stage(o: &Options, r: &Resolved) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let dir = mkdtemp()?;
    for sub in ["logs", "run", "tmp", "modules", "app", "htdocs"] {
        let p = dir.join(sub);
        fs::create_dir(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", p.display()))?;
    }
    let module = dir.join("modules").join(o.server.module_file());
    fs::copy(&r.module, &module)
        .map_err(|e| format!("cannot copy {} to {}: {e}", r.module.display(), module.display()))?;
    fs::set_permissions(&module, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", module.display()))?;
    let script = match &r.app {
        AppSpec::Script { path, .. } => path.clone(),
        AppSpec::Demo => {
            let p = dir.join("app/demo.wsgi");
            write_file(&p, app::DEMO_APP, 0o644)?;
            p
        }
        AppSpec::Module { module: m, attr } => {
            let p = dir.join("app").join(format!("{}.wsgi", m.replace('.', "_")));
            write_file(&p, &app::shim(m, attr, &r.python_path), 0o644)?;
            p
        }
    };
    Ok((dir, module, script))
}

/// Follows a log file, printing complete new lines.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail { path, offset: 0, partial: Vec::new() }
    }

    /// New complete lines since the last call.
    fn lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(mut f) = fs::File::open(&self.path) else { return out };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // truncated or replaced
        }
        if len == self.offset {
            return out;
        }
        use std::io::Seek;
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut buf = Vec::new();
        if f.take(len - self.offset).read_to_end(&mut buf).is_err() {
            return out;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            out.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        out
    }

    fn all(&self) -> String {
        fs::read(&self.path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

/// Error-log lines worth showing when start-up fails (drops notice/info chatter).
fn relevant(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            !l.trim().is_empty()
                && ![":notice]", ":info]", ":debug]", "[notice]", "[info]", "[debug]"].iter().any(|m| l.contains(m))
        })
        .collect()
}

enum Probe {
    /// Nothing listening yet (or the connection closed without an answer).
    NotYet,
    /// The status line.
    Answered(u16, String),
    /// Stop requested or the server exited while we waited.
    Aborted,
}

fn probe(host: &str, port: u16, path: &str, deadline: Instant, abort: &mut dyn FnMut() -> bool) -> Probe {
    let Ok(Some(addr)) = (host, port).to_socket_addrs().map(|mut a| a.next()) else { return Probe::NotYet };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return Probe::NotYet };
    let hosthdr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let req = format!("GET {path} HTTP/1.0\r\nHost: {hosthdr}\r\nUser-Agent: oxwsgi-launcher\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return Probe::NotYet;
    }
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            return Probe::Answered(code, line);
        }
        if abort() {
            return Probe::Aborted;
        }
        if Instant::now() > deadline {
            return Probe::NotYet;
        }
        match s.read(&mut chunk) {
            Ok(0) => return Probe::NotYet,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Probe::NotYet,
        }
    }
}

/// Source files whose change triggers a worker restart with --reload-on-change.
struct Watcher {
    roots: Vec<PathBuf>,
    skip: PathBuf,
    state: Vec<(PathBuf, Option<SystemTime>)>,
}

impl Watcher {
    fn new(roots: Vec<PathBuf>, skip: PathBuf) -> Watcher {
        let mut w = Watcher { roots, skip, state: Vec::new() };
        w.state = w.scan();
        w
    }

    fn scan(&self) -> Vec<(PathBuf, Option<SystemTime>)> {
        let mut out = Vec::new();
        let mut stack: Vec<(PathBuf, u32)> = self.roots.iter().map(|r| (r.clone(), 0)).collect();
        while let Some((d, depth)) = stack.pop() {
            if out.len() > 5000 || d.starts_with(&self.skip) || d.join("pyvenv.cfg").exists() {
                continue;
            }
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    if depth < 6 && !name.starts_with('.') && name != "__pycache__" && name != "node_modules" {
                        stack.push((p, depth + 1));
                    }
                } else if name.ends_with(".py") || name.ends_with(".wsgi") {
                    let m = e.metadata().ok().and_then(|m| m.modified().ok());
                    out.push((p, m));
                }
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// A changed, added or removed file, if any.
    fn changed(&mut self) -> Option<PathBuf> {
        let now = self.scan();
        let hit = now
            .iter()
            .find(|n| !self.state.contains(n))
            .map(|n| n.0.clone())
            .or_else(|| self.state.iter().find(|o| !now.iter().any(|n| n.0 == o.0)).map(|o| o.0.clone()));
        self.state = now;
        hit
    }
}

struct Running {
    child: Child,
    kind: ServerKind,
    label: String,
    exited: Option<std::process::ExitStatus>,
}

impl Running {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn poll_exit(&mut self) -> Option<std::process::ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
            }
        }
        self.exited
    }

    /// Stop the server and wait until none of its processes is left.
    fn stop(&mut self) -> Result<(), String> {
        let pid = self.pid();
        let t0 = Instant::now();
        let (sig, how) = match self.kind {
            ServerKind::Apache => (libc::SIGTERM, "SIGTERM"),
            ServerKind::Nginx => (libc::SIGQUIT, "SIGQUIT, graceful"),
        };
        let count0 = procs::signal_count();
        if self.poll_exit().is_none() {
            say(&format!("stopping {} (pid {pid}, {how}) ...", self.label));
            procs::send(pid, sig);
        }
        let mut termed = false;
        let mut killed = false;
        loop {
            self.poll_exit();
            let left = procs::server_processes(pid);
            if left.is_empty() && self.exited.is_some() {
                break;
            }
            let waited = t0.elapsed();
            if !termed && self.kind == ServerKind::Nginx && waited > Duration::from_secs(8) {
                say(&format!("{} still running after {}s; fast shutdown (SIGTERM)", self.label, waited.as_secs()));
                procs::send(pid, libc::SIGTERM);
                termed = true;
            }
            let impatient = procs::signal_count() > count0 + 1;
            if !killed && (waited > Duration::from_secs(15) || impatient) {
                say(&format!("killing the remaining server processes {left:?} (SIGKILL)"));
                for p in &left {
                    procs::send(*p, libc::SIGKILL);
                }
                procs::send(-pid, libc::SIGKILL);
                killed = true;
            }
            if waited > Duration::from_secs(25) {
                return Err(format!("server processes {left:?} did not exit even after SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        say(&format!("stopped in {:.1}s; no server process left", t0.elapsed().as_secs_f64()));
        Ok(())
    }
}

fn server_command(plan: &Plan, bin: &Path, out: fs::File) -> Result<Command, String> {
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut c = Command::new(bin);
    match plan.kind {
        ServerKind::Apache => {
            c.arg("-f").arg(plan.conf_path()).arg("-DFOREGROUND");
        }
        ServerKind::Nginx => {
            c.arg("-p").arg(format!("{}/", plan.dir.display()));
            c.arg("-e").arg(plan.error_log());
            c.arg("-c").arg(plan.conf_path());
        }
    }
    // The module picks the interpreter from the configuration; inherited Python variables
    // would override it inside the workers.
    c.env_remove("PYTHONHOME").env_remove("PYTHONPATH");
    c.current_dir(&plan.dir);
    c.stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err));
    // SAFETY: child_setup only calls async-signal-safe functions.
    unsafe {
        c.pre_exec(procs::child_setup);
    }
    Ok(c)
}

/// `oxwsgi serve`: returns the process exit code.
pub fn serve(o: &Options) -> Result<i32, Failure> {
    let kind = o.server;
    let bin = locate::server_binary(kind).map_err(Failure::msg)?;
    let version = locate::server_version(kind, &bin).map_err(Failure::msg)?;
    let label = server_label(kind, &bin);
    say(&format!("server   {version} ({})", bin.display()));
    if kind == ServerKind::Apache && locate::apache_modules_dir().is_none() {
        return Err(Failure::msg(
            "Apache's modules (mod_mpm_event.so, mod_alias.so ...) were not found in /usr/lib/apache2/modules: \
             install apache2 (`apt-get install apache2`)",
        ));
    }
    let r = resolve(o, true)?;
    say(&format!(
        "module   {}{}",
        r.module.display(),
        r.module_python.as_deref().map(|v| format!(" (built for Python {v})")).unwrap_or_default()
    ));
    say(&format!("app      {}", r.app.describe()));
    for n in &r.notes {
        say(n);
    }
    let port = check_port(&o.host, o.port).map_err(Failure::msg)?;
    let (dir, module, script) = stage(o, &r).map_err(Failure::msg)?;
    let plan = make_plan(o, &r, dir.clone(), module, script, port);
    say(&format!(
        "workers  {} process{} x {} thread{}, {}",
        plan.processes,
        if plan.processes == 1 { "" } else { "es" },
        plan.threads,
        if plan.threads == 1 { "" } else { "s" },
        match &plan.user {
            Some(u) => format!("as user {}", u.name),
            None => "as the current user".into(),
        }
    ));
    let conf = plan.conf_path();
    write_file(&conf, &confgen::full(&plan), 0o644).map_err(Failure::msg)?;
    say(&format!("config   {}", conf.display()));

    procs::install_handlers();
    let out_path = dir.join("logs/server.out");
    let out =
        fs::File::create(&out_path).map_err(|e| Failure::msg(format!("cannot create {}: {e}", out_path.display())))?;
    let mut cmd = server_command(&plan, &bin, out).map_err(Failure::msg)?;
    say(&format!("starting {label} on {}:{port} ...", o.host));
    let child = cmd.spawn().map_err(|e| Failure::msg(format!("cannot start {}: {e}", bin.display())))?;
    let mut run = Running { child, kind, label: label.clone(), exited: None };
    let code = supervise(o, &plan, &mut run, &out_path);
    // Whatever happened, leave nothing running.
    let stopped = run.stop();
    // Keep the logs of a failed start; an interrupted start (130) is not a failure.
    let keep = o.keep || (code != 0 && code != 130) || stopped.is_err();
    if let Err(e) = &stopped {
        say(&format!("error: {e}"));
    }
    if keep {
        say(&format!("kept the server directory {} (config and logs)", dir.display()));
    } else if let Err(e) = fs::remove_dir_all(&dir) {
        say(&format!("could not remove {}: {e}", dir.display()));
    }
    Ok(if stopped.is_err() { 1 } else { code })
}

/// Wait for readiness, then stream logs until a stop signal or the server exits.
fn supervise(o: &Options, plan: &Plan, run: &mut Running, out_path: &Path) -> i32 {
    let t0 = Instant::now();
    let mut errlog = Tail::new(plan.error_log());
    let mut acclog = Tail::new(plan.access_log_path());
    let mut srvout = Tail::new(out_path.to_path_buf());
    let deadline = t0 + Duration::from_secs(o.startup_timeout);
    let mut last_progress = Instant::now();
    say(&format!("waiting for GET {} to answer ...", plan.mount));
    // Start-up: probe until the app answers.
    loop {
        if let Some(sig) = procs::stop_requested() {
            say(&format!("{} received while starting", procs::signal_name(sig)));
            return 130;
        }
        if let Some(st) = run.poll_exit() {
            startup_failed(plan, &run.label, &format!("{} exited during start-up ({st})", run.label), &errlog, &srvout);
            return 1;
        }
        let label = run.label.clone();
        let mut abort = || procs::stop_requested().is_some() || run.poll_exit().is_some();
        match probe(&plan.host, plan.port, &plan.mount, deadline, &mut abort) {
            Probe::Aborted => continue,
            Probe::Answered(code, line) => {
                // Give the module a moment to finish writing the traceback.
                std::thread::sleep(Duration::from_millis(100));
                let log = errlog.all();
                if code >= 500 && LOAD_FAILURE_MARKERS.iter().any(|m| log.contains(m)) {
                    startup_failed(
                        plan,
                        &label,
                        &format!(
                            "the app failed to load: GET {} answered {line:?}; the worker's traceback:",
                            plan.mount
                        ),
                        &errlog,
                        &srvout,
                    );
                    return 1;
                }
                say(&format!("ready in {:.1}s: GET {} -> {}", t0.elapsed().as_secs_f64(), plan.mount, line));
                if code >= 500 {
                    say("warning: the app answered with a server error; see the error log below");
                }
                break;
            }
            Probe::NotYet => {
                if Instant::now() > deadline {
                    startup_failed(
                        plan,
                        &label,
                        &format!(
                            "{label} did not answer on {}:{} within {}s (--startup-timeout)",
                            plan.host, plan.port, o.startup_timeout
                        ),
                        &errlog,
                        &srvout,
                    );
                    return 1;
                }
                if last_progress.elapsed() > Duration::from_secs(2) {
                    say(&format!("still waiting ({:.0}s) ...", t0.elapsed().as_secs_f64()));
                    last_progress = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    say(&format!("serving  {}", plan.url()));
    for (url, p) in &plan.url_aliases {
        say(&format!("static   {url} -> {} (served by {})", p.display(), run.label));
    }
    if plan.access_log {
        say(&format!("logs     {} and {}", plan.error_log().display(), plan.access_log_path().display()));
    } else {
        say(&format!("logs     {} (add --access-log for requests)", plan.error_log().display()));
    }
    let mut watcher = if o.reload_on_change {
        let mut roots = plan.python_path.clone();
        if let Some(d) = plan.script.parent() {
            roots.push(d.to_path_buf());
        }
        roots.retain(|r| !r.starts_with(&plan.dir));
        let w = Watcher::new(roots, plan.dir.clone());
        say(&format!(
            "reload   on changes to the {} .py/.wsgi files under {}",
            w.state.len(),
            w.roots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
        Some(w)
    } else {
        None
    };
    say("press Ctrl-C to stop");
    let mut last_scan = Instant::now();
    let stdout = std::io::stdout();
    loop {
        {
            let mut lock = stdout.lock();
            for l in srvout.lines().into_iter().chain(errlog.lines()) {
                let _ = writeln!(lock, "{l}");
            }
            if plan.access_log {
                for l in acclog.lines() {
                    let _ = writeln!(lock, "{l}");
                }
            }
            let _ = lock.flush();
        }
        if let Some(sig) = procs::stop_requested() {
            let _ = writeln!(std::io::stderr());
            say(&format!("{} received", procs::signal_name(sig)));
            return 0;
        }
        if let Some(st) = run.poll_exit() {
            std::thread::sleep(Duration::from_millis(100));
            let mut lock = stdout.lock();
            for l in srvout.lines().into_iter().chain(errlog.lines()) {
                let _ = writeln!(lock, "{l}");
            }
            say(&format!("error: {} exited unexpectedly ({st})", run.label));
            return 1;
        }
        if let Some(w) = watcher.as_mut() {
            if last_scan.elapsed() > Duration::from_secs(1) {
                last_scan = Instant::now();
                if let Some(f) = w.changed() {
                    let (sig, how) = match plan.kind {
                        ServerKind::Apache => (libc::SIGUSR1, "graceful restart"),
                        ServerKind::Nginx => (libc::SIGHUP, "reload"),
                    };
                    say(&format!("{} changed: restarting the workers ({how})", f.display()));
                    procs::send(run.pid(), sig);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An error-log line without the server's prefixes (time, module, pid, client) and the
/// module's "<script>: " context, for showing a traceback.
fn tidy(line: &str, script: &str) -> String {
    let mut s = line;
    if let Some(rest) = s.strip_prefix("nginx: [") {
        // nginx's own stderr: "nginx: [emerg] text"
        if let Some((_, r)) = rest.split_once("] ") {
            s = r;
        }
    } else if s.starts_with('[') {
        // Apache: "[time] [module:level] [pid N:tid M] [client a:p] text"
        while s.starts_with('[') {
            match s.find("] ") {
                Some(i) => s = &s[i + 2..],
                None => break,
            }
        }
    } else if s.len() > 20 && s.as_bytes()[4] == b'/' && s.as_bytes()[7] == b'/' {
        // nginx: "2024/01/01 12:00:00 [error] 12#13: *1 text, client: ..."
        if let Some(i) = s.find("]: ").or_else(|| s.find("] ")) {
            let rest = &s[i + 2..];
            let rest = rest.trim_start_matches(':').trim_start();
            let rest = match rest.split_once(": ") {
                Some((pid, r)) if pid.contains('#') => r,
                _ => rest,
            };
            let rest = match rest.strip_prefix('*') {
                Some(r) => r.split_once(' ').map(|x| x.1).unwrap_or(r),
                None => rest,
            };
            s = rest;
        }
    }
    let s = s.strip_prefix(script).and_then(|r| r.strip_prefix(": ")).unwrap_or(s);
    s.to_string()
}

fn startup_failed(plan: &Plan, label: &str, headline: &str, errlog: &Tail, srvout: &Tail) {
    say(&format!("error: {headline}"));
    let out = srvout.all();
    let log = errlog.all();
    let mut lines: Vec<&str> = relevant(&out);
    lines.extend(relevant(&log));
    let text = format!("{out}\n{log}");
    if text.contains("Address already in use") {
        say(&format!(
            "port {} was taken by another process while {label} started; pick another with --port",
            plan.port
        ));
    }
    if lines.is_empty() {
        say(&format!("(the error log {} says nothing more)", plan.error_log().display()));
    } else {
        say(&format!("from {} and {label}'s output:", plan.error_log().display()));
        let script = plan.script.to_string_lossy();
        // The same message often reaches both the server's stderr and its error log.
        let mut shown: Vec<String> = Vec::new();
        for l in &lines {
            let t = tidy(l, &script);
            if !shown.contains(&t) {
                shown.push(t);
            }
        }
        let skip = shown.len().saturating_sub(60);
        for l in &shown[skip..] {
            let _ = writeln!(std::io::stderr(), "    {l}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevant_lines() {
        let t = "[Mon] [mpm_event:notice] [pid 1] AH00489: resuming\n[Mon] [oxwsgi:error] [pid 2] Traceback\nnginx: [emerg] bad\n2024/01/01 [notice] 1#1: start\n";
        assert_eq!(relevant(t), vec!["[Mon] [oxwsgi:error] [pid 2] Traceback", "nginx: [emerg] bad"]);
    }

    #[test]
    fn tidies_lines() {
        let a = "[Tue Nov 24 05:16:13.895 2026] [oxwsgi:error] [pid 30135:tid 30139] [client 127.0.0.1:33920] /a/b.wsgi: ModuleNotFoundError: x";
        assert_eq!(tidy(a, "/a/b.wsgi"), "ModuleNotFoundError: x");
        let n = "2026/11/24 05:16:13 [error] 123#124: *1 /a/b.wsgi: Traceback (most recent call last):";
        assert_eq!(tidy(n, "/a/b.wsgi"), "Traceback (most recent call last):");
        let e = "nginx: [emerg] unknown directive";
        assert_eq!(tidy(e, "/a/b.wsgi"), "unknown directive");
    }

    #[test]
    fn port_in_use() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = check_port("127.0.0.1", port).unwrap_err();
        assert!(e.contains("already in use"), "{e}");
        drop(l);
        assert_eq!(check_port("127.0.0.1", port).unwrap(), port);
        assert_ne!(check_port("127.0.0.1", 0).unwrap(), 0);
    }

    #[test]
    fn tail_follows() {
        let d = std::env::temp_dir().join(format!("oxwsgi-tail-{}", std::process::id()));
        fs::write(&d, "a\nb").unwrap();
        let mut t = Tail::new(d.clone());
        assert_eq!(t.lines(), vec!["a"]);
        fs::OpenOptions::new().append(true).open(&d).unwrap().write_all(b"c\nd\n").unwrap();
        assert_eq!(t.lines(), vec!["bc", "d"]);
        let _ = fs::remove_file(d);
    }
}
