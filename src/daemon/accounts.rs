//! The accounts a process group runs as (`user=`, `group=`, `supplementary_groups=`),
//! looked up in /etc/passwd and /etc/group, and the stable hash that names a group's
//! socket. Shared by the Apache and nginx adapters: both check a group's definition at
//! configuration time, in the server's parent process, before any daemon exists.

use std::path::PathBuf;

/// A user the daemons run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// (name, uid, gid, home) of each well-formed /etc/passwd line.
fn passwd() -> Vec<(String, u32, u32, PathBuf)> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?, PathBuf::from(f.get(5)?)))
        })
        .collect()
}

/// A user by name or `#uid`.
pub fn lookup_user(v: &str) -> Option<User> {
    let all = passwd();
    let found = match v.strip_prefix('#') {
        Some(n) => {
            let uid: u32 = n.parse().ok()?;
            all.into_iter().find(|e| e.1 == uid).or(Some((format!("#{uid}"), uid, uid, PathBuf::from("/"))))
        }
        None => all.into_iter().find(|e| e.0 == v),
    }?;
    Some(User { name: found.0, uid: found.1, gid: found.2, home: found.3 })
}

/// A group id by name or `#gid`.
pub fn lookup_group(v: &str) -> Option<u32> {
    if let Some(n) = v.strip_prefix('#') {
        return n.parse().ok();
    }
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&v)).then(|| f.get(2)?.parse().ok()).flatten()
    })
}

/// FNV-1a: a stable hash of a group's definition (names its socket).
pub fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
