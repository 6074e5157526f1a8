//! `oxwsgi doctor APP`: import the app the way a worker would — with the virtualenv's (or
//! the module's) Python, as the worker user — and check that it is callable.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::app::{self, AppSpec};
use crate::options::Options;
use crate::procs::run;
use crate::report::{Report, Status};
use crate::resolve;
use crate::users::User;

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
pub fn check_app(rep: &mut Report, o: &Options, module_python: Option<&str>, user: Option<&User>) {
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
            if let Some(Err(p)) = user.map(|u| resolve::workers_can_read("app", path, u)) {
                rep.line(Status::Fail, &p.problem, Some(&p.fix));
                return;
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
