//! Can a user read a path? The worker processes of a server started as root run as an
//! unprivileged account (`www-data`); everything they load must be readable by it, and
//! saying so at configuration time beats a worker that dies on its first request.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A user account as the kernel checks it: uid, primary gid and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Every group the account is in (the primary one first).
    pub groups: Vec<u32>,
}

impl Account {
    /// The account `name` (uid, gid), its supplementary groups read from /etc/group.
    pub fn new(name: &str, uid: u32, gid: u32) -> Account {
        let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
        Account { name: name.to_string(), uid, gid, groups: groups_in(&text, name, gid) }
    }

    /// The account with this uid (and primary gid), named from /etc/passwd (`uid N` when it
    /// has no entry there).
    pub fn by_uid(uid: u32, gid: u32) -> Account {
        let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let name = passwd_entries(&text).find(|e| e.1 == uid).map(|e| e.0.to_string());
        Account::new(&name.unwrap_or_else(|| format!("uid {uid}")), uid, gid)
    }

    /// The account `name` from /etc/passwd, if it has an entry there.
    pub fn by_name(name: &str) -> Option<Account> {
        let text = std::fs::read_to_string("/etc/passwd").ok()?;
        let (_, uid, gid) = passwd_entries(&text).find(|e| e.0 == name)?;
        Some(Account::new(name, uid, gid))
    }
}

/// (name, uid, gid) of each well-formed /etc/passwd line.
fn passwd_entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some((*f.first()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
    })
}

/// `primary`, then the gid of every /etc/group line listing `user` as a member.
fn groups_in(group_file: &str, user: &str, primary: u32) -> Vec<u32> {
    let mut v = vec![primary];
    for l in group_file.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[3].split(',').any(|m| m.trim() == user) {
            if let Ok(g) = f[2].parse() {
                if !v.contains(&g) {
                    v.push(g);
                }
            }
        }
    }
    v
}

/// Whether `who` can use `path`: read it (a file) or list and enter it (a directory), and
/// enter every directory above it. The permission bits are read the way the kernel applies
/// them: the owner's bits for the owner, else the group's bits for a member of the file's
/// group, else the others' bits. root (uid 0) may read anything. Err names the first
/// component that blocks, e.g. `user www-data cannot enter /root (mode 700, owner uid 0)`.
pub fn can_read(path: &Path, who: &Account) -> Result<(), String> {
    let mut cur = Some(path);
    let mut target = true;
    while let Some(p) = cur {
        if p.as_os_str().is_empty() {
            break; // the top of a relative path
        }
        let m = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        // r-x to list a directory, r to read a file, x to pass through an ancestor.
        let need = match (target, m.is_dir()) {
            (true, true) => 0o5,
            (true, false) => 0o4,
            (false, _) => 0o1,
        };
        let mode = m.mode();
        let bits = if m.uid() == who.uid {
            (mode >> 6) & 7
        } else if who.groups.contains(&m.gid()) || m.gid() == who.gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        if who.uid != 0 && bits & need != need {
            let what = match (target, m.is_dir()) {
                (true, true) => "list",
                (true, false) => "read",
                (false, _) => "enter",
            };
            return Err(format!(
                "user {} cannot {what} {} (mode {:o}, owner uid {})",
                who.name,
                p.display(),
                mode & 0o7777,
                m.uid()
            ));
        }
        target = false;
        cur = p.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A fresh directory under /tmp (mode 0755), removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let d = std::env::temp_dir().join(format!("oxwsgi-checks-access-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir(&d).unwrap();
            chmod(&d, 0o755);
            Scratch(d)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// (uid, gid) that own the files this test creates.
    fn owner(p: &Path) -> (u32, u32) {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    }

    /// An account that neither owns the scratch files nor is in their group.
    fn stranger(s: &Scratch) -> Account {
        let (uid, gid) = owner(&s.0);
        Account { name: "stranger".into(), uid: uid + 4242, gid: gid + 4242, groups: vec![gid + 4242] }
    }

    #[test]
    fn others_bits_decide_for_a_stranger() {
        let s = Scratch::new("others");
        let who = stranger(&s);
        let dir = s.0.join("d");
        let file = dir.join("f.py");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&file, "x").unwrap();
        chmod(&dir, 0o755);
        chmod(&file, 0o644);
        assert_eq!(can_read(&file, &who), Ok(()));
        assert_eq!(can_read(&dir, &who), Ok(()));

        chmod(&file, 0o640);
        let e = can_read(&file, &who).unwrap_err();
        assert!(e.starts_with(&format!("user stranger cannot read {}", file.display())), "{e}");
        assert!(e.contains("mode 640"), "{e}");

        chmod(&file, 0o644);
        chmod(&dir, 0o750);
        let e = can_read(&file, &who).unwrap_err();
        assert!(e.starts_with(&format!("user stranger cannot enter {}", dir.display())), "{e}");

        // An ancestor needs x only; the target directory needs r and x.
        chmod(&dir, 0o711);
        assert_eq!(can_read(&file, &who), Ok(()));
        let e = can_read(&dir, &who).unwrap_err();
        assert!(e.starts_with(&format!("user stranger cannot list {}", dir.display())), "{e}");
    }

    #[test]
    fn group_bits_apply_to_primary_and_supplementary_groups() {
        let s = Scratch::new("groups");
        let file = s.0.join("f");
        std::fs::write(&file, "x").unwrap();
        chmod(&file, 0o640);
        let (_, gid) = owner(&file);
        let mut who = stranger(&s);
        assert!(can_read(&file, &who).is_err());
        who.groups.push(gid); // a supplementary group
        assert_eq!(can_read(&file, &who), Ok(()));
        let primary = Account { gid, groups: vec![gid], ..stranger(&s) };
        assert_eq!(can_read(&file, &primary), Ok(()));
        // A member of the group gets the group's bits, not the others': 0604 denies it.
        chmod(&file, 0o604);
        assert!(can_read(&file, &primary).is_err());
        assert_eq!(can_read(&file, &stranger(&s)), Ok(()));
    }

    #[test]
    fn the_owner_gets_the_owner_bits_only() {
        let s = Scratch::new("owner");
        let file = s.0.join("f");
        std::fs::write(&file, "x").unwrap();
        let (mut uid, gid) = owner(&file);
        if uid == 0 {
            // root reads anything: give the file to an ordinary uid for this test.
            std::os::unix::fs::chown(&file, Some(4243), None).unwrap();
            uid = 4243;
        }
        let me = Account { name: "me".into(), uid, gid, groups: vec![gid] };
        chmod(&file, 0o400);
        assert_eq!(can_read(&file, &me), Ok(()));
        chmod(&file, 0o044);
        assert!(can_read(&file, &me).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn root_reads_anything_and_missing_paths_are_named() {
        let s = Scratch::new("root");
        let file = s.0.join("f");
        std::fs::write(&file, "x").unwrap();
        chmod(&file, 0o000);
        let root = Account { name: "root".into(), uid: 0, gid: 0, groups: vec![0] };
        assert_eq!(can_read(&file, &root), Ok(()));
        let missing = s.0.join("nope");
        let e = can_read(&missing, &root).unwrap_err();
        assert!(e.starts_with(&format!("{}: ", missing.display())), "{e}");
    }

    #[test]
    fn group_file_membership() {
        let text = "root:x:0:\nwww-data:x:33:\nshadow:x:42:alice,www-data\nweb:x:1001: www-data\nbad:x:zz:www-data\n";
        assert_eq!(groups_in(text, "www-data", 33), vec![33, 42, 1001]);
        assert_eq!(groups_in(text, "alice", 1000), vec![1000, 42]);
        assert_eq!(groups_in(text, "bob", 1002), vec![1002]);
    }

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nbroken\n";
        let e: Vec<_> = passwd_entries(text).collect();
        assert_eq!(e, vec![("root", 0, 0), ("www-data", 33, 33)]);
    }
}
