//! mod_python 3.5's directives: parsing, the per-directory merge, and `PythonImport`.
//!
//! Every mod_python directive of a context lands in one immutable [`MpConf`]; the C
//! dir-config holds it (an `Arc` kept alive by the pool, see `DirConf::set_modpython`).
//! A directive builds a new `MpConf` from the context's current one, so nothing is ever
//! changed in place and requests share them without locks.
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
use std::sync::{Arc, Mutex};

use super::httpd::{CmdParms, DirConf};

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

/// A `PythonImport module[::function] interpreter`.
#[derive(Clone, Debug)]
pub struct Import {
    pub module: String,
    pub interpreter: String,
}

/// `PythonImport`s of the configuration being read (reset at `pre_config`), then frozen
/// for the child.
static IMPORTS: Mutex<Vec<Import>> = Mutex::new(Vec::new());

/// The main server's own `PythonPath` (what `PythonImport` runs with, as mod_python).
static MAIN_PATH: Mutex<Option<String>> = Mutex::new(None);

/// Start a fresh configuration pass.
pub fn reset() {
    IMPORTS.lock().unwrap_or_else(|p| p.into_inner()).clear();
    *MAIN_PATH.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// The main server's `PythonPath`, if it has one.
pub fn main_path() -> Option<String> {
    MAIN_PATH.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The `PythonImport`s of the configuration (in the child: what the parent read).
pub fn imports() -> Vec<Import> {
    IMPORTS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn on_off(name: &str, args: &[String]) -> Result<bool, String> {
    match args {
        [v] if v.eq_ignore_ascii_case("on") => Ok(true),
        [v] if v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err(format!("{name} takes one argument, On or Off")),
    }
}

fn one<'a>(name: &str, args: &'a [String]) -> Result<&'a str, String> {
    match args {
        [v] => Ok(v),
        _ => Err(format!("{name} takes one argument")),
    }
}

/// The handlers of one `Python*Handler` line: `h1 h2 ... [| .ext1 .ext2 ...]`.
fn parse_handlers(
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

/// Read one mod_python directive into the context's configuration.
pub fn directive(cmd: &CmdParms, dc: &mut DirConf, args: &[String]) -> Result<(), String> {
    let name = String::from_utf8_lossy(cmd.name()).into_owned();
    let directory = cmd.path().map(|p| String::from_utf8_lossy(p).into_owned());
    let is_location = cmd.in_location_section();
    let server_level = directory.is_none();
    let mut c: MpConf = dc.modpython().map(|c| (*c).clone()).unwrap_or_default();
    c.directory = directory.clone();
    let add_handlers = |c: &mut MpConf, phase: usize, hs: Vec<Handler>| {
        c.handlers[phase].get_or_insert_with(Vec::new).extend(hs);
    };
    match name.as_str() {
        "PythonInitHandler" => {
            let hs = parse_handlers(&name, args, &directory, is_location, false)?;
            add_handlers(&mut c, if server_level { POST_READ } else { HEADER_PARSER }, hs);
        }
        "PythonHandlerModule" => {
            let module = one(&name, args)?;
            for (i, phase) in PHASES.iter().enumerate() {
                // Server-only phases only from the server configuration, as mod_python.
                if !server_level && (i == POST_READ || i == 1) {
                    continue;
                }
                let hs = parse_handlers(phase, &[module.to_string()], &directory, is_location, true)?;
                add_handlers(&mut c, i, hs);
            }
        }
        n if PHASES.contains(&n) => {
            let phase = PHASES.iter().position(|p| *p == n).expect("listed");
            let hs = parse_handlers(&name, args, &directory, is_location, false)?;
            add_handlers(&mut c, phase, hs);
        }
        "PythonOption" => match args {
            [k] => {
                c.options.insert(k.clone(), None);
            }
            [k, v] => {
                c.options.insert(k.clone(), (!v.is_empty()).then(|| v.clone()));
            }
            _ => return Err("PythonOption takes a key and a value".into()),
        },
        "PythonPath" => {
            let p = one(&name, args)?.to_string();
            if server_level && !cmd.server().is_virtual() {
                *MAIN_PATH.lock().unwrap_or_else(|p| p.into_inner()) = Some(p.clone());
            }
            c.path = Some(p);
        }
        "PythonInterpreter" => c.interpreter = Some(one(&name, args)?.to_string()),
        "PythonInterpPerDirectory" => c.interp_per_directory = Some(on_off(&name, args)?),
        "PythonInterpPerDirective" => c.interp_per_directive = Some(on_off(&name, args)?),
        "PythonAutoReload" => c.autoreload = Some(on_off(&name, args)?),
        "PythonDebug" => c.debug = Some(on_off(&name, args)?),
        "PythonEnablePdb" => {
            if on_off(&name, args)? {
                return Err("PythonEnablePdb On is not supported by oxwsgi (debug a handler with \
                            pdb under a development server instead); use Off or remove the line"
                    .into());
            }
        }
        "PythonOptimize" => {
            on_off(&name, args)?;
            return Err("PythonOptimize: use WSGIPythonOptimize 1 (one setting for the whole process)".into());
        }
        "PythonImport" => match args {
            [module, interpreter] => {
                IMPORTS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Import { module: module.clone(), interpreter: interpreter.clone() });
                return Ok(());
            }
            _ => return Err("PythonImport takes a module (module::function) and an interpreter name".into()),
        },
        "PythonInputFilter" | "PythonOutputFilter" | "PythonConnectionHandler" => {
            return Err(format!("{name} is not supported by oxwsgi yet"));
        }
        _ => return Err(format!("{name}: not a mod_python directive oxwsgi knows")),
    }
    dc.set_modpython(cmd, Arc::new(c));
    Ok(())
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
