//! The server's logs: following them ([`Tail`]), and making sense of them when start-up
//! fails (which lines matter, without the servers' prefixes; whether the module reported a
//! failed start by its message id).

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

use oxwsgi_checks::msgid;

use crate::plan::Plan;
use crate::say;

/// Follows a log file, printing complete new lines.
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    pub fn new(path: PathBuf) -> Tail {
        Tail { path, offset: 0, partial: Vec::new() }
    }

    /// New complete lines since the last call.
    pub fn lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(mut f) = fs::File::open(&self.path) else { return out };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // truncated or replaced
        }
        if len == self.offset {
            return out;
        }
        use std::io::Seek;
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut buf = Vec::new();
        if f.take(len - self.offset).read_to_end(&mut buf).is_err() {
            return out;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            out.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        out
    }

    pub fn all(&self) -> String {
        fs::read(&self.path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

/// Error-log lines worth showing when start-up fails (drops notice/info chatter).
pub fn relevant(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            !l.trim().is_empty()
                && ![":notice]", ":info]", ":debug]", "[notice]", "[info]", "[debug]"].iter().any(|m| l.contains(m))
        })
        .collect()
}

/// An error-log line without the server's prefixes (time, module, pid, client) and the
/// module's `"<script>: "` context, for showing a traceback.
pub fn tidy(line: &str, script: &str) -> String {
    let mut s = line;
    if let Some(rest) = s.strip_prefix("nginx: [") {
        // nginx's own stderr: "nginx: [emerg] text"
        if let Some((_, r)) = rest.split_once("] ") {
            s = r;
        }
    } else if s.starts_with('[') {
        // Apache: "[time] [module:level] [pid N:tid M] [client a:p] text"
        while s.starts_with('[') {
            match s.find("] ") {
                Some(i) => s = &s[i + 2..],
                None => break,
            }
        }
    } else if s.len() > 20 && s.as_bytes()[4] == b'/' && s.as_bytes()[7] == b'/' {
        // nginx: "2024/01/01 12:00:00 [error] 12#13: *1 text, client: ..."
        if let Some(i) = s.find("]: ").or_else(|| s.find("] ")) {
            let rest = &s[i + 2..];
            let rest = rest.trim_start_matches(':').trim_start();
            let rest = match rest.split_once(": ") {
                Some((pid, r)) if pid.contains('#') => r,
                _ => rest,
            };
            let rest = match rest.strip_prefix('*') {
                Some(r) => r.split_once(' ').map(|x| x.1).unwrap_or(r),
                None => rest,
            };
            s = rest;
        }
    }
    // The module's part: "[OXW1001: ]<script>: message".
    let s = match msgid::find(s) {
        Some(id) if s.starts_with(id) => &s[id.len() + 2..],
        _ => s,
    };
    let s = s.strip_prefix(script).and_then(|r| r.strip_prefix(": ")).unwrap_or(s);
    s.to_string()
}

/// The ids that mean "the app cannot be served": the script failed to load, or Python
/// failed to start in the workers.
const START_FAILURES: &[&str] = &[msgid::SCRIPT_LOAD_FAILED, msgid::PYTHON_START_FAILED];

/// The message id of the first line of `log` that reports a failed start, if any.
pub fn start_failure(log: &str) -> Option<&'static str> {
    log.lines().filter_map(msgid::find).find(|id| START_FAILURES.contains(id))
}

/// Say why start-up failed (`headline`), then the relevant lines of the server's output
/// and error log, without their prefixes.
pub fn show_failed_start(plan: &Plan, label: &str, headline: &str, errlog: &Tail, srvout: &Tail) {
    say(&format!("error: {headline}"));
    let out = srvout.all();
    let log = errlog.all();
    let mut lines: Vec<&str> = relevant(&out);
    lines.extend(relevant(&log));
    if out.contains("Address already in use") || log.contains("Address already in use") {
        say(&format!(
            "port {} was taken by another process while {label} started; pick another with --port",
            plan.port
        ));
    }
    if lines.is_empty() {
        say(&format!("(the error log {} says nothing more)", plan.error_log().display()));
        return;
    }
    say(&format!("from {} and {label}'s output:", plan.error_log().display()));
    let script = plan.script.to_string_lossy();
    // The same message often reaches both the server's stderr and its error log.
    let mut shown: Vec<String> = Vec::new();
    for l in &lines {
        let t = tidy(l, &script);
        if !shown.contains(&t) {
            shown.push(t);
        }
    }
    let skip = shown.len().saturating_sub(60);
    let mut err = std::io::stderr().lock();
    for l in &shown[skip..] {
        let _ = writeln!(err, "    {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevant_lines() {
        let t = "[Mon] [mpm_event:notice] [pid 1] AH00489: resuming\n[Mon] [oxwsgi:error] [pid 2] Traceback\nnginx: [emerg] bad\n2024/01/01 [notice] 1#1: start\n";
        assert_eq!(relevant(t), vec!["[Mon] [oxwsgi:error] [pid 2] Traceback", "nginx: [emerg] bad"]);
    }

    #[test]
    fn tidies_lines() {
        let a = "[Tue Nov 24 05:16:13.895 2026] [oxwsgi:error] [pid 30135:tid 30139] [client 127.0.0.1:33920] /a/b.wsgi: ModuleNotFoundError: x";
        assert_eq!(tidy(a, "/a/b.wsgi"), "ModuleNotFoundError: x");
        let n = "2026/11/24 05:16:13 [error] 123#124: *1 /a/b.wsgi: Traceback (most recent call last):";
        assert_eq!(tidy(n, "/a/b.wsgi"), "Traceback (most recent call last):");
        let e = "nginx: [emerg] unknown directive";
        assert_eq!(tidy(e, "/a/b.wsgi"), "unknown directive");
        // The module's lines start with their message id, then the script.
        let a = "[Tue] [oxwsgi:error] [pid 1:tid 2] [client 127.0.0.1:3] OXW1001: /a/b.wsgi: Traceback (most recent call last):";
        assert_eq!(tidy(a, "/a/b.wsgi"), "Traceback (most recent call last):");
        let n = "2026/11/24 05:16:13 [crit] 12#12: OXW1002: oxwsgi: Python failed to start in this worker: x";
        assert_eq!(tidy(n, "/a/b.wsgi"), "oxwsgi: Python failed to start in this worker: x");
    }

    #[test]
    fn a_failed_start_is_known_by_its_id_not_its_wording() {
        let apache = "[Mon] [mpm_event:notice] [pid 1] AH00489: resuming\n\
                      [Mon] [oxwsgi:error] [pid 2:tid 3] [client 127.0.0.1:4] OXW1001: /a.wsgi: failed to load the WSGI script\n\
                      [Mon] [oxwsgi:error] [pid 2:tid 3] [client 127.0.0.1:4] OXW1001: /a.wsgi: ImportError: x\n";
        assert_eq!(start_failure(apache), Some(msgid::SCRIPT_LOAD_FAILED));
        let nginx = "2026/11/24 05:16:13 [crit] 12#12: OXW1002: oxwsgi: Python failed to start in this worker: x\n";
        assert_eq!(start_failure(nginx), Some(msgid::PYTHON_START_FAILED));
        // The old wording without an id (e.g. an app printing it) is not a failed start,
        // nor is a failed preload: the app itself may still load.
        assert_eq!(start_failure("[Mon] [oxwsgi:error] [pid 2] /a.wsgi: failed to load the WSGI script\n"), None);
        assert_eq!(start_failure("2026/11/24 [error] 1#1: OXW1003: /pre.py: wsgi_import failed: x\n"), None);
    }

    #[test]
    fn tail_follows() {
        let d = std::env::temp_dir().join(format!("oxwsgi-tail-{}", std::process::id()));
        fs::write(&d, "a\nb").unwrap();
        let mut t = Tail::new(d.clone());
        assert_eq!(t.lines(), vec!["a"]);
        fs::OpenOptions::new().append(true).open(&d).unwrap().write_all(b"c\nd\n").unwrap();
        assert_eq!(t.lines(), vec!["bc", "d"]);
        let _ = fs::remove_file(d);
    }
}
