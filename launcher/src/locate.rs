//! Finding things on this machine: server binaries, our modules, users, and whether the
//! worker user can read a path.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{Options, ServerKind};

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

/// A user account: name, uid, primary gid.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub group: String,
}

pub fn lookup_user(name: &str) -> Option<User> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or NULL; we copy out at once,
    // and the launcher calls it from the main thread only.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        if pw.is_null() {
            return None;
        }
        let uid = (*pw).pw_uid;
        let gid = (*pw).pw_gid;
        let gr = libc::getgrgid(gid);
        let group = if gr.is_null() {
            gid.to_string()
        } else {
            std::ffi::CStr::from_ptr((*gr).gr_name).to_string_lossy().into_owned()
        };
        Some(User { name: name.to_string(), uid, gid, group })
    }
}

pub fn current_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The user the server's workers will run as, or None when they run as the invoking user
/// (not root: the server cannot switch users, so no User/Group directive is written).
pub fn worker_user(o: &Options) -> Result<Option<User>, String> {
    if current_uid() != 0 {
        if o.user.is_some() {
            return Err("--user needs root (the server can only switch users when started as root)".into());
        }
        return Ok(None);
    }
    let name = o.user.clone().unwrap_or_else(|| "www-data".into());
    let u = lookup_user(&name).ok_or_else(|| {
        format!("user {name:?} does not exist; the workers of a server started as root run as an unprivileged user: pass --user NAME")
    })?;
    if u.uid == 0 {
        return Err("the workers must not run as root: pass --user with an unprivileged account".into());
    }
    Ok(Some(u))
}

/// Whether `user` can read `path` (r on the file or r-x on a directory, x on every
/// ancestor). Err names the first component that blocks, with its mode.
pub fn user_can_read(path: &Path, user: &User) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let groups = supplementary_groups(&user.name, user.gid);
    let mut cur = Some(path);
    let mut first = true;
    while let Some(p) = cur {
        let m = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let need = if first { if m.is_dir() { 0o5 } else { 0o4 } } else { 0o1 };
        let mode = m.mode();
        let bits = if m.uid() == user.uid {
            (mode >> 6) & 7
        } else if groups.contains(&m.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        if bits & need != need {
            let what = if first && m.is_dir() {
                "list"
            } else if first {
                "read"
            } else {
                "enter"
            };
            return Err(format!(
                "user {} cannot {what} {} (mode {:o}, owner uid {})",
                user.name,
                p.display(),
                mode & 0o7777,
                m.uid()
            ));
        }
        first = false;
        cur = p.parent();
    }
    Ok(())
}

/// gid list of `user` (primary first), from /etc/group.
fn supplementary_groups(user: &str, primary: u32) -> Vec<u32> {
    let mut v = vec![primary];
    if let Ok(t) = std::fs::read_to_string("/etc/group") {
        for l in t.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == user) {
                if let Ok(g) = f[2].parse() {
                    v.push(g);
                }
            }
        }
    }
    v
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

/// Version `X.Y.Z` and base interpreter recorded in a virtualenv's pyvenv.cfg.
pub struct VenvInfo {
    pub version: Option<String>,
    pub home: Option<PathBuf>,
}

pub fn read_pyvenv(home: &Path) -> Option<VenvInfo> {
    let text = std::fs::read_to_string(home.join("pyvenv.cfg")).ok()?;
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    Some(VenvInfo { version: get("version").or_else(|| get("version_info")), home: get("home").map(PathBuf::from) })
}

/// "3.11" from "3.11.2".
pub fn minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_version() {
        assert_eq!(minor("3.12.1"), "3.12");
        assert_eq!(minor("3.11"), "3.11");
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize(Path::new("/a/b/../modules")), PathBuf::from("/a/modules"));
    }

    #[test]
    fn readable_checks() {
        let nobody = User { name: "nobody-test".into(), uid: 65534, gid: 65534, group: "nogroup".into() };
        assert!(user_can_read(Path::new("/etc/hostname"), &nobody).is_ok() || !Path::new("/etc/hostname").exists());
        // /root is 0700 on Debian: not enterable by others.
        if let Ok(m) = std::fs::metadata("/root") {
            use std::os::unix::fs::PermissionsExt;
            if m.permissions().mode() & 0o001 == 0 {
                assert!(user_can_read(Path::new("/root/x"), &nobody).is_err() || !Path::new("/root/x").exists());
                let e = user_can_read(Path::new("/root"), &nobody).unwrap_err();
                assert!(e.contains("cannot list /root"), "{e}");
            }
        }
    }
}
