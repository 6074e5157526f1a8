//! `oxwsgi doctor`: check what breaks real deployments, and say how to fix it. Each check
//! prints one `ok` / `WARN` / `FAIL` line (with a `fix:` line for a problem); the exit status
//! is 1 when something fails. The servers and modules are checked in
//! [`crate::doctor_servers`], the app in [`crate::doctor_app`]; the python-home and
//! readability checks are those `serve` uses ([`crate::resolve`], crate `oxwsgi-checks`).

use std::path::{Path, PathBuf};

use crate::options::Options;
use crate::report::{Report, Status};
use crate::users::{self, User};
use crate::{doctor_app, doctor_servers, resolve};

pub fn doctor(o: &Options) -> i32 {
    let mut rep = Report::default();
    let kinds = if o.server_given { o.server.name() } else { "apache and nginx" };
    println!("oxwsgi doctor: checking {kinds}");

    // --- the worker user
    let user: Option<User> = match users::worker_user(o) {
        Ok(u) => {
            match &u {
                Some(u) => rep.line(
                    Status::Ok,
                    &format!("running as root: the server workers will run as {} (uid {})", u.name, u.uid),
                    None,
                ),
                None => rep.line(
                    Status::Info,
                    &format!("running as uid {}: the servers will run as this user", users::current_uid()),
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

    let module_python = doctor_servers::check_servers(&mut rep, o);

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
        doctor_app::check_app(&mut rep, o, module_python.as_deref(), user.as_ref());
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

/// The python-home: the module's own check (crate `oxwsgi-checks`), its warnings, and
/// that the workers can read it (as `serve` checks it).
fn check_home(rep: &mut Report, home: &Path, module_python: Option<&str>, user: Option<&User>) {
    let name = format!("python-home {}", home.display());
    let Some(mp) = module_python else {
        rep.line(Status::Warn, &format!("{name} not checked: which Python the module embeds is unknown"), None);
        return;
    };
    let found = match oxwsgi_checks::check_python_home(home, mp) {
        Ok(h) => h,
        Err(p) => return rep.line(Status::Fail, &format!("python-home {}", p.problem), Some(&p.fix)),
    };
    rep.line(Status::Ok, &format!("{name}: {}", found.describe()), None);
    for w in found.warnings() {
        rep.line(Status::Warn, &format!("python-home {}", w.problem), Some(&w.fix));
    }
    if let Some(u) = user {
        match resolve::home_readable("python-home", &found, u) {
            Ok(()) => rep.line(Status::Ok, &format!("{name} is readable by {}", u.name), None),
            Err(p) => rep.line(Status::Fail, &p.problem, Some(&p.fix)),
        }
    }
}
