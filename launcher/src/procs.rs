//! Processes: our signal handlers, finding every process a server started, and running a
//! short command with a time limit.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The last SIGINT/SIGTERM/SIGHUP received (0: none), and how many arrived.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: atomics only.
    SIGNAL.store(sig, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
}

/// Catch SIGINT, SIGTERM and SIGHUP (no SA_RESTART: blocking calls return EINTR).
pub fn install_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid;
        // the handler only touches atomics.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The stop signal received, if any.
pub fn stop_requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

pub fn signal_count() -> usize {
    COUNT.load(Ordering::SeqCst)
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        _ => "signal",
    }
}

pub fn send(pid: i32, sig: i32) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// (pid, ppid, pgrp, state) of every process in /proc.
fn table() -> Vec<(i32, i32, i32, char)> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return v };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) state ppid pgrp ..." -- comm may hold spaces and parentheses.
        let Some(close) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let state = f[0].chars().next().unwrap_or('?');
        let (Ok(ppid), Ok(pgrp)) = (f[1].parse(), f[2].parse()) else { continue };
        v.push((pid, ppid, pgrp, state));
    }
    v
}

/// Live (non-zombie) processes of a server: the master `root`, its descendants, and
/// anything still in its process group (orphans re-parented elsewhere).
pub fn server_processes(root: i32) -> Vec<i32> {
    let t = table();
    let mut set: Vec<i32> = Vec::new();
    if t.iter().any(|p| p.0 == root && p.3 != 'Z') {
        set.push(root);
    }
    // Descendants by ppid chain (fixpoint), plus the process group.
    let mut changed = true;
    let mut family = vec![root];
    while changed {
        changed = false;
        for p in &t {
            if !family.contains(&p.0) && (family.contains(&p.1) || p.2 == root) {
                family.push(p.0);
                changed = true;
            }
        }
    }
    for p in &t {
        if p.0 != root && family.contains(&p.0) && p.3 != 'Z' && p.0 != std::process::id() as i32 {
            set.push(p.0);
        }
    }
    set
}

/// Make the child its own process group leader (so the terminal's Ctrl-C reaches only us
/// and we stop the server in order) and have it killed if the launcher dies.
pub fn child_setup() -> std::io::Result<()> {
    // SAFETY: called between fork and exec; setpgid and prctl are async-signal-safe.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0);
        // Restore default dispositions: the launcher's handlers do not survive exec anyway,
        // but an ignored SIGINT/SIGTERM (nohup, some CI runners) would.
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    Ok(())
}

/// Run a command with a time limit; (success, stdout+stderr).
pub fn run(mut c: Command, limit: Duration) -> Result<(bool, String), String> {
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
