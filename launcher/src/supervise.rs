//! Supervision of a started server: wait until the app answers (or say why it cannot),
//! then stream the logs until a stop signal arrives or the server exits, restarting the
//! workers on source changes with `--reload-on-change`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use oxwsgi_checks::msgid;

use crate::logs::{self, Tail};
use crate::options::{Options, ServerKind};
use crate::plan::Plan;
use crate::probe::{self, Probe};
use crate::server::Running;
use crate::watch::Watcher;
use crate::{procs, say};

/// The logs followed while the server runs.
struct Logs {
    error: Tail,
    access: Tail,
    /// The server's own stdout and stderr (`logs/server.out`).
    output: Tail,
}

/// Wait for readiness, then follow the server until it should stop. Returns the exit code
/// of `oxwsgi serve` (0: stopped by a signal once serving; 130: interrupted while starting;
/// 1: start-up failed or the server died). The caller stops the server in every case.
pub fn supervise(o: &Options, plan: &Plan, run: &mut Running, out_path: &Path) -> i32 {
    let mut logs = Logs {
        error: Tail::new(plan.error_log()),
        access: Tail::new(plan.access_log_path()),
        output: Tail::new(out_path.to_path_buf()),
    };
    if let Err(code) = wait_ready(o, plan, run, &logs) {
        return code;
    }
    announce(plan, &run.label);
    follow(o, plan, run, &mut logs)
}

/// Probe `GET <mount>` until the app answers. Err is the exit code when it never will.
fn wait_ready(o: &Options, plan: &Plan, run: &mut Running, logs: &Logs) -> Result<(), i32> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(o.startup_timeout);
    let mut last_progress = Instant::now();
    let label = run.label.clone();
    let failed = |headline: &str| logs::show_failed_start(plan, &label, headline, &logs.error, &logs.output);
    say(&format!("waiting for GET {} to answer ...", plan.mount));
    loop {
        if let Some(sig) = procs::stop_requested() {
            say(&format!("{} received while starting", procs::signal_name(sig)));
            return Err(130);
        }
        if let Some(st) = run.poll_exit() {
            failed(&format!("{label} exited during start-up ({st})"));
            return Err(1);
        }
        let mut abort = || procs::stop_requested().is_some() || run.poll_exit().is_some();
        match probe::probe(&plan.host, plan.port, &plan.mount, deadline, &mut abort) {
            Probe::Aborted => continue,
            Probe::Answered(code, line) => {
                // Give the module a moment to finish writing what it reports.
                std::thread::sleep(Duration::from_millis(100));
                let failure = if code >= 500 { logs::start_failure(&logs.error.all()) } else { None };
                match failure {
                    Some(id) if id == msgid::SCRIPT_LOAD_FAILED => {
                        failed(&format!(
                            "the app failed to load ({id}): GET {} answered {line:?}; the worker's traceback:",
                            plan.mount
                        ));
                        return Err(1);
                    }
                    Some(id) => {
                        failed(&format!(
                            "Python failed to start in {label}'s workers ({id}): GET {} answered {line:?}",
                            plan.mount
                        ));
                        return Err(1);
                    }
                    None => {}
                }
                say(&format!("ready in {:.1}s: GET {} -> {}", t0.elapsed().as_secs_f64(), plan.mount, line));
                if code >= 500 {
                    say("warning: the app answered with a server error; see the error log below");
                }
                return Ok(());
            }
            Probe::NotYet => {
                if Instant::now() > deadline {
                    failed(&format!(
                        "{label} did not answer on {}:{} within {}s (--startup-timeout)",
                        plan.host, plan.port, o.startup_timeout
                    ));
                    return Err(1);
                }
                if last_progress.elapsed() > Duration::from_secs(2) {
                    say(&format!("still waiting ({:.0}s) ...", t0.elapsed().as_secs_f64()));
                    last_progress = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn announce(plan: &Plan, label: &str) {
    say(&format!("serving  {}", plan.url()));
    for (url, p) in &plan.url_aliases {
        say(&format!("static   {url} -> {} (served by {label})", p.display()));
    }
    if plan.access_log {
        say(&format!("logs     {} and {}", plan.error_log().display(), plan.access_log_path().display()));
    } else {
        say(&format!("logs     {} (add --access-log for requests)", plan.error_log().display()));
    }
}

/// Stream new log lines to stdout until a stop signal (0) or the server's exit (1).
fn follow(o: &Options, plan: &Plan, run: &mut Running, logs: &mut Logs) -> i32 {
    let mut watcher = o.reload_on_change.then(|| watcher(plan));
    say("press Ctrl-C to stop");
    let mut last_scan = Instant::now();
    loop {
        print_new(plan, logs);
        if let Some(sig) = procs::stop_requested() {
            let _ = writeln!(std::io::stderr());
            say(&format!("{} received", procs::signal_name(sig)));
            return 0;
        }
        if let Some(st) = run.poll_exit() {
            std::thread::sleep(Duration::from_millis(100));
            print_new(plan, logs);
            say(&format!("error: {} exited unexpectedly ({st})", run.label));
            return 1;
        }
        if let Some(w) = watcher.as_mut().filter(|_| last_scan.elapsed() > Duration::from_secs(1)) {
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
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The watcher of `--reload-on-change`: the app's directories, not the private one.
fn watcher(plan: &Plan) -> Watcher {
    let mut roots = plan.python_path.clone();
    if let Some(d) = plan.script.parent() {
        roots.push(d.to_path_buf());
    }
    roots.retain(|r| !r.starts_with(&plan.dir));
    let w = Watcher::new(roots, plan.dir.clone());
    say(&format!(
        "reload   on changes to the {} .py/.wsgi files under {}",
        w.files(),
        w.roots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ));
    w
}

/// The new lines of the server's output, error log and (with --access-log) access log.
fn print_new(plan: &Plan, logs: &mut Logs) {
    let mut out = std::io::stdout().lock();
    for l in logs.output.lines().into_iter().chain(logs.error.lines()) {
        let _ = writeln!(out, "{l}");
    }
    if plan.access_log {
        for l in logs.access.lines() {
            let _ = writeln!(out, "{l}");
        }
    }
    let _ = out.flush();
}
