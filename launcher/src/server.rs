//! The server process: start the real `apache2` / `nginx` in the foreground on the staged
//! configuration, and stop it so that no process of it is left (Apache: SIGTERM; nginx:
//! SIGQUIT, then SIGTERM after 8 s; anything left after 15 s, or after a second Ctrl-C,
//! gets SIGKILL).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::options::ServerKind;
use crate::plan::Plan;
use crate::{procs, say};

/// Start the server of `plan` (binary `bin`) in the foreground, its stdout and stderr going
/// to `logs/server.out` in the private directory (returned, to follow it).
pub fn start(plan: &Plan, bin: &Path) -> Result<(Running, PathBuf), String> {
    let out_path = plan.dir.join("logs/server.out");
    let out = fs::File::create(&out_path).map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
    let mut cmd = command(plan, bin, out)?;
    let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    Ok((Running { child, kind: plan.kind, label: label(plan.kind, bin), exited: None }, out_path))
}

/// How messages name the server: its binary's name.
pub fn label(kind: ServerKind, bin: &Path) -> String {
    bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| kind.name().into())
}

/// The server process (the master), started in its own process group.
pub struct Running {
    child: Child,
    kind: ServerKind,
    /// "apache2" / "nginx", for messages.
    pub label: String,
    exited: Option<std::process::ExitStatus>,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn poll_exit(&mut self) -> Option<std::process::ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
            }
        }
        self.exited
    }

    /// Stop the server and wait until none of its processes is left.
    pub fn stop(&mut self) -> Result<(), String> {
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

fn command(plan: &Plan, bin: &Path, out: fs::File) -> Result<Command, String> {
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
