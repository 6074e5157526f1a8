//! The account the server's workers run as, and what it may read.

use std::ffi::CString;
use std::path::Path;

use oxwsgi_checks::Account;

use crate::options::Options;

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

impl User {
    /// The account as the kernel checks it (with its supplementary groups).
    pub fn account(&self) -> Account {
        Account::new(&self.name, self.uid, self.gid)
    }

    /// Whether this user can read `path` and enter every directory above it
    /// ([`oxwsgi_checks::can_read`]). Err names the component that blocks.
    pub fn can_read(&self, path: &Path) -> Result<(), String> {
        oxwsgi_checks::can_read(path, &self.account())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_accounts() {
        let root = lookup_user("root").expect("root is in every passwd");
        assert_eq!((root.uid, root.gid, root.group.as_str()), (0, 0, "root"));
        assert!(lookup_user("no-such-user-oxwsgi-test").is_none());
    }

    #[test]
    fn the_crate_decides_readability() {
        let nobody = User { name: "nobody-test".into(), uid: 65534, gid: 65534, group: "nogroup".into() };
        use std::os::unix::fs::PermissionsExt;
        // Debian's /root is 0700: not listable by others.
        if std::fs::metadata("/root").map(|m| m.permissions().mode() & 0o005 == 0).unwrap_or(false) {
            let e = nobody.can_read(Path::new("/root")).unwrap_err();
            assert!(e.starts_with("user nobody-test cannot list /root"), "{e}");
        }
        assert_eq!(nobody.can_read(Path::new("/")), Ok(()));
    }
}
