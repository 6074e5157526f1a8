//! The `mod_python` Python package that mod_python handlers import (`from mod_python
//! import apache, util`), written for oxwsgi from mod_python 3.5's documentation.
//!
//! The package's sources are compiled into the module (`include_str!`) and installed into
//! `sys.modules` the first time a process runs a mod_python handler or `PythonImport`: it
//! is never looked up on `sys.path`, so it always matches the module that serves it, and a
//! `mod_python` installed in the Python environment (Debian's `libapache2-mod-python`
//! ships one) cannot shadow it. The server adapter supplies the native part
//! (`mod_python._oxwsgi`: the `req` types and `log_error`).

pub mod conf;

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::types::PyList;

/// The package's `__init__`.
const INIT: &str = include_str!("mod_python/__init__.py");

/// The submodules, in import order (a module only imports those before it).
const SUBMODULES: &[(&str, &str)] = &[
    ("apache", include_str!("mod_python/apache.py")),
    ("util", include_str!("mod_python/util.py")),
    ("wsgi", include_str!("mod_python/wsgi.py")),
    ("Cookie", include_str!("mod_python/Cookie.py")),
    ("publisher", include_str!("mod_python/publisher.py")),
    ("Session", include_str!("mod_python/Session.py")),
    ("psp", include_str!("mod_python/psp.py")),
    ("cgihandler", include_str!("mod_python/cgihandler.py")),
];

fn c(s: &str) -> PyResult<CString> {
    CString::new(s).map_err(|_| pyo3::exceptions::PyValueError::new_err("NUL byte in embedded source"))
}

/// Install the package into `sys.modules` (once per interpreter; callers hold the GIL, which
/// serializes the first calls).
pub fn install(py: Python<'_>, native: impl FnOnce(Python<'_>) -> PyResult<Bound<'_, PyModule>>) -> PyResult<()> {
    // Once per interpreter: each has its own `sys.modules`, and only this function
    // puts the native part there.
    let modules = py.import("sys")?.getattr("modules")?;
    if modules.contains("mod_python._oxwsgi")? {
        return Ok(());
    }
    let pkg = PyModule::new(py, "mod_python")?;
    pkg.setattr("__path__", PyList::empty(py))?;
    pkg.setattr("__file__", "<oxwsgi>/mod_python/__init__.py")?;
    pkg.setattr("__package__", "mod_python")?;
    modules.set_item("mod_python", &pkg)?;
    let result = (|| -> PyResult<()> {
        let code = c(INIT)?;
        py.run(&code, Some(&pkg.dict()), None)?;
        let native = native(py)?;
        modules.set_item("mod_python._oxwsgi", &native)?;
        pkg.setattr("_oxwsgi", &native)?;
        for (name, src) in SUBMODULES {
            let m = PyModule::from_code(
                py,
                &c(src)?,
                &c(&format!("<oxwsgi>/mod_python/{name}.py"))?,
                &c(&format!("mod_python.{name}"))?,
            )?;
            pkg.setattr(*name, m)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Leave no half-installed package behind: the next request tries again.
        for name in ["mod_python", "mod_python._oxwsgi"] {
            let _ = modules.del_item(name);
        }
        for (name, _) in SUBMODULES {
            let _ = modules.del_item(format!("mod_python.{name}"));
        }
        return Err(e);
    }
    Ok(())
}
