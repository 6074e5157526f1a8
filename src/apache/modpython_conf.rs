//! mod_python 3.5's directives: parsing, the per-directory merge, and `PythonImport`.
//!
//! Every mod_python directive of a context lands in one immutable [`MpConf`]; the C
//! dir-config holds it (an `Arc` kept alive by the pool, see `DirConf::set_modpython`).
//! A directive builds a new `MpConf` from the context's current one, so nothing is ever
//! changed in place and requests share them without locks.
//!
//! The rules themselves (phases, stacking, merge) are server-independent:
//! `crate::core::modpython::conf`.

use std::sync::{Arc, Mutex};

use super::httpd::{CmdParms, DirConf};
pub use crate::core::modpython::conf::{CLEANUP, HEADER_PARSER, Handler, MpConf, PHASES, POST_READ};
use crate::core::modpython::conf::{on_off, one, parse_handlers};

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
    super::modpython_filter::reset();
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
        "PythonOutputFilter" | "PythonInputFilter" => match args {
            [handler, fname] => {
                if handler.split("::").next().unwrap_or("").is_empty() {
                    return Err(format!("{name}: {handler:?} is not a handler (module or module::function)"));
                }
                let is_input = name == "PythonInputFilter";
                super::modpython_filter::define(
                    is_input,
                    fname,
                    super::modpython_filter::FilterDef { spec: handler.clone(), directory: directory.clone() },
                );
                let c = std::ffi::CString::new(fname.as_str()).map_err(|_| format!("{name}: NUL in the name"))?;
                if is_input {
                    super::httpd::process::register_mp_input_filter(&c);
                } else {
                    super::httpd::process::register_mp_output_filter(&c);
                }
                return Ok(());
            }
            _ => return Err(format!("{name} takes a handler and a filter name")),
        },
        "PythonConnectionHandler" => {
            return Err(format!("{name} is not supported by oxwsgi yet"));
        }
        _ => return Err(format!("{name}: not a mod_python directive oxwsgi knows")),
    }
    dc.set_modpython(cmd, Arc::new(c));
    Ok(())
}
