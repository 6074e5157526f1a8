//! mod_python 3.5's configuration model, independent of the server: the phases, a
//! handler line, the directives of one context ([`MpConf`]) and their merge.
//!
//! Rules, as mod_python 3.5 has them:
//! - Several handler directives of one phase in one context stack (run in order); a
//!   context's list for a phase *replaces* the enclosing context's list for that phase.
//! - `PythonInitHandler` is `PythonPostReadRequestHandler` at server level and
//!   `PythonHeaderParserHandler` in a directory (the handler's default object stays
//!   `inithandler`).
//! - `PythonHandlerModule m` adds `m` to every phase, silently skipping phases whose
//!   function `m` does not define.
//! - `PythonOption` entries overlay the enclosing ones; `PythonOption key` or
//!   `PythonOption key ""` removes `key`.
//! - The other settings: the innermost context that sets one wins.

use std::collections::BTreeMap;

/// The phases, in the order of `enum oxwsgi_mp_phase` (C), then the cleanup "phase".
pub const PHASES: [&str; 11] = [
    "PythonPostReadRequestHandler",
    "PythonTransHandler",
    "PythonHeaderParserHandler",
    "PythonAccessHandler",
    "PythonAuthenHandler",
    "PythonAuthzHandler",
    "PythonTypeHandler",
    "PythonFixupHandler",
    "PythonHandler",
    "PythonLogHandler",
    "PythonCleanupHandler",
];
pub const POST_READ: usize = 0;
pub const HEADER_PARSER: usize = 2;
pub const CLEANUP: usize = 10;

/// One handler of a phase list.
#[derive(Clone, Debug, PartialEq)]
pub struct Handler {
    /// `module` or `module::object.attribute`.
    pub spec: String,
    /// The object used when the spec names none: the directive's name, lower-cased,
    /// without `python` (`PythonAuthenHandler` → `authenhandler`).
    pub default_object: String,
    /// The directory of the section the directive is in (`None` at server level).
    pub directory: Option<String>,
    /// The section is a `<Location>`: its directory is not a file-system path.
    pub is_location: bool,
    /// `| .ext ...`: only for files with one of these extensions (empty: always).
    pub extensions: Vec<String>,
    /// From `PythonHandlerModule`: a missing function is skipped, not an error.
    pub silent: bool,
}

impl Handler {
    /// Whether the handler applies to a request for `filename`.
    pub fn applies_to(&self, filename: &[u8]) -> bool {
        self.extensions.is_empty() || self.extensions.iter().any(|e| filename.ends_with(e.as_bytes()))
    }
}

/// The mod_python directives of one context (or the merge of several).
#[derive(Clone, Debug, Default)]
pub struct MpConf {
    /// Per phase ([`PHASES`]): `None` when this context sets no handler for it.
    pub handlers: [Option<Vec<Handler>>; 11],
    /// `PythonOption`: `None` marks a removal (kept so that a merge removes the key too).
    pub options: BTreeMap<String, Option<String>>,
    pub path: Option<String>,
    pub interpreter: Option<String>,
    pub interp_per_directory: Option<bool>,
    pub interp_per_directive: Option<bool>,
    pub autoreload: Option<bool>,
    pub debug: Option<bool>,
    /// The section's directory (for `PythonInterpPerDirective` and the auto `sys.path`).
    pub directory: Option<String>,
}

impl MpConf {
    /// `add` (an inner context) over `base`.
    pub fn merge(base: &MpConf, add: &MpConf) -> MpConf {
        let mut handlers = base.handlers.clone();
        for (i, h) in add.handlers.iter().enumerate() {
            if h.is_some() {
                handlers[i] = h.clone();
            }
        }
        let mut options = base.options.clone();
        for (k, v) in &add.options {
            options.insert(k.clone(), v.clone());
        }
        MpConf {
            handlers,
            options,
            path: add.path.clone().or_else(|| base.path.clone()),
            interpreter: add.interpreter.clone().or_else(|| base.interpreter.clone()),
            interp_per_directory: add.interp_per_directory.or(base.interp_per_directory),
            interp_per_directive: add.interp_per_directive.or(base.interp_per_directive),
            autoreload: add.autoreload.or(base.autoreload),
            debug: add.debug.or(base.debug),
            directory: add.directory.clone().or_else(|| base.directory.clone()),
        }
    }

    /// The handlers of phase `i` (empty when none).
    pub fn list(&self, i: usize) -> &[Handler] {
        self.handlers[i].as_deref().unwrap_or(&[])
    }

    /// `PythonOption`s in effect (removals dropped).
    pub fn effective_options(&self) -> Vec<(String, String)> {
        self.options.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone()))).collect()
    }

    /// What `req.get_config()` shows: the settings by directive name, as mod_python
    /// (`"1"`/`"0"` for flags).
    pub fn config_table(&self) -> Vec<(String, String)> {
        let flag = |b: bool| if b { "1" } else { "0" }.to_string();
        let mut out = Vec::new();
        if let Some(d) = self.debug {
            out.push(("PythonDebug".into(), flag(d)));
        }
        if let Some(a) = self.autoreload {
            out.push(("PythonAutoReload".into(), flag(a)));
        }
        if let Some(p) = &self.path {
            out.push(("PythonPath".into(), p.clone()));
        }
        if let Some(i) = &self.interpreter {
            out.push(("PythonInterpreter".into(), i.clone()));
        }
        if let Some(b) = self.interp_per_directory {
            out.push(("PythonInterpPerDirectory".into(), flag(b)));
        }
        if let Some(b) = self.interp_per_directive {
            out.push(("PythonInterpPerDirective".into(), flag(b)));
        }
        out
    }
}

pub fn on_off(name: &str, args: &[String]) -> Result<bool, String> {
    match args {
        [v] if v.eq_ignore_ascii_case("on") => Ok(true),
        [v] if v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err(format!("{name} takes one argument, On or Off")),
    }
}

pub fn one<'a>(name: &str, args: &'a [String]) -> Result<&'a str, String> {
    match args {
        [v] => Ok(v),
        _ => Err(format!("{name} takes one argument")),
    }
}

/// The handlers of one `Python*Handler` line: `h1 h2 ... [| .ext1 .ext2 ...]`.
pub fn parse_handlers(
    name: &str,
    args: &[String],
    directory: &Option<String>,
    is_location: bool,
    silent: bool,
) -> Result<Vec<Handler>, String> {
    let (specs, exts) = match args.iter().position(|a| a == "|") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    if specs.is_empty() {
        return Err(format!("{name} needs at least one handler (module or module::object)"));
    }
    if args.iter().any(|a| a == "|") && exts.is_empty() {
        return Err(format!("{name}: '|' must be followed by file extensions such as .py"));
    }
    let default_object = name["Python".len()..].to_ascii_lowercase();
    let mut out = Vec::new();
    for s in specs {
        let module = s.split("::").next().unwrap_or("");
        if module.is_empty() || module.split('.').any(|p| p.is_empty()) {
            return Err(format!("{name}: {s:?} is not a handler (module or module::object)"));
        }
        out.push(Handler {
            spec: s.clone(),
            default_object: default_object.clone(),
            directory: directory.clone(),
            is_location,
            extensions: exts.to_vec(),
            silent,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(spec: &str) -> Handler {
        Handler {
            spec: spec.into(),
            default_object: "handler".into(),
            directory: None,
            is_location: false,
            extensions: vec![],
            silent: false,
        }
    }

    #[test]
    fn inner_phase_list_replaces_and_options_overlay() {
        let mut base = MpConf::default();
        base.handlers[8] = Some(vec![h("a"), h("b")]);
        base.handlers[9] = Some(vec![h("log")]);
        base.options.insert("x".into(), Some("1".into()));
        base.options.insert("y".into(), Some("2".into()));
        base.debug = Some(true);
        let mut add = MpConf::default();
        add.handlers[8] = Some(vec![h("c")]);
        add.options.insert("y".into(), None);
        add.options.insert("z".into(), Some("3".into()));
        let m = MpConf::merge(&base, &add);
        assert_eq!(m.list(8), &[h("c")]);
        assert_eq!(m.list(9), &[h("log")]);
        assert_eq!(m.effective_options(), vec![("x".into(), "1".into()), ("z".into(), "3".into())]);
        assert_eq!(m.debug, Some(true));
    }

    #[test]
    fn handler_lines_parse_extensions() {
        let args: Vec<String> = ["a", "b::f", "|", ".py"].iter().map(|s| s.to_string()).collect();
        let hs = parse_handlers("PythonAuthenHandler", &args, &None, false, false).unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].default_object, "authenhandler");
        assert!(hs[1].applies_to(b"/x/y.py") && !hs[1].applies_to(b"/x/y.html"));
        assert!(parse_handlers("PythonHandler", &["|".into()], &None, false, false).is_err());
        assert!(parse_handlers("PythonHandler", &["a..b".into()], &None, false, false).is_err());
    }
}
