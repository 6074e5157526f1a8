//! `oxwsgi serve`: resolve the options, stage a private server directory, run the server in
//! the foreground until Ctrl-C / SIGTERM, and stop it completely.
//!
//! The steps live in their own files: [`crate::resolve`] (options to checked facts),
//! [`crate::stage`] (the private directory), [`crate::server`] (start and stop),
//! [`crate::supervise`] (readiness, log streaming, reload) and [`crate::logs`].

use std::fs;

use crate::options::{Options, ServerKind};
use crate::{Failure, locate, probe, resolve, say, server, stage, supervise};

/// Returns the process exit code.
pub fn serve(o: &Options) -> Result<i32, Failure> {
    let kind = o.server;
    let bin = locate::server_binary(kind).map_err(Failure::msg)?;
    let version = locate::server_version(kind, &bin).map_err(Failure::msg)?;
    say(&format!("server   {version} ({})", bin.display()));
    if kind == ServerKind::Apache && locate::apache_modules_dir().is_none() {
        return Err(Failure::msg(
            "Apache's modules (mod_mpm_event.so, mod_alias.so ...) were not found in /usr/lib/apache2/modules: \
             install apache2 (`apt-get install apache2`)",
        ));
    }
    let r = resolve::resolve(o, true)?;
    say(&format!(
        "module   {}{}",
        r.module.display(),
        r.module_python.as_deref().map(|v| format!(" (built for Python {v})")).unwrap_or_default()
    ));
    say(&format!("app      {}", r.app.describe()));
    for n in &r.notes {
        say(n);
    }
    let port = probe::check_port(&o.host, o.port).map_err(Failure::msg)?;
    let plan = stage::stage(o, &r, port).map_err(Failure::msg)?;
    let daemon = if plan.daemon {
        format!(" in daemon process group {}", crate::conf_apache::group_name(&plan))
    } else {
        String::new()
    };
    say(&format!(
        "workers  {} process{} x {} thread{}{daemon}, {}",
        plan.processes,
        if plan.processes == 1 { "" } else { "es" },
        plan.threads,
        if plan.threads == 1 { "" } else { "s" },
        match &plan.user {
            Some(u) => format!("as user {}", u.name),
            None => "as the current user".into(),
        }
    ));
    say(&format!("config   {}", plan.conf_path().display()));

    crate::procs::install_handlers();
    say(&format!("starting {} on {}:{port} ...", server::label(kind, &bin), o.host));
    let (mut run, out_path) = match server::start(&plan, &bin) {
        Ok(started) => started,
        Err(e) => {
            say(&format!("kept the server directory {} (config and logs)", plan.dir.display()));
            return Err(Failure::msg(e));
        }
    };
    let code = supervise::supervise(o, &plan, &mut run, &out_path);
    // Whatever happened, leave nothing running.
    let stopped = run.stop();
    // Keep the logs of a failed start; an interrupted start (130) is not a failure.
    let keep = o.keep || (code != 0 && code != 130) || stopped.is_err();
    if let Err(e) = &stopped {
        say(&format!("error: {e}"));
    }
    if keep {
        say(&format!("kept the server directory {} (config and logs)", plan.dir.display()));
    } else if let Err(e) = fs::remove_dir_all(&plan.dir) {
        say(&format!("could not remove {}: {e}", plan.dir.display()));
    }
    Ok(if stopped.is_err() { 1 } else { code })
}
