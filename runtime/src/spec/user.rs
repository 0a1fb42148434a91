//! The container's user and groups, resolved as containerd's CRI plugin does
//! against the container's own `/etc/passwd` and `/etc/group` (never the
//! host's):
//!
//! - the user string is `run_as_username`, else `run_as_user`, with
//!   `:<run_as_group>` appended when given, else the image's `User`;
//! - `uid` alone takes the primary group from `/etc/passwd` (0 when the
//!   uid is not listed); a name must exist; `user:group` resolves each part
//!   that is a name and takes numbers as they are;
//! - supplemental groups: the primary gid, plus (policy `Merge`) every
//!   `/etc/group` entry listing the user as a member, plus the request's
//!   `supplemental_groups`; sorted, without duplicates.

use std::fs;
use std::io;
use std::path::Path;

use k8s_cri::v1::{LinuxContainerSecurityContext, SupplementalGroupsPolicy};
use oci_spec::runtime::User;

use super::SpecError;
use super::rootfs::resolve_in_root;

const SC: &str = "linux.security_context";

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The user database of one container image.
#[derive(Debug, Default)]
struct UserDb {
    passwd: Option<Vec<PasswdEntry>>,
    group: Option<Vec<GroupEntry>>,
}

impl UserDb {
    fn read(rootfs: &Path) -> Result<Self, SpecError> {
        Ok(Self {
            passwd: read_in_root(rootfs, "etc/passwd")?.map(|s| parse_passwd(&s)),
            group: read_in_root(rootfs, "etc/group")?.map(|s| parse_group(&s)),
        })
    }

    fn user_by_uid(&self, uid: u32) -> Option<&PasswdEntry> {
        self.passwd.as_ref()?.iter().find(|u| u.uid == uid)
    }

    fn user_by_name(&self, name: &str) -> Option<&PasswdEntry> {
        self.passwd.as_ref()?.iter().find(|u| u.name == name)
    }

    fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.group.as_ref()?.iter().find(|g| g.name == name)
    }

    /// Groups listing `user` as a member, except one named like the user
    /// (that is the user's own group, not a supplemental one).
    fn member_gids(&self, user: &str) -> Vec<u32> {
        self.group
            .iter()
            .flatten()
            .filter(|g| g.name != user && g.members.iter().any(|m| m == user))
            .map(|g| g.gid)
            .collect()
    }
}

/// Where the user string came from, to name the field when it is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserSource {
    RunAsUsername,
    RunAsUser,
    Image,
}

impl UserSource {
    fn field(self) -> String {
        match self {
            Self::RunAsUsername => format!("{SC}.run_as_username"),
            Self::RunAsUser => format!("{SC}.run_as_user"),
            Self::Image => "image.config.User".to_string(),
        }
    }
}

/// Resolves the process user for the container.
pub(crate) fn resolve_user(
    sc: Option<&LinuxContainerSecurityContext>,
    image_user: &str,
    rootfs: &Path,
) -> Result<User, SpecError> {
    let db = UserDb::read(rootfs)?;
    let (uid, gid) = match user_string(sc, image_user)? {
        Some((userstr, source)) => resolve_user_string(&db, &userstr, source)?,
        None => (0, 0),
    };

    let policy = sc.map(|s| s.supplemental_groups_policy).unwrap_or(0);
    let merge = match SupplementalGroupsPolicy::try_from(policy) {
        Ok(SupplementalGroupsPolicy::Merge) => true,
        Ok(SupplementalGroupsPolicy::Strict) => false,
        Err(_) => {
            return Err(SpecError::invalid(
                format!("{SC}.supplemental_groups_policy"),
                format!("unknown policy {policy}"),
            ));
        }
    };

    let mut gids = vec![gid];
    if merge {
        let name = member_lookup_name(&db, sc, image_user);
        gids.extend(db.member_gids(&name));
    }
    for (i, g) in sc
        .map(|s| s.supplemental_groups.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let g = u32::try_from(*g)
            .ok()
            .filter(|g| *g <= i32::MAX as u32)
            .ok_or_else(|| {
                SpecError::invalid(
                    format!("{SC}.supplemental_groups[{i}]"),
                    format!("group id {g} is out of range"),
                )
            })?;
        gids.push(g);
    }
    gids.sort_unstable();
    gids.dedup();

    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    user.set_additional_gids(Some(gids));
    Ok(user)
}

/// The user string the request asks for, or the image's; `None` means root.
fn user_string(
    sc: Option<&LinuxContainerSecurityContext>,
    image_user: &str,
) -> Result<Option<(String, UserSource)>, SpecError> {
    let username = sc.map(|s| s.run_as_username.as_str()).unwrap_or_default();
    let uid = sc.and_then(|s| s.run_as_user).map(|v| v.value);
    let gid = sc.and_then(|s| s.run_as_group).map(|v| v.value);
    let (user, source) = if !username.is_empty() {
        (username.to_string(), UserSource::RunAsUsername)
    } else if let Some(uid) = uid {
        (uid.to_string(), UserSource::RunAsUser)
    } else {
        if gid.is_some() {
            return Err(SpecError::invalid(
                format!("{SC}.run_as_group"),
                "run_as_group needs run_as_user or run_as_username",
            ));
        }
        if image_user.is_empty() {
            return Ok(None);
        }
        return Ok(Some((image_user.to_string(), UserSource::Image)));
    };
    Ok(Some(match gid {
        Some(gid) => (format!("{user}:{gid}"), source),
        None => (user, source),
    }))
}

/// The name whose `/etc/group` memberships become supplemental groups:
/// the requested user (a uid is looked up in `/etc/passwd`), else the
/// image's user without its group, else root.
fn member_lookup_name(
    db: &UserDb,
    sc: Option<&LinuxContainerSecurityContext>,
    image_user: &str,
) -> String {
    let requested = match sc {
        Some(s) if !s.run_as_username.is_empty() => s.run_as_username.clone(),
        Some(s) if s.run_as_user.is_some() => s
            .run_as_user
            .map(|v| v.value.to_string())
            .unwrap_or_default(),
        _ if !image_user.is_empty() => image_user.split(':').next().unwrap_or_default().to_string(),
        _ => "0".to_string(),
    };
    match requested.parse::<u32>() {
        Ok(uid) => db
            .user_by_uid(uid)
            .map(|u| u.name.clone())
            .unwrap_or_default(),
        Err(_) => requested,
    }
}

/// `uid`, `name`, `uid:gid`, `name:group`, ... → (uid, gid).
fn resolve_user_string(
    db: &UserDb,
    userstr: &str,
    source: UserSource,
) -> Result<(u32, u32), SpecError> {
    let invalid = |message: String| SpecError::invalid(source.field(), message);
    let parts: Vec<&str> = userstr.split(':').collect();
    match parts.as_slice() {
        [user] => match parse_id(user) {
            Some(Ok(uid)) => Ok((uid, db.user_by_uid(uid).map(|u| u.gid).unwrap_or(0))),
            Some(Err(())) => Err(invalid(format!("uid {user:?} is out of range"))),
            None => db
                .user_by_name(user)
                .map(|u| (u.uid, u.gid))
                .ok_or_else(|| invalid(not_found_message("user", user, db.passwd.is_some()))),
        },
        [user, group] => {
            let uid = match parse_id(user) {
                Some(Ok(uid)) => uid,
                Some(Err(())) => return Err(invalid(format!("uid {user:?} is out of range"))),
                None => {
                    db.user_by_name(user)
                        .ok_or_else(|| {
                            invalid(not_found_message("user", user, db.passwd.is_some()))
                        })?
                        .uid
                }
            };
            let gid = match parse_id(group) {
                Some(Ok(gid)) => gid,
                Some(Err(())) => return Err(invalid(format!("gid {group:?} is out of range"))),
                None => {
                    db.group_by_name(group)
                        .ok_or_else(|| {
                            invalid(not_found_message("group", group, db.group.is_some()))
                        })?
                        .gid
                }
            };
            Ok((uid, gid))
        }
        _ => Err(invalid(format!("invalid user {userstr:?}"))),
    }
}

/// `Some(Ok(id))` for a number in runc's range (0..=i32::MAX), `Some(Err)`
/// for a number outside it, `None` for a name.
fn parse_id(s: &str) -> Option<Result<u32, ()>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    Some(match s.parse::<i64>() {
        Ok(v) if (0..=i64::from(i32::MAX)).contains(&v) => Ok(v as u32),
        _ => Err(()),
    })
}

fn not_found_message(kind: &str, name: &str, file_exists: bool) -> String {
    let file = if kind == "user" {
        "/etc/passwd"
    } else {
        "/etc/group"
    };
    if file_exists {
        format!("{kind} {name:?} not found in the container's {file}")
    } else {
        format!("{kind} {name:?} cannot be resolved: the container has no {file}")
    }
}

/// A file of the container, or `None` when the image does not have it.
fn read_in_root(rootfs: &Path, path: &str) -> Result<Option<String>, SpecError> {
    let host = match resolve_in_root(rootfs, Path::new(path)) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SpecError::io("resolve", rootfs.join(path), e)),
    };
    match fs::read(&host) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SpecError::io("read", host, e)),
    }
}

/// Lines of a colon-separated database, without comments and blanks.
fn records(content: &str) -> impl Iterator<Item = Vec<&str>> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

fn parse_passwd(content: &str) -> Vec<PasswdEntry> {
    records(content)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(content: &str) -> Vec<GroupEntry> {
    records(content)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::Int64Value;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # a comment\n\
                          daemon:x:1:1::/:/sbin/nologin\n\
                          app:x:1000:1000::/home/app:/bin/sh\n\
                          broken line\n\
                          nobody:x:65534:65534::/:/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\n\
                         wheel:x:10:root,app\n\
                         app:x:1000:app\n\
                         audio:x:29:app\n\
                         video:x:44:daemon\n\
                         staff:x:50:\n";

    fn rootfs(passwd: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        if let Some(p) = passwd {
            fs::write(dir.path().join("etc/passwd"), p).unwrap();
        }
        if let Some(g) = group {
            fs::write(dir.path().join("etc/group"), g).unwrap();
        }
        dir
    }

    fn sc() -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext::default()
    }

    fn ids(user: &User) -> (u32, u32, Vec<u32>) {
        (
            user.uid(),
            user.gid(),
            user.additional_gids().clone().unwrap_or_default(),
        )
    }

    #[test]
    fn user_resolution_table() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        let by_uid = |uid| LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: uid }),
            ..sc()
        };
        type Ids = (u32, u32, Vec<u32>);
        let cases: Vec<(&str, Option<LinuxContainerSecurityContext>, &str, Ids)> = vec![
            (
                "nothing: root with root's groups",
                None,
                "",
                (0, 0, vec![0, 10]),
            ),
            (
                "image uid listed",
                None,
                "1000",
                (1000, 1000, vec![10, 29, 1000]),
            ),
            (
                "image uid unlisted: gid 0",
                None,
                "4242",
                (4242, 0, vec![0]),
            ),
            ("image name", None, "daemon", (1, 1, vec![1, 44])),
            (
                "image uid:gid taken as is",
                None,
                "1000:50",
                (1000, 50, vec![10, 29, 50]),
            ),
            (
                "image name:group",
                None,
                "app:staff",
                (1000, 50, vec![10, 29, 50]),
            ),
            ("image uid:group", None, "7:video", (7, 44, vec![44])),
            (
                "run_as_user beats image",
                Some(by_uid(1000)),
                "daemon",
                (1000, 1000, vec![10, 29, 1000]),
            ),
            (
                "run_as_username beats run_as_user",
                Some(LinuxContainerSecurityContext {
                    run_as_username: "daemon".into(),
                    ..by_uid(1000)
                }),
                "",
                (1, 1, vec![1, 44]),
            ),
            (
                "run_as_group overrides primary group",
                Some(LinuxContainerSecurityContext {
                    run_as_group: Some(Int64Value { value: 3000 }),
                    ..by_uid(1000)
                }),
                "",
                (1000, 3000, vec![10, 29, 3000]),
            ),
            (
                "supplemental groups merged",
                Some(LinuxContainerSecurityContext {
                    supplemental_groups: vec![5000, 29],
                    ..by_uid(1000)
                }),
                "",
                (1000, 1000, vec![10, 29, 1000, 5000]),
            ),
            (
                "strict policy ignores /etc/group",
                Some(LinuxContainerSecurityContext {
                    supplemental_groups: vec![5000],
                    supplemental_groups_policy: SupplementalGroupsPolicy::Strict as i32,
                    ..by_uid(1000)
                }),
                "",
                (1000, 1000, vec![1000, 5000]),
            ),
        ];
        for (name, sc, image_user, want) in cases {
            let user = resolve_user(sc.as_ref(), image_user, root.path())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ids(&user), want, "{name}");
        }
    }

    #[test]
    fn errors_name_the_field_and_the_user() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        let cases: Vec<(LinuxContainerSecurityContext, &str, &str, &str)> = vec![
            (
                LinuxContainerSecurityContext {
                    run_as_username: "ghost".into(),
                    ..sc()
                },
                "",
                "linux.security_context.run_as_username",
                "\"ghost\"",
            ),
            (sc(), "ghost", "image.config.User", "\"ghost\""),
            (sc(), "app:nogroup", "image.config.User", "\"nogroup\""),
            (sc(), "a:b:c", "image.config.User", "a:b:c"),
            (
                LinuxContainerSecurityContext {
                    run_as_group: Some(Int64Value { value: 5 }),
                    ..sc()
                },
                "",
                "linux.security_context.run_as_group",
                "run_as_user",
            ),
            (
                LinuxContainerSecurityContext {
                    run_as_user: Some(Int64Value { value: -1 }),
                    ..sc()
                },
                "",
                "linux.security_context.run_as_user",
                "out of range",
            ),
            (
                LinuxContainerSecurityContext {
                    supplemental_groups: vec![1, -4],
                    ..sc()
                },
                "",
                "linux.security_context.supplemental_groups[1]",
                "-4",
            ),
            (
                LinuxContainerSecurityContext {
                    supplemental_groups_policy: 7,
                    ..sc()
                },
                "",
                "linux.security_context.supplemental_groups_policy",
                "7",
            ),
        ];
        for (sc, image_user, field, needle) in cases {
            let err = resolve_user(Some(&sc), image_user, root.path()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn without_passwd_names_fail_and_uids_pass() {
        let root = rootfs(None, None);
        let err = resolve_user(None, "app", root.path()).unwrap_err();
        assert!(err.to_string().contains("no /etc/passwd"), "{err}");
        let user = resolve_user(None, "1234", root.path()).unwrap();
        assert_eq!(ids(&user), (1234, 0, vec![0]));
    }

    #[test]
    fn passwd_is_read_inside_the_rootfs_only() {
        let root = rootfs(None, None);
        // A link to the host's /etc/passwd must resolve inside the rootfs.
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(None, "root", root.path()).is_err());
    }

    #[test]
    fn parsers_skip_malformed_lines() {
        assert_eq!(parse_passwd(PASSWD).len(), 4);
        let groups = parse_group("g:x:5:a, b ,\nbad\n");
        assert_eq!(groups[0].members, vec!["a", "b"]);
        assert_eq!(groups.len(), 1);
    }
}
