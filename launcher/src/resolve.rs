//! Option resolution shared by `serve`, `config` and `doctor`: from what the user typed to
//! checked facts (the app, the module and its Python, the worker user, sys.path). The
//! python-home and readability rules are those of the module itself (crate
//! `oxwsgi-checks`), so that what the launcher accepts the server accepts too.

use std::path::{Path, PathBuf};

use oxwsgi_checks::{Home, Problem};

use crate::app::{self, AppSpec};
use crate::options::{Options, ServerKind};
use crate::users::{self, User};
use crate::{Failure, locate};

/// The checks and facts both `serve` and `config` need.
pub struct Resolved {
    pub app: AppSpec,
    pub module: PathBuf,
    pub module_python: Option<String>,
    pub user: Option<User>,
    pub python_path: Vec<PathBuf>,
    /// Lines to show before starting ("python   ...", "note     ...", "warning  ...").
    pub notes: Vec<String>,
}

/// The python-home check of the module (`WSGIPythonHome` / `wsgi_python_home`), against the
/// Python the module `module` links (`module_python`, from [`locate::module_python_version`]).
pub fn check_home(home: &Path, module_python: Option<&str>, module: &Path) -> Result<Home, Problem> {
    let Some(python) = module_python else {
        return Err(Problem {
            problem: format!(
                "{} cannot be checked: {} names no libpython3.X, so its Python version is unknown",
                home.display(),
                module.display()
            ),
            fix: "rebuild the module with `make modules`".into(),
        });
    };
    oxwsgi_checks::check_python_home(home, python)
}

/// Whether the workers (running as `user`) can read `path`; `what` names it for the
/// message ("app", "--python-path" ...).
pub fn workers_can_read(what: &str, path: &Path, user: &User) -> Result<(), Problem> {
    user.can_read(path).map_err(|why| Problem {
        problem: format!("{what} {} is not readable by the workers: {why}", path.display()),
        fix: format!(
            "move it where {u} can read it, or make every directory down to it enterable (chmod o+rX); \
             or run oxwsgi as a non-root user (the server then runs as that user)",
            u = user.name
        ),
    })
}

/// Whether the workers can use the python-home `home` (named `what`): the home itself
/// and, for a virtualenv, its base interpreter's directory.
pub fn home_readable(what: &str, home: &Home, user: &User) -> Result<(), Problem> {
    for dir in home.needs_access() {
        let Err(why) = user.can_read(dir) else { continue };
        let u = &user.name;
        let h = home.path.display();
        return Err(if dir == home.path {
            Problem {
                problem: format!("{what} {h} is not readable by the workers: {why}"),
                fix: format!(
                    "move the virtualenv under /opt or /srv, or `chmod o+rX` every directory down to it, so that \
                     {u} can read it; or run oxwsgi as a non-root user (the server then runs as that user)"
                ),
            }
        } else {
            Problem {
                problem: format!(
                    "{what} {h} was made from {}, which is not readable by the workers: {why}",
                    dir.display()
                ),
                fix: format!(
                    "recreate it with {} -m venv --clear {h}",
                    oxwsgi_checks::python_home::interpreter(&home.python)
                ),
            }
        });
    }
    Ok(())
}

/// Resolve and check the options. `for_serve`: also check that the worker user can read
/// everything (`config` only prints text for another server).
pub fn resolve(o: &Options, for_serve: bool) -> Result<Resolved, Failure> {
    let app = app::resolve(o).map_err(Failure::msg)?;
    let module = locate::find_module(o, o.server).map_err(Failure::msg)?;
    let module_python = locate::module_python_version(&module);
    let user = users::worker_user(o).map_err(Failure::msg)?;
    // The worker user, when its access matters.
    let checked_user = user.as_ref().filter(|_| for_serve);
    let failed = |what: &str, p: Problem| Failure::msg(format!("{what} {p}"));
    let mut notes = Vec::new();
    if let Some(path) = &o.python_home {
        let home = check_home(path, module_python.as_deref(), &module).map_err(|p| failed("--python-home", p))?;
        if let Some(u) = checked_user {
            home_readable("--python-home", &home, u).map_err(|p| Failure::msg(p.to_string()))?;
        }
        notes.push(format!("python   {} ({})", path.display(), home.describe()));
        for w in home.warnings() {
            notes.push(format!("warning  python-home {w}"));
        }
    } else {
        notes.push(format!(
            "python   the system Python {} (no --python-home / $VIRTUAL_ENV)",
            module_python.as_deref().unwrap_or("")
        ));
    }
    let python_path = python_path(o, &app, checked_user, &mut notes)?;
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
    if let Some(u) = checked_user {
        let mut need: Vec<(String, &Path)> = Vec::new();
        if let AppSpec::Script { path, .. } = &app {
            need.push(("the app".into(), path));
        }
        need.extend(python_path.iter().map(|d| ("--python-path".to_string(), d.as_path())));
        need.extend(o.url_aliases.iter().map(|(url, p)| (format!("--url-alias {url}"), p.as_path())));
        for (what, p) in need {
            workers_can_read(&what, p, u).map_err(|p| Failure::msg(p.to_string()))?;
        }
    }
    if o.max_in_flight.is_some() && o.server == ServerKind::Apache {
        notes.push("note     --max-in-flight applies to nginx only; Apache's cap is processes x threads".into());
    }
    Ok(Resolved { app, module, module_python, user, python_path, notes })
}

/// sys.path: the user's --python-path, then the app's own directory (like mod_wsgi-express's
/// working directory, so that app.wsgi imports the modules beside it), then the current
/// directory (as gunicorn and `manage.py runserver` do, so that `cd project && oxwsgi serve
/// mysite/wsgi.py` finds `mysite.settings`).
fn python_path(
    o: &Options,
    app: &AppSpec,
    checked_user: Option<&User>,
    notes: &mut Vec<String>,
) -> Result<Vec<PathBuf>, Failure> {
    let mut python_path = o.python_path.clone();
    match app {
        AppSpec::Script { path, .. } => {
            if let Some(d) = path.parent() {
                if !python_path.iter().any(|p| p == d) {
                    python_path.push(d.to_path_buf());
                }
            }
            if let Some(cwd) = std::env::current_dir().ok().filter(|c| !python_path.contains(c)) {
                match checked_user.filter(|u| u.can_read(&cwd).is_err()) {
                    Some(u) => notes.push(format!(
                        "note     the current directory {} is not on sys.path: {} cannot read it",
                        cwd.display(),
                        u.name
                    )),
                    None => python_path.push(cwd),
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
    Ok(python_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_module_python_is_said_so() {
        let p = check_home(Path::new("/opt/venv"), None, Path::new("/m/mod_oxwsgi.so")).unwrap_err();
        assert!(p.problem.starts_with("/opt/venv cannot be checked: /m/mod_oxwsgi.so names no libpython3.X"), "{p}");
    }

    #[test]
    fn unreadable_paths_name_the_user_and_the_blocking_directory() {
        let nobody = User { name: "nobody-test".into(), uid: 65534, gid: 65534, group: "nogroup".into() };
        let d = std::env::temp_dir().join(format!("oxwsgi-resolve-{}", std::process::id()));
        let inner = d.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let r = workers_can_read("the app", &inner, &nobody);
        let _ = std::fs::remove_dir_all(&d);
        let p = r.unwrap_err();
        assert!(p.problem.starts_with(&format!("the app {} is not readable by the workers: ", inner.display())), "{p}");
        assert!(p.problem.contains(&format!("user nobody-test cannot enter {}", d.display())), "{p}");
        assert!(p.fix.contains("nobody-test can read it"), "{p}");
    }
}
