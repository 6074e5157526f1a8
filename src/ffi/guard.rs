//! The panic barrier of every `extern "C"` entry point: a Rust panic must never unwind into
//! httpd or nginx (it would abort the worker with every request it holds).

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Run `f`, turning a panic into `fallback` and a line on stderr (which both servers
/// send to their main error log).
pub fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            eprintln!("[oxwsgi] internal error (panic) in {what}: {msg}");
            fallback
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn panics_become_the_fallback() {
        assert_eq!(super::guard("test", 500, || panic!("boom")), 500);
        assert_eq!(super::guard("test", 500, || 200), 200);
    }
}
