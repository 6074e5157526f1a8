//! Test-only fault injection. `OXWSGI_TEST_PANIC=<point>` (read once per process) makes the
//! adapter panic at that point, so that the tests (tests/nginx/test_panics.py) can check that
//! a panic fails closed. Points: `config-check` (a directive's check), `task-done` (a task
//! completion before the head went out), `task-done-streaming` (one after it). Never set it
//! outside tests; nginx passes it to workers only with an `env` directive.

use std::sync::Mutex;

/// The variable's value, read once per process: a worker is forked from the master, which
/// may have read it already, and nginx sets a worker's environment (`env`) only after the
/// fork, so the value is cached with the pid that read it.
fn configured() -> Option<String> {
    static POINT: Mutex<Option<(u32, Option<String>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut p = POINT.lock().unwrap_or_else(|e| e.into_inner());
    match &*p {
        Some((read_by, v)) if *read_by == pid => v.clone(),
        _ => {
            let v = std::env::var("OXWSGI_TEST_PANIC").ok();
            *p = Some((pid, v.clone()));
            v
        }
    }
}

/// Panic if the tests asked for a panic at `point`.
pub fn maybe_panic(point: &str) {
    if configured().as_deref() == Some(point) {
        panic!("injected panic at {point} (OXWSGI_TEST_PANIC)");
    }
}
