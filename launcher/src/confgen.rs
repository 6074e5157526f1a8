//! Server configuration text from a [`Plan`]: the complete private configuration `serve`
//! runs, and the part of it that `config` prints for pasting into an existing httpd.conf /
//! nginx.conf. The text of each server is in [`crate::conf_apache`] / [`crate::conf_nginx`].

use std::fmt::Write as _;

use crate::conf_apache::{apache_app, apache_full};
use crate::conf_nginx::{nginx_full, nginx_http, nginx_locations, nginx_main};
use crate::options::ServerKind;
use crate::plan::Plan;

pub fn full(p: &Plan) -> String {
    match p.kind {
        ServerKind::Apache => apache_full(p),
        ServerKind::Nginx => nginx_full(p),
    }
}

/// What `oxwsgi config` prints: the pasteable part, with where each piece goes.
pub fn snippet(p: &Plan, preamble: &str) -> String {
    let mut s = String::new();
    match p.kind {
        ServerKind::Apache => {
            let _ = writeln!(s, "# oxwsgi for Apache httpd: paste into httpd.conf (server config or a <VirtualHost>).");
            s.push_str(preamble);
            let _ = writeln!(
                s,
                "# Needs mod_alias{}; the MPM and the User the children run as come from your main config.",
                if p.url_aliases.is_empty() { "" } else { " and mod_mime" }
            );
            s.push_str(&apache_app(p));
        }
        ServerKind::Nginx => {
            let _ = writeln!(s, "# oxwsgi for nginx: paste each part into the named context of nginx.conf.");
            s.push_str(preamble);
            let _ = writeln!(s, "\n# main context (top level, before events {{}}):");
            s.push_str(&nginx_main(p));
            let _ =
                writeln!(s, "thread_pool default threads={}; # the pool wsgi_app uses (wsgi_thread_pool)", p.threads);
            let http = nginx_http(p);
            if !http.is_empty() {
                let _ = writeln!(s, "\n# http {{ }} context:");
                s.push_str(&http);
            }
            let _ = writeln!(s, "\n# server {{ }} context:");
            s.push_str(&nginx_locations(p));
        }
    }
    s
}
