//! Is a directory a usable python-home for the module?
//!
//! One rule set for `WSGIPythonHome` (Apache `configtest`), `wsgi_python_home` (`nginx -t`),
//! `oxwsgi serve --python-home` and `oxwsgi doctor`:
//!
//! - it must be a directory;
//! - with a `pyvenv.cfg` it is a virtualenv: the file must be readable, and the Python
//!   version it records must have the major.minor of the module's Python (a virtualenv of
//!   another Python has another standard library and compiled packages that cannot load);
//! - without one it must be a prefix of the module's Python: `lib/pythonX.Y` holds its
//!   standard library (`os.py`, the landmark CPython itself looks for).
//!
//! What would not stop the workers but is still worth a word (no version line, missing
//! site-packages, a virtualenv made from another interpreter) comes as [`Home::warnings`].

use std::fmt;
use std::path::{Path, PathBuf};

/// A python-home that passed [`check_python_home`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub path: PathBuf,
    pub kind: HomeKind,
    /// major.minor of the module's Python, as given to [`check_python_home`].
    pub python: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeKind {
    /// A virtualenv: the version and base interpreter directory its pyvenv.cfg records.
    Virtualenv { version: Option<String>, base: Option<PathBuf> },
    /// A Python installation prefix (`<prefix>/lib/pythonX.Y`).
    Prefix,
}

/// What is wrong, and how to fix it. Displayed as one line: `<problem>; <fix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Starts with the path concerned, so that callers can put their own name in front
    /// (`WSGIPythonHome: `, `--python-home `).
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.problem, self.fix)
    }
}

impl std::error::Error for Problem {}

fn problem(problem: String, fix: String) -> Problem {
    Problem { problem, fix }
}

/// "3.11" from "3.11.2", "3.11.2.final.0" or "3.11".
pub fn major_minor(version: &str) -> String {
    version.trim().split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The command that makes a virtualenv for Python `python` (major.minor): the system
/// interpreter by its full path when it is installed, else its name.
pub fn interpreter(python: &str) -> String {
    let p = format!("/usr/bin/python{python}");
    if Path::new(&p).exists() { p } else { format!("python{python}") }
}

/// The `version` (or virtualenv's `version_info`) and `home` of a pyvenv.cfg.
fn parse_pyvenv(text: &str) -> (Option<String>, Option<PathBuf>) {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string()).filter(|v| !v.is_empty())
        })
    };
    (get("version").or_else(|| get("version_info")), get("home").map(PathBuf::from))
}

/// Check `home` against the module's Python `python` (major.minor, e.g. "3.11").
pub fn check_python_home(home: &Path, python: &str) -> Result<Home, Problem> {
    let py = interpreter(python);
    let make_one = format!("point it at a virtualenv made with {py} -m venv DIR, or at a Python {python} prefix");
    match std::fs::metadata(home) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(problem(format!("{} is not a directory (it does not exist)", home.display()), make_one));
        }
        Err(e) => {
            return Err(problem(
                format!("{} cannot be examined: {e}", home.display()),
                "make it and the directories above it accessible".into(),
            ));
        }
        Ok(m) if !m.is_dir() => return Err(problem(format!("{} is not a directory", home.display()), make_one)),
        Ok(_) => {}
    }
    let cfg = home.join("pyvenv.cfg");
    if cfg.exists() {
        let text = std::fs::read_to_string(&cfg).map_err(|e| {
            problem(
                format!("{} cannot be read: {e}", cfg.display()),
                format!("make it readable: chmod a+r {}", cfg.display()),
            )
        })?;
        let (version, base) = parse_pyvenv(&text);
        if let Some(v) = &version {
            if major_minor(v) != python {
                return Err(problem(
                    format!(
                        "{} is a virtualenv made with Python {v}, but oxwsgi is built against Python {python}",
                        home.display()
                    ),
                    format!(
                        "recreate it with the module's Python: {py} -m venv --clear {}, then reinstall its packages \
                         (or build oxwsgi against Python {})",
                        home.display(),
                        major_minor(v)
                    ),
                ));
            }
        }
        return Ok(Home {
            path: home.to_path_buf(),
            kind: HomeKind::Virtualenv { version, base },
            python: python.into(),
        });
    }
    let lib = home.join("lib").join(format!("python{python}"));
    if !lib.is_dir() {
        return Err(problem(
            format!(
                "{} is neither a virtualenv (no pyvenv.cfg) nor a Python {python} prefix (no {})",
                home.display(),
                lib.display()
            ),
            format!("point it at a virtualenv made with {py} -m venv DIR"),
        ));
    }
    // CPython's own landmark of a prefix: without it Python cannot start.
    if !["os.py", "os.pyc"].iter().any(|f| lib.join(f).is_file()) {
        return Err(problem(
            format!(
                "{} is not a Python {python} prefix: {} holds no standard library (no os.py)",
                home.display(),
                lib.display()
            ),
            format!(
                "point it at a virtualenv made with {py} -m venv DIR, or at the prefix Python {python} is installed in"
            ),
        ));
    }
    Ok(Home { path: home.to_path_buf(), kind: HomeKind::Prefix, python: python.into() })
}

impl Home {
    /// "virtualenv, Python 3.11.2" / "Python 3.11 prefix".
    pub fn describe(&self) -> String {
        match &self.kind {
            HomeKind::Virtualenv { version: Some(v), .. } => format!("virtualenv, Python {v}"),
            HomeKind::Virtualenv { version: None, .. } => "virtualenv, Python version not recorded".into(),
            HomeKind::Prefix => format!("Python {} prefix", self.python),
        }
    }

    /// The directories the workers must be able to read: the home itself and, for a
    /// virtualenv, the base interpreter's directory (where its standard library is found).
    pub fn needs_access(&self) -> Vec<&Path> {
        let mut v = vec![self.path.as_path()];
        if let HomeKind::Virtualenv { base: Some(b), .. } = &self.kind {
            if b.exists() {
                v.push(b);
            }
        }
        v
    }

    /// What does not stop the workers but is likely a mistake.
    pub fn warnings(&self) -> Vec<Problem> {
        let HomeKind::Virtualenv { version, base } = &self.kind else { return Vec::new() };
        let home = self.path.display();
        let py = interpreter(&self.python);
        let recreate = format!("recreate it with {py} -m venv --clear {home}");
        let mut out = Vec::new();
        if version.is_none() {
            out.push(problem(
                format!("{home}/pyvenv.cfg records no Python version: cannot tell which Python made it"),
                recreate.clone(),
            ));
        }
        if let Some(b) = base {
            if !b.exists() {
                out.push(problem(
                    format!("{home} was made from {}, which no longer exists (pyvenv.cfg home)", b.display()),
                    recreate.clone(),
                ));
            } else if let Some(sys_dir) = Path::new(&py).parent().filter(|d| d.is_absolute()) {
                if b != sys_dir && !b.starts_with("/usr/local") {
                    out.push(problem(
                        format!(
                            "{home} was made from {} (pyvenv.cfg home), not from the Python the module embeds ({py})",
                            b.display()
                        ),
                        recreate.clone(),
                    ));
                }
            }
        }
        let mm = version.as_deref().map(major_minor).unwrap_or_else(|| self.python.clone());
        let sp = self.path.join("lib").join(format!("python{mm}")).join("site-packages");
        if !sp.is_dir() {
            out.push(problem(format!("{} is missing: the virtualenv is incomplete", sp.display()), recreate));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let d = std::env::temp_dir().join(format!("oxwsgi-checks-home-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
        fn venv(&self, cfg: &str, site_packages: Option<&str>) -> PathBuf {
            let v = self.0.join("venv");
            std::fs::create_dir_all(v.join("bin")).unwrap();
            std::fs::write(v.join("pyvenv.cfg"), cfg).unwrap();
            if let Some(mm) = site_packages {
                std::fs::create_dir_all(v.join(format!("lib/python{mm}/site-packages"))).unwrap();
            }
            v
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn versions() {
        assert_eq!(major_minor("3.11.2"), "3.11");
        assert_eq!(major_minor("3.11.2.final.0"), "3.11");
        assert_eq!(major_minor("3.1"), "3.1");
        assert_ne!(major_minor("3.1.4"), "3.11");
    }

    #[test]
    fn a_missing_or_non_directory_home_is_refused() {
        let s = Scratch::new("missing");
        let missing = s.0.join("nowhere");
        let e = check_python_home(&missing, "3.11").unwrap_err();
        assert_eq!(e.problem, format!("{} is not a directory (it does not exist)", missing.display()));
        let file = s.0.join("file");
        std::fs::write(&file, "").unwrap();
        let e = check_python_home(&file, "3.11").unwrap_err();
        assert_eq!(e.problem, format!("{} is not a directory", file.display()));
        assert!(e.to_string().contains("-m venv DIR"), "{e}");
    }

    #[test]
    fn a_virtualenv_of_the_same_minor_version_passes() {
        let s = Scratch::new("same");
        let v =
            s.venv("home = /nonexistent/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n", Some("3.11"));
        let h = check_python_home(&v, "3.11").unwrap();
        assert_eq!(
            h.kind,
            HomeKind::Virtualenv { version: Some("3.11.2".into()), base: Some(PathBuf::from("/nonexistent/bin")) }
        );
        assert_eq!(h.describe(), "virtualenv, Python 3.11.2");
        // The base is gone: a warning, and only the home itself must be readable.
        assert_eq!(h.needs_access(), vec![v.as_path()]);
        let w = h.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].problem.contains("/nonexistent/bin, which no longer exists"), "{w:?}");
    }

    #[test]
    fn a_virtualenv_of_another_version_is_refused() {
        let s = Scratch::new("other");
        let v = s.venv("home = /usr/local/bin\nversion = 3.12.1\n", Some("3.12"));
        let e = check_python_home(&v, "3.11").unwrap_err();
        assert_eq!(
            e.problem,
            format!("{} is a virtualenv made with Python 3.12.1, but oxwsgi is built against Python 3.11", v.display())
        );
        assert!(e.fix.contains(&format!("-m venv --clear {}", v.display())), "{e}");
        assert!(e.fix.contains("Python 3.12)"), "{e}");
        // virtualenv (the package) writes version_info; 3.1 is not 3.11.
        let v = s.venv("version_info = 3.1.4.final.0\n", None);
        assert!(check_python_home(&v, "3.11").unwrap_err().problem.contains("made with Python 3.1.4.final.0"));
    }

    #[test]
    fn a_virtualenv_without_version_passes_with_warnings() {
        let s = Scratch::new("noversion");
        let v = s.venv("include-system-site-packages = false\n", None);
        let h = check_python_home(&v, "3.11").unwrap();
        assert_eq!(h.kind, HomeKind::Virtualenv { version: None, base: None });
        let w: Vec<String> = h.warnings().into_iter().map(|p| p.problem).collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("records no Python version"), "{w:?}");
        assert!(w[1].contains("lib/python3.11/site-packages is missing"), "{w:?}");
    }

    #[test]
    fn a_prefix_needs_the_versioned_lib_directory() {
        let s = Scratch::new("prefix");
        let e = check_python_home(&s.0, "3.11").unwrap_err();
        assert_eq!(
            e.problem,
            format!(
                "{} is neither a virtualenv (no pyvenv.cfg) nor a Python 3.11 prefix (no {}/lib/python3.11)",
                s.0.display(),
                s.0.display()
            )
        );
        std::fs::create_dir_all(s.0.join("lib/python3.12")).unwrap();
        assert!(check_python_home(&s.0, "3.11").is_err());
        // /usr/local on Debian: lib/python3.11 holds only dist-packages.
        std::fs::create_dir_all(s.0.join("lib/python3.11/dist-packages")).unwrap();
        let e = check_python_home(&s.0, "3.11").unwrap_err();
        assert!(e.problem.ends_with("/lib/python3.11 holds no standard library (no os.py)"), "{e}");
        std::fs::write(s.0.join("lib/python3.11/os.py"), "").unwrap();
        let h = check_python_home(&s.0, "3.11").unwrap();
        assert_eq!((h.kind.clone(), h.describe()), (HomeKind::Prefix, "Python 3.11 prefix".to_string()));
        assert!(h.warnings().is_empty());
        assert_eq!(h.needs_access(), vec![s.0.as_path()]);
    }

    #[test]
    fn pyvenv_parsing() {
        assert_eq!(parse_pyvenv("home=/usr/bin\nversion = 3.11.2\n"), (Some("3.11.2".into()), Some("/usr/bin".into())));
        assert_eq!(parse_pyvenv("version =\nversion_info = 3.11.4.final.0\n"), (Some("3.11.4.final.0".into()), None));
        assert_eq!(parse_pyvenv("prompt = x\n"), (None, None));
    }
}
