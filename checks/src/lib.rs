//! Checks that the oxwsgi server modules and the `oxwsgi` launcher must agree on, written
//! once:
//!
//! - [`python_home`]: is a directory a usable python-home (a virtualenv made with the
//!   module's Python, or a prefix of that Python)?
//! - [`access`]: can a user (uid, gid and supplementary groups) read a path and enter every
//!   directory above it?
//! - [`msgid`]: the stable ids the module puts in its log lines and the launcher matches on.
//!
//! std only: the module (linked with libpython) and the launcher (never linked with it)
//! both depend on this crate.

pub mod access;
pub mod msgid;
pub mod python_home;

pub use access::{Account, can_read};
pub use python_home::{Home, HomeKind, Problem, check_python_home};
