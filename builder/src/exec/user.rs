//! `USER` resolution against the image's `/etc/passwd` and `/etc/group`, with BuildKit's semantics.
//!
//! BuildKit first tries a fast path: `uid:gid` with both parts numeric (or `root`) is used as is, with no
//! supplementary groups and no file read. Anything else goes through runc's `GetExecUser`: a name must
//! be in `/etc/passwd`; a number not found there is used as a uid with gid 0; an explicit group must be
//! in `/etc/group` unless numeric; and only when no group is given are the supplementary groups those
//! that list the user's name as a member. Files are read inside the rootfs (symlinks resolve within
//! it); a missing file reads as empty.

use std::io;
use std::path::{Path, PathBuf};

use super::rootfs::Root;

/// Who a step runs as: the ids `setuid`, `setgid` and `setgroups` get.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary group ids, in `/etc/group` order.
    pub additional_gids: Vec<u32>,
}

impl User {
    /// uid 0, gid 0, no supplementary groups (what an empty `USER` resolves to).
    pub fn root() -> Self {
        Self {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        }
    }
}

/// Why a `USER` value could not be resolved. Messages are BuildKit's.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A user name with no `/etc/passwd` entry.
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UserNotFound {
        /// The name asked for.
        user: String,
    },
    /// A group name with no `/etc/group` entry.
    #[error("unable to find group {group}: no matching entries in group file")]
    GroupNotFound {
        /// The name asked for.
        group: String,
    },
    /// A numeric id outside what Linux allows for containers.
    #[error("uids and gids must be in range 0-{max}", max = MAX_ID)]
    Range {
        /// The id as written.
        id: String,
    },
    /// `/etc/passwd` or `/etc/group` exists but could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// Host path of the file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The largest uid or gid runc accepts.
const MAX_ID: i64 = i32::MAX as i64;

/// Resolves a `USER` value (`name|uid[:group|gid]`) against the rootfs's `/etc/passwd` and `/etc/group`.
///
/// ```
/// let rootfs = tempfile::tempdir()?;
/// std::fs::create_dir(rootfs.path().join("etc"))?;
/// std::fs::write(rootfs.path().join("etc/passwd"), "app:x:1000:1000::/home/app:/bin/sh\n")?;
/// std::fs::write(rootfs.path().join("etc/group"), "app:x:1000:\nstaff:x:50:app\n")?;
///
/// let user = kiln_builder::exec::resolve_user(rootfs.path(), "app")?;
/// assert_eq!((user.uid, user.gid, user.additional_gids), (1000, 1000, vec![50]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<User, UserError> {
    if let Some((uid, gid)) = parse_uid_gid(spec) {
        return Ok(User {
            uid,
            gid,
            additional_gids: Vec::new(),
        });
    }
    let passwd = read_user_file(rootfs, "etc/passwd")?;
    let group = read_user_file(rootfs, "etc/group")?;
    exec_user(spec, &passwd, &group)
}

/// The home directory runc gives `uid` when the environment has no `HOME`: its passwd entry's, else `/`.
pub(super) fn home_for_uid(root: &Root, uid: u32) -> String {
    let passwd = root
        .read_file(Path::new("etc/passwd"))
        .ok()
        .flatten()
        .unwrap_or_default();
    passwd_entries(&String::from_utf8_lossy(&passwd))
        .find(|entry| entry.uid == i64::from(uid))
        .map_or_else(|| "/".to_owned(), |entry| entry.home.to_owned())
}

/// BuildKit's fast path: both parts present and numeric (`root` counts as 0); `""` is root.
fn parse_uid_gid(spec: &str) -> Option<(u32, u32)> {
    if spec.is_empty() {
        return Some((0, 0));
    }
    let (user, group) = spec.split_once(':')?;
    let id = |s: &str| {
        if s == "root" {
            Some(0)
        } else {
            s.parse::<u32>().ok()
        }
    };
    Some((id(user)?, id(group)?))
}

fn read_user_file(rootfs: &Path, rel: &str) -> Result<String, UserError> {
    let read = Root::open(rootfs).and_then(|root| root.read_file(Path::new(rel)));
    match read {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()),
        Err(source) => Err(UserError::Read {
            path: rootfs.join(rel),
            source,
        }),
    }
}

/// runc's `GetExecUser` with no defaults (uid 0, gid 0), as BuildKit calls it.
fn exec_user(spec: &str, passwd: &str, group: &str) -> Result<User, UserError> {
    let (user_arg, group_arg) = spec.split_once(':').unwrap_or((spec, ""));
    let uid_arg = user_arg.parse::<i64>().ok();
    let gid_arg = group_arg.parse::<i64>().ok();
    let (mut uid, mut gid) = (0, 0);

    let matched = passwd_entries(passwd).find(|u| match (user_arg, uid_arg) {
        ("", _) => u.uid == 0,
        (_, Some(n)) => u.uid == n,
        (name, None) => u.name == name,
    });
    let matched_name = match (&matched, uid_arg) {
        (Some(entry), _) => {
            (uid, gid) = (entry.uid, entry.gid);
            entry.name
        }
        (None, _) if user_arg.is_empty() => "",
        (None, Some(n)) => {
            check_range(n, user_arg)?;
            uid = n;
            ""
        }
        (None, None) => {
            return Err(UserError::UserNotFound {
                user: user_arg.to_owned(),
            });
        }
    };

    let mut additional_gids = Vec::new();
    if !group_arg.is_empty() {
        let found = group_entries(group).find(|g| match gid_arg {
            Some(n) => g.gid == n,
            None => g.name == group_arg,
        });
        gid = match (found, gid_arg) {
            (Some(entry), _) => entry.gid,
            (None, Some(n)) => {
                check_range(n, group_arg)?;
                n
            }
            (None, None) => {
                return Err(UserError::GroupNotFound {
                    group: group_arg.to_owned(),
                });
            }
        };
    } else if !matched_name.is_empty() {
        additional_gids = group_entries(group)
            .filter(|g| g.members.split(',').any(|member| member == matched_name))
            .map(|g| to_id(g.gid))
            .collect();
    }
    Ok(User {
        uid: to_id(uid),
        gid: to_id(gid),
        additional_gids,
    })
}

fn check_range(id: i64, written: &str) -> Result<(), UserError> {
    if (0..=MAX_ID).contains(&id) {
        Ok(())
    } else {
        Err(UserError::Range {
            id: written.to_owned(),
        })
    }
}

/// Ids from the files are not range-checked by runc either; out-of-range ones wrap as they would in Go.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_id(id: i64) -> u32 {
    id as u32
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: i64,
    gid: i64,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: i64,
    members: &'a str,
}

/// `name:password:uid:gid:gecos:home:shell`; as in runc, a field that is not a number reads as 0.
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut fields = line.split(':');
            let mut next = || fields.next().unwrap_or("");
            let name = next();
            let _password = next();
            let uid = next().parse().unwrap_or(0);
            let gid = next().parse().unwrap_or(0);
            let _gecos = next();
            PasswdEntry {
                name,
                uid,
                gid,
                home: next(),
            }
        })
}

/// `name:password:gid:member,member`.
fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut fields = line.split(':');
            let mut next = || fields.next().unwrap_or("");
            let name = next();
            let _password = next();
            let gid = next().parse().unwrap_or(0);
            GroupEntry {
                name,
                gid,
                members: next(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          app:x:1000:1000:app:/home/app:/bin/sh\n\
                          svc:x:1001:50::/srv:/bin/false\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app,svc\napp:x:1000:\nwheel:x:10:root,app\n";

    fn user(uid: u32, gid: u32, additional_gids: &[u32]) -> User {
        User {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    fn resolve(spec: &str) -> Result<User, UserError> {
        parse_uid_gid(spec)
            .map(|(uid, gid)| user(uid, gid, &[]))
            .map_or_else(|| exec_user(spec, PASSWD, GROUP), Ok)
    }

    #[test]
    fn exec_user_by_name_takes_passwd_ids_and_member_groups() {
        assert_eq!(resolve("app").unwrap(), user(1000, 1000, &[50, 10]));
        assert_eq!(resolve("root").unwrap(), user(0, 0, &[10]));
        assert_eq!(resolve("svc").unwrap(), user(1001, 50, &[50]));
    }

    #[test]
    fn exec_user_numeric_forms() {
        assert_eq!(
            resolve("1000").unwrap(),
            user(1000, 1000, &[50, 10]),
            "a known uid is its entry"
        );
        assert_eq!(
            resolve("4242").unwrap(),
            user(4242, 0, &[]),
            "an unknown uid gets gid 0"
        );
        assert_eq!(
            resolve("1000:1000").unwrap(),
            user(1000, 1000, &[]),
            "fast path: no groups"
        );
        assert_eq!(resolve("root:root").unwrap(), user(0, 0, &[]));
        assert_eq!(resolve("").unwrap(), user(0, 0, &[]));
    }

    #[test]
    fn exec_user_explicit_group_drops_supplementary_groups() {
        assert_eq!(resolve("app:staff").unwrap(), user(1000, 50, &[]));
        assert_eq!(resolve("app:77").unwrap(), user(1000, 77, &[]));
        assert_eq!(resolve("4242:staff").unwrap(), user(4242, 50, &[]));
    }

    #[test]
    fn exec_user_errors_are_buildkits() {
        let err = resolve("nosuch").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user nosuch: no matching entries in passwd file"
        );
        let err = resolve("app:nogroup").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        let err = resolve("-1").unwrap_err();
        assert_eq!(err.to_string(), "uids and gids must be in range 0-2147483647");
    }

    #[test]
    fn exec_user_without_files_accepts_only_numbers() {
        assert_eq!(exec_user("1000", "", "").unwrap(), user(1000, 0, &[]));
        assert_eq!(exec_user("1000:5", "", "").unwrap(), user(1000, 5, &[]));
        assert!(matches!(
            exec_user("app", "", ""),
            Err(UserError::UserNotFound { .. })
        ));
    }
}
