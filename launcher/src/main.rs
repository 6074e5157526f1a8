//! `oxwsgi`: run a WSGI application inside Apache httpd or nginx with the oxwsgi module,
//! in one command (like mod_wsgi-express). std-only and never linked with libpython: it
//! writes a server configuration and runs the real server binary.

// The commands.
mod config;
mod doctor;
mod serve;

// What the user asked for, and what it resolves to.
mod app;
mod cli;
mod options;
mod resolve;

// Finding things on this machine.
mod locate;
mod users;

// Configuration text.
mod conf_apache;
mod conf_nginx;
mod confgen;
mod plan;

// Running a server (serve).
mod logs;
mod probe;
mod procs;
mod server;
mod stage;
mod supervise;
mod watch;

// doctor's checks.
mod doctor_app;
mod doctor_servers;
mod report;

use cli::Command;

/// An error for the user: one clear message, never a stack trace.
#[derive(Debug)]
pub struct Failure {
    pub msg: String,
    pub code: i32,
}

impl Failure {
    pub fn msg(m: impl Into<String>) -> Failure {
        Failure { msg: m.into(), code: 1 }
    }
    pub fn usage(m: impl Into<String>) -> Failure {
        Failure { msg: m.into(), code: 2 }
    }
}

/// A progress line on stderr.
pub fn say(msg: &str) {
    // Never panic on a closed terminal/pipe: the server must still be stopped.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "oxwsgi: {msg}");
}

fn main() {
    // A panic is a bug; still print one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("oxwsgi: internal error: {info} (please report this)");
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = cli::parse(&args);
    if !matches!(parsed, Ok(Command::Serve(_))) {
        // `oxwsgi config | head` ends quietly, like any Unix filter. (serve keeps SIGPIPE
        // ignored: it must always get to stop its server.)
        // SAFETY: restoring a default signal disposition before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match parsed {
        Err(e) => Err(Failure::usage(e)),
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            Ok(0)
        }
        Ok(Command::Version) => {
            println!("oxwsgi {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Ok(Command::Demo) => {
            print!("{}", app::DEMO_APP);
            Ok(0)
        }
        Ok(Command::Config(o)) => config::config(&o).map(|_| 0),
        Ok(Command::Doctor(o)) => Ok(doctor::doctor(&o)),
        Ok(Command::Serve(o)) => serve::serve(&o),
    };
    let code = match result {
        Ok(c) => c,
        Err(f) => {
            say(&format!("error: {}", f.msg));
            if f.code == 2 {
                eprintln!("oxwsgi: see `oxwsgi help` for usage");
            }
            f.code
        }
    };
    std::process::exit(code);
}
