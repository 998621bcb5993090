//! A layer never writes outside its target: one test per way out, each checking the error names the
//! entry and that nothing beside the root changed.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use kiln_builder::layer::{self, ApplyError, ApplyOptions, ParentSymlinks, Refusal};

use super::RawTar;

/// A root to apply into, and beside it an `outside` directory holding `secret`, which must survive.
struct Scene {
    _base: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "keep").unwrap();
        Scene {
            _base: base,
            root,
            outside,
        }
    }

    fn apply(&self, tar: &[u8]) -> Result<layer::Applied, ApplyError> {
        layer::apply(tar, &self.root, &ApplyOptions::new())
    }

    fn apply_following(&self, tar: &[u8]) -> Result<layer::Applied, ApplyError> {
        let options = ApplyOptions::new().parent_symlinks(ParentSymlinks::FollowInRoot);
        layer::apply(tar, &self.root, &options)
    }

    /// The directory beside the root is exactly as it was made, and nothing else appeared beside it.
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"]);
        assert_eq!(fs::read_to_string(self.outside.join("secret")).unwrap(), "keep");
        let mut beside: Vec<_> = fs::read_dir(self.root.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        beside.sort();
        assert_eq!(beside, ["outside", "root"]);
    }
}

fn refused(result: Result<layer::Applied, ApplyError>) -> (String, Refusal) {
    match result {
        Err(ApplyError::Refused { entry, reason }) => (entry, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn refused_link(result: Result<layer::Applied, ApplyError>) -> (String, String, Refusal) {
    match result {
        Err(ApplyError::RefusedLink {
            entry,
            target,
            reason,
        }) => (entry, target, reason),
        other => panic!("expected a refused hardlink, got {other:?}"),
    }
}

fn abs(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

#[test]
fn dot_dot_entry_is_refused() {
    let scene = Scene::new();
    let err = scene.apply(&RawTar::new().file("../x", b"escaped").finish());
    assert_eq!(refused(err), ("../x".to_owned(), Refusal::ParentComponent));
    scene.assert_outside_untouched();
}

#[test]
fn absolute_entry_climbing_out_is_refused() {
    let scene = Scene::new();
    let result = scene.apply(&RawTar::new().file("/abs/../../x", b"escaped").finish());
    let message = result.as_ref().unwrap_err().to_string();
    assert_eq!(
        refused(result),
        ("/abs/../../x".to_owned(), Refusal::ParentComponent)
    );
    assert!(message.contains("\"/abs/../../x\""), "{message}");
    scene.assert_outside_untouched();
}

#[test]
fn absolute_entry_lands_inside_the_root() {
    let scene = Scene::new();
    scene
        .apply(&RawTar::new().dir("/etc").file("/etc/motd", b"hi").finish())
        .unwrap();
    assert_eq!(fs::read_to_string(scene.root.join("etc/motd")).unwrap(), "hi");
    scene.assert_outside_untouched();
}

#[test]
fn entry_through_a_symlink_from_the_same_layer_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new()
        .symlink("a", &abs(&scene.outside))
        .file("a/secret", b"pwned")
        .finish();
    let (entry, reason) = refused(scene.apply(&tar));
    assert_eq!(entry, "a/secret");
    assert_eq!(
        reason,
        Refusal::ThroughSymlink {
            component: "a".into()
        }
    );
    scene.assert_outside_untouched();
}

#[test]
fn entry_through_an_etc_symlink_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new()
        .symlink("a", "/etc")
        .file("a/kiln-must-not-exist", b"pwned")
        .finish();
    let (entry, reason) = refused(scene.apply(&tar));
    assert_eq!(entry, "a/kiln-must-not-exist");
    assert_eq!(
        reason,
        Refusal::ThroughSymlink {
            component: "a".into()
        }
    );
    assert!(!Path::new("/etc/kiln-must-not-exist").exists());
}

#[test]
fn following_symlinks_stays_in_the_root() {
    let scene = Scene::new();
    // The symlink's target string is the host path of `outside`; followed in the root it means the
    // root's own copy of that path, which the layer makes first.
    let tar = RawTar::new()
        .dir(&abs(&scene.outside))
        .symlink("a", &abs(&scene.outside))
        .file("a/secret", b"inside")
        .symlink("up", "..")
        .file("up/up/x", b"clamped")
        .finish();
    scene.apply_following(&tar).unwrap();
    let landed = scene
        .root
        .join(scene.outside.strip_prefix("/").unwrap())
        .join("secret");
    assert_eq!(fs::read_to_string(landed).unwrap(), "inside");
    assert_eq!(fs::read_to_string(scene.root.join("x")).unwrap(), "clamped");
    scene.assert_outside_untouched();

    let tar = RawTar::new()
        .symlink("dangling", "/nowhere")
        .file("dangling/f", b"")
        .finish();
    let (entry, reason) = refused(scene.apply_following(&tar));
    assert_eq!(
        (entry.as_str(), reason),
        (
            "dangling/f",
            Refusal::DanglingSymlink {
                component: "dangling".into()
            }
        )
    );
    scene.assert_outside_untouched();
}

#[test]
fn symlink_to_dot_dot_is_not_followed() {
    let scene = Scene::new();
    let tar = RawTar::new()
        .symlink("b", "..")
        .file("b/outside/secret", b"pwned")
        .finish();
    let (entry, reason) = refused(scene.apply(&tar));
    assert_eq!(entry, "b/outside/secret");
    assert_eq!(
        reason,
        Refusal::ThroughSymlink {
            component: "b".into()
        }
    );
    scene.assert_outside_untouched();
}

#[test]
fn hardlink_out_of_the_root_is_refused() {
    let scene = Scene::new();
    let (entry, target, reason) =
        refused_link(scene.apply(&RawTar::new().hardlink("h", "../outside/secret").finish()));
    assert_eq!(
        (entry.as_str(), target.as_str(), reason),
        ("h", "../outside/secret", Refusal::ParentComponent)
    );

    let tar = RawTar::new()
        .symlink("s", &abs(&scene.outside))
        .hardlink("h", "s/secret")
        .finish();
    let (entry, _, reason) = refused_link(scene.apply(&tar));
    assert_eq!(
        (entry.as_str(), reason),
        (
            "h",
            Refusal::ThroughSymlink {
                component: "s".into()
            }
        )
    );

    // An absolute target means the root's /etc/passwd, which this root does not have.
    let (_, _, reason) = refused_link(scene.apply(&RawTar::new().hardlink("p", "/etc/passwd").finish()));
    assert_eq!(reason, Refusal::Missing);
    assert!(!scene.root.join("p").exists());
    scene.assert_outside_untouched();
}

#[test]
fn hardlink_inside_the_root_links() {
    let scene = Scene::new();
    scene
        .apply(&RawTar::new().file("a", b"data").hardlink("b", "/a").finish())
        .unwrap();
    let (a, b) = (
        fs::metadata(scene.root.join("a")).unwrap(),
        fs::metadata(scene.root.join("b")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
}

#[test]
fn symlink_already_in_the_target_is_not_followed() {
    let scene = Scene::new();
    symlink(&scene.outside, scene.root.join("evil")).unwrap();
    let (entry, reason) = refused(scene.apply(&RawTar::new().file("evil/secret", b"pwned").finish()));
    assert_eq!(
        (entry.as_str(), reason),
        (
            "evil/secret",
            Refusal::ThroughSymlink {
                component: "evil".into()
            }
        )
    );

    let (_, reason) = refused(scene.apply(&RawTar::new().file("evil/.wh.secret", b"").finish()));
    assert_eq!(
        reason,
        Refusal::ThroughSymlink {
            component: "evil".into()
        }
    );
    let (_, reason) = refused(scene.apply(&RawTar::new().file("evil/.wh..wh..opq", b"").finish()));
    assert_eq!(
        reason,
        Refusal::ThroughSymlink {
            component: "evil".into()
        }
    );
    scene.assert_outside_untouched();

    // The symlink itself is replaced, never written through.
    scene
        .apply(&RawTar::new().file("evil", b"now a file").finish())
        .unwrap();
    assert_eq!(fs::read_to_string(scene.root.join("evil")).unwrap(), "now a file");
    scene.assert_outside_untouched();
}

#[test]
fn whiteout_of_dot_dot_is_refused() {
    let scene = Scene::new();
    fs::create_dir(scene.root.join("sub")).unwrap();
    for name in [".wh...", "sub/.wh...", "sub/.wh..", ".wh."] {
        let (entry, reason) = refused(scene.apply(&RawTar::new().file(name, b"").finish()));
        assert_eq!(entry, name);
        assert!(
            matches!(reason, Refusal::BadWhiteout { .. }),
            "{name}: {reason:?}"
        );
    }
    assert!(scene.root.join("sub").is_dir());
    scene.assert_outside_untouched();
}
