//! oxwsgi: run WSGI (PEP 3333) applications inside Apache httpd and nginx worker processes.
//!
//! The crate has one server-agnostic engine, [`core`], and one adapter per server.
//! A build selects the adapter with a cargo feature (`apache` or `nginx`) and produces
//! that server's loadable module; without a feature only the core is built (tests).
//!
//! `unsafe` code lives only in [`ffi`] (CPython calls pyo3 does not wrap, generated server
//! bindings) and in the server adapters.

pub mod core;
pub mod daemon;
pub mod ffi;

#[cfg(feature = "apache")]
pub mod apache;

#[cfg(feature = "nginx")]
pub mod nginx;
