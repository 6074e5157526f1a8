//! The keeper: a small single-threaded supervisor process that owns one configuration's
//! daemon processes. nginx's master forks it when it loads a configuration (it never runs
//! Python itself: neither does the keeper; each daemon starts its own interpreter after the
//! fork). The keeper forks the daemons, restarts the ones that die (with a back-off) and
//! stops them when the master says so, or when the master is gone.
//!
//! The master talks to it through one pipe (docs/nginx-daemon.md): the master holds the
//! write end, the keeper polls the read end. One byte `D` (drain: a new configuration
//! replaced this one): the daemons get SIGTERM, stop accepting and finish their requests
//! within graceful-timeout (the group's socket stays open in the master when the next
//! configuration keeps the group, so connections wait in its backlog for the new daemons).
//! `S` (stop: nginx exits) or end-of-file without a byte (the master died, even by
//! SIGKILL): SIGTERM, SIGKILL after shutdown-timeout, and the groups' socket files are
//! removed. The keeper then exits; its daemons also get SIGTERM from the kernel if the
//! keeper itself dies (`PR_SET_PDEATHSIG`).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::launch::{self, Launch};
use crate::core::{Level, LogSink};
use crate::ffi::os::{self, Fork};
use crate::ffi::unix::poll_readable;

/// A failure this soon after the start counts towards the back-off.
const QUICK: Duration = Duration::from_secs(5);
/// The longest a replacement waits before it starts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the keeper reaps and restarts when the master is silent.
const TICK: Duration = Duration::from_millis(100);

/// One process slot of a group.
struct Slot {
    group: usize,
    /// 0: not running (a replacement is due at `due`).
    pid: i32,
    started: Instant,
    quick_failures: u32,
    due: Instant,
}

/// What the master asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// A new configuration took over: finish the requests, keep the sockets.
    Drain,
    /// nginx stops (or its master is gone): stop now and remove the sockets.
    Stop,
}

/// The back-off before the `n`th quick failure's replacement: 0.25 s, 0.5 s, 1 s, ... 30 s.
pub fn backoff(quick_failures: u32) -> Duration {
    match quick_failures {
        0 => Duration::ZERO,
        n => (Duration::from_millis(250) * 2u32.saturating_pow(n.min(8) - 1)).min(MAX_BACKOFF),
    }
}

/// Run the keeper in the freshly forked process until the master says stop; returns the
/// exit status. `control` is the read end of the master's pipe; the caller has closed
/// every other descriptor the keeper must not hold (the master's listening sockets, other
/// keepers' pipes). `in_child` runs first in the keeper and in each daemon it forks (the
/// server's own per-process state, e.g. the pid nginx's log lines carry).
pub fn run(groups: Vec<Launch>, control: OwnedFd, log: Arc<dyn LogSink>, in_child: fn()) -> i32 {
    in_child();
    os::reset_signals();
    os::set_thread_name("oxwsgi-keeper");
    let me = std::process::id() as i32;
    let say = |level: Level, msg: String| log.log(level, &format!("oxwsgi: {msg}"));
    let total: u32 = groups.iter().map(|g| g.settings.processes).sum();
    say(Level::Notice, format!("keeper {me} started: {} group(s), {total} daemon process(es)", groups.len()));
    let now = Instant::now();
    let mut slots: Vec<Slot> = groups
        .iter()
        .enumerate()
        .flat_map(|(gi, g)| {
            (0..g.settings.processes).map(move |_| Slot {
                group: gi,
                pid: 0,
                started: now,
                quick_failures: 0,
                due: now,
            })
        })
        .collect();
    let mut control = std::fs::File::from(control);
    let end = loop {
        // Start what is due (at first: everything).
        let now = Instant::now();
        for s in slots.iter_mut().filter(|s| s.pid == 0 && s.due <= now) {
            let g = &groups[s.group];
            match os::fork() {
                Ok(Fork::Child) => {
                    in_child();
                    let code = crate::ffi::guard::guard("daemon process", 1, || {
                        launch::run(g, me, log.clone(), Duration::ZERO)
                    });
                    os::exit_now(code)
                }
                Ok(Fork::Parent(pid)) => {
                    say(
                        Level::Notice,
                        format!(
                            "daemon process {pid} of group {:?} started (processes={}, threads={}, uid {})",
                            g.settings.name, g.settings.processes, g.settings.threads, g.uid
                        ),
                    );
                    s.pid = pid;
                    s.started = now;
                }
                Err(e) => {
                    say(Level::Error, format!("cannot fork a daemon process of group {:?}: {e}", g.settings.name));
                    s.due = now + Duration::from_secs(1);
                }
            }
        }
        match poll_readable(control.as_fd(), TICK) {
            Ok(false) => {}
            Ok(true) => {
                let mut b = [0u8; 1];
                break match control.read(&mut b) {
                    Ok(1) if b[0] == b'D' => End::Drain,
                    _ => End::Stop,
                };
            }
            Err(e) => {
                say(Level::Error, format!("keeper {me}: the master's pipe failed ({e}); stopping"));
                break End::Stop;
            }
        }
        // Reap and schedule replacements.
        for s in slots.iter_mut().filter(|s| s.pid > 0) {
            let Some(status) = os::try_wait(s.pid) else { continue };
            let name = &groups[s.group].settings.name;
            let how = os::describe_status(status);
            let clean = os::exited_cleanly(status);
            let quick = s.started.elapsed() < QUICK && !clean;
            s.quick_failures = if quick { s.quick_failures + 1 } else { 0 };
            let delay = backoff(s.quick_failures);
            let when =
                if delay.is_zero() { String::new() } else { format!(" in {:.2} s (back-off)", delay.as_secs_f64()) };
            say(
                if clean { Level::Notice } else { Level::Error },
                format!("daemon process {} of group {name:?} exited ({how}); starting a replacement{when}", s.pid),
            );
            s.pid = 0;
            s.due = Instant::now() + delay;
        }
    };
    let pids: Vec<i32> = slots.iter().map(|s| s.pid).filter(|p| *p > 0).collect();
    for &p in &pids {
        os::kill(p, libc::SIGTERM);
    }
    let longest = |f: fn(&Launch) -> Duration| groups.iter().map(f).max().unwrap_or(Duration::from_secs(5));
    let wait = match end {
        End::Drain => longest(|g| g.settings.graceful_timeout + g.settings.shutdown_timeout),
        End::Stop => longest(|g| g.settings.shutdown_timeout),
    };
    let left = os::wait_all(&pids, wait);
    for &p in &left {
        os::kill(p, libc::SIGKILL);
    }
    let left = os::wait_all(&left, Duration::from_secs(2));
    if end == End::Stop {
        for g in &groups {
            let _ = std::fs::remove_file(&g.socket);
        }
    }
    let what = if end == End::Drain { "drained (a new configuration took over)" } else { "stopped" };
    if left.is_empty() {
        say(Level::Notice, format!("keeper {me}: {} daemon process(es) {what}", pids.len()));
        0
    } else {
        say(Level::Error, format!("keeper {me}: daemon processes {left:?} did not stop after SIGKILL"));
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}
