//! Staging: the private server directory `/tmp/oxwsgi-serve-XXXXXX` (mode 0755) that
//! `serve` runs the server from, with its layout, a copy of the module, the demo or shim
//! script when the app needs one, and the generated configuration.
//!
//! ```text
//! httpd.conf | nginx.conf   the configuration (confgen::full)
//! modules/                  the copy of the module the configuration loads
//! app/                      demo.wsgi, or the shim script of a module:callable app
//! logs/                     error.log, access.log (--access-log), server.out (stdout+stderr)
//! run/ tmp/ htdocs/         pid file, nginx temp paths, an empty DocumentRoot
//! ```

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::app::{self, AppSpec};
use crate::confgen;
use crate::options::Options;
use crate::plan::Plan;
use crate::resolve::Resolved;

const SUBDIRS: &[&str] = &["logs", "run", "tmp", "modules", "app", "htdocs"];

/// Create and fill the private directory for serving on `port`. On error nothing is left.
pub fn stage(o: &Options, r: &Resolved, port: u16) -> Result<Plan, String> {
    let dir = mkdtemp()?;
    let staged = fill(o, r, port, &dir);
    if staged.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    staged
}

fn fill(o: &Options, r: &Resolved, port: u16, dir: &Path) -> Result<Plan, String> {
    for sub in SUBDIRS {
        let p = dir.join(sub);
        fs::create_dir(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        chmod(&p, 0o755)?;
    }
    // A copy, so that rebuilding the module while serving does not pull it from under the
    // workers (and so that it is readable by the worker user).
    let module = dir.join("modules").join(o.server.module_file());
    fs::copy(&r.module, &module)
        .map_err(|e| format!("cannot copy {} to {}: {e}", r.module.display(), module.display()))?;
    chmod(&module, 0o755)?;
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
    let plan = Plan::new(o, r, dir.to_path_buf(), module, script, port);
    write_file(&plan.conf_path(), &confgen::full(&plan), 0o644)?;
    Ok(plan)
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
    chmod(&dir, 0o755)?;
    Ok(dir)
}

fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    chmod(path, mode)
}
