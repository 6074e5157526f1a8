//! Finding things on this machine: the server binaries, our modules and the Python they
//! are built against. (The worker user: [`crate::users`].)

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::options::{Options, ServerKind};

/// Directories searched for server binaries besides $PATH (sbin is often not on a user's PATH).
const SBIN: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"];

pub fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(SBIN.iter().map(PathBuf::from));
    for name in names {
        for d in &dirs {
            let p = d.join(name);
            if is_executable(&p) {
                return Some(p);
            }
        }
    }
    None
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

pub fn server_binary(kind: ServerKind) -> Result<PathBuf, String> {
    let var = match kind {
        ServerKind::Apache => "OXWSGI_APACHE_BIN",
        ServerKind::Nginx => "OXWSGI_NGINX_BIN",
    };
    if let Some(b) = std::env::var_os(var).filter(|b| !b.is_empty()) {
        let b = PathBuf::from(b);
        if is_executable(&b) {
            return Ok(b);
        }
        let pkg = match kind {
            ServerKind::Apache => "apache2",
            ServerKind::Nginx => "nginx",
        };
        return Err(format!(
            "${var} is {}, which is not an executable file: fix ${var}, or unset it and install \
             the server with `apt-get install {pkg}`",
            b.display()
        ));
    }
    match kind {
        ServerKind::Apache => find_in_path(&["apache2", "httpd"]).ok_or_else(|| {
            "Apache httpd is not installed (no apache2 or httpd on PATH or in /usr/sbin): \
             install it with `apt-get install apache2` (Debian/Ubuntu) or `dnf install httpd`"
                .to_string()
        }),
        ServerKind::Nginx => find_in_path(&["nginx"]).ok_or_else(|| {
            "nginx is not installed (no nginx on PATH or in /usr/sbin): install it with \
             `apt-get install nginx` (Debian/Ubuntu) or `dnf install nginx`"
                .to_string()
        }),
    }
}

/// "Apache/2.4.62 (Debian)" or "nginx/1.22.1".
pub fn server_version(kind: ServerKind, bin: &Path) -> Result<String, String> {
    let out = Command::new(bin).arg("-v").output().map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let v = match kind {
        ServerKind::Apache => {
            text.lines().find_map(|l| l.strip_prefix("Server version:").map(|v| v.trim().to_string()))
        }
        ServerKind::Nginx => text.lines().find_map(|l| l.strip_prefix("nginx version:").map(|v| v.trim().to_string())),
    };
    v.ok_or_else(|| format!("{} -v printed no version: {}", bin.display(), text.trim()))
}

/// Apache's own module directory (mod_mpm_event.so, mod_alias.so ...).
pub fn apache_modules_dir() -> Option<PathBuf> {
    ["/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules", "/usr/libexec/apache2"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("mod_alias.so").is_file())
}

/// System directory where `make install` / distro packages put our module.
pub fn system_module_dir(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Apache => "/usr/lib/apache2/modules",
        ServerKind::Nginx => "/usr/lib/nginx/modules",
    }
}

/// Candidate module directories, in lookup order, each with where it came from.
pub fn module_dirs(o: &Options, kind: ServerKind) -> Vec<(PathBuf, &'static str)> {
    let mut v = Vec::new();
    if let Some(d) = &o.module_dir {
        v.push((d.clone(), "--module-dir"));
    }
    if let Some(d) = std::env::var_os("OXWSGI_MODULE_DIR").filter(|d| !d.is_empty()) {
        v.push((PathBuf::from(d), "$OXWSGI_MODULE_DIR"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            v.push((dir.join("..").join("modules"), "next to the oxwsgi binary"));
        }
    }
    v.push((PathBuf::from(system_module_dir(kind)), "system"));
    v
}

/// Our module for `kind`: the first one found in lookup order.
pub fn find_module(o: &Options, kind: ServerKind) -> Result<PathBuf, String> {
    let file = kind.module_file();
    let dirs = module_dirs(o, kind);
    for (d, _) in &dirs {
        let p = d.join(file);
        if p.is_file() {
            return Ok(normalize(&p));
        }
    }
    let tried: Vec<String> = dirs.iter().map(|(d, why)| format!("{} ({why})", normalize(d).display())).collect();
    let target = match kind {
        ServerKind::Apache => "make apache",
        ServerKind::Nginx => "make nginx",
    };
    Err(format!(
        "{file} not found; looked in: {}. Build it with `{target}` in the oxwsgi source tree \
         (or `make install`), or point --module-dir / OXWSGI_MODULE_DIR at the directory holding it",
        tried.join(", ")
    ))
}

/// Lexically remove `..` (the paths we build are `<exe dir>/../modules`).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The `pythonX.Y` version a built module links (from its DT_NEEDED libpython), if any.
pub fn module_python_version(so: &Path) -> Option<String> {
    let data = std::fs::read(so).ok()?;
    let needle = b"libpython3.";
    let mut i = 0;
    while i + needle.len() < data.len() {
        if data[i..].starts_with(needle) {
            let rest = &data[i + needle.len()..];
            let digits: Vec<u8> = rest.iter().take_while(|b| b.is_ascii_digit()).copied().collect();
            let after = &rest[digits.len()..];
            if !digits.is_empty() && (after.starts_with(b".so") || after.starts_with(b"t.so")) {
                return Some(format!("3.{}", String::from_utf8_lossy(&digits)));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize(Path::new("/a/b/../modules")), PathBuf::from("/a/modules"));
    }
}
