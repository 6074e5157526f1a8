//! Stable message ids. The module starts the lines that report these events with an id
//! (`OXW1001: <context>: <message>`; the server adds its own prefix before it), and tools
//! such as the `oxwsgi` launcher recognise the event by the id, never by the wording.

/// The WSGI script could not be loaded (syntax/import error, missing callable).
pub const SCRIPT_LOAD_FAILED: &str = "OXW1001";
/// Python could not start in a worker process.
pub const PYTHON_START_FAILED: &str = "OXW1002";
/// A preload (WSGIImportScript / wsgi_import) failed.
pub const IMPORT_FAILED: &str = "OXW1003";

/// Every id, for look-ups.
pub const ALL: &[&str] = &[SCRIPT_LOAD_FAILED, PYTHON_START_FAILED, IMPORT_FAILED];

/// The module's part of a log line: `<id>: <context>: <message>`.
pub fn line(id: &str, context: &str, message: &str) -> String {
    format!("{id}: {context}: {message}")
}

/// The id a log line carries, if any: a known id followed by `": "`, at the start of the
/// line or after a space (after the server's own prefix).
pub fn find(line: &str) -> Option<&'static str> {
    ALL.iter().copied().find(|id| {
        line.match_indices(id).any(|(i, _)| {
            let before_ok = i == 0 || line.as_bytes()[i - 1] == b' ';
            before_ok && line[i + id.len()..].starts_with(": ")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_well_formed() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(a.len() == 7 && a.starts_with("OXW") && a[3..].bytes().all(|b| b.is_ascii_digit()), "{a}");
            assert!(!ALL[i + 1..].contains(a), "{a} twice");
        }
    }

    #[test]
    fn finds_the_id_behind_a_server_prefix() {
        let apache = format!(
            "[Tue Nov 24 05:16:13.895 2026] [oxwsgi:error] [pid 1:tid 2] [client 127.0.0.1:3] {}",
            line(SCRIPT_LOAD_FAILED, "/srv/app.wsgi", "failed to load the WSGI script")
        );
        assert_eq!(find(&apache), Some(SCRIPT_LOAD_FAILED));
        let nginx = format!(
            "2026/11/24 05:16:13 [crit] 12#12: {}",
            line(PYTHON_START_FAILED, "oxwsgi", "Python failed to start in this worker: x")
        );
        assert_eq!(find(&nginx), Some(PYTHON_START_FAILED));
        assert_eq!(find("OXW1003: /srv/pre.py: WSGIImportScript failed"), Some(IMPORT_FAILED));
    }

    #[test]
    fn ignores_lines_without_an_id() {
        // The wording alone, an id glued to other text, or an id without ": " is not a match.
        assert_eq!(find("[oxwsgi:error] /srv/app.wsgi: failed to load the WSGI script"), None);
        assert_eq!(find("/srv/app.wsgi: Traceback (most recent call last):"), None);
        assert_eq!(find("xOXW1001: nope"), None);
        assert_eq!(find("OXW1001 without a colon"), None);
        assert_eq!(find("OXW9999: unknown id"), None);
    }
}
