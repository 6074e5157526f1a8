//! `oxwsgi config`: print the configuration `serve` would run — the part to paste into an
//! existing httpd.conf / nginx.conf, or with `--full` the whole private file.

use std::path::PathBuf;

use crate::Failure;
use crate::app::{self, AppSpec};
use crate::confgen;
use crate::options::Options;
use crate::plan::Plan;
use crate::resolve;

/// Where `serve` would put its private directory (the real one gets a random suffix).
const PRIVATE_DIR: &str = "/tmp/oxwsgi-serve-XXXXXX";

pub fn config(o: &Options) -> Result<(), Failure> {
    let r = resolve::resolve(o, false)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut preamble = String::new();
    let script = match &r.app {
        AppSpec::Script { path, .. } => path.clone(),
        AppSpec::Demo => {
            let p = cwd.join("oxwsgi-demo.wsgi");
            preamble.push_str(&format!(
                "# No app given: this uses the built-in demo app. Save it first with:\n#   oxwsgi demo > {}\n",
                p.display()
            ));
            p
        }
        AppSpec::Module { module, attr } => {
            let p = cwd.join(format!("{}.oxwsgi.wsgi", module.replace('.', "_")));
            preamble.push_str(&format!(
                "# The app is {module}:{attr}; the server needs a script file. Save these lines\n\
                 # (without the leading '# | ') as {}:\n",
                p.display()
            ));
            for l in app::shim(module, attr, &r.python_path).lines() {
                preamble.push_str(&format!("# | {l}\n"));
            }
            p
        }
    };
    let dir = PathBuf::from(PRIVATE_DIR);
    // --full shows the private configuration, which loads the copy of the module `serve`
    // stages; the pasteable part loads the module where it is.
    let module = if o.full { dir.join("modules").join(o.server.module_file()) } else { r.module.clone() };
    let plan = Plan::new(o, &r, dir, module, script, o.port);
    let text = if o.full { format!("{preamble}{}", confgen::full(&plan)) } else { confgen::snippet(&plan, &preamble) };
    print!("{text}");
    Ok(())
}
