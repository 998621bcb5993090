//! The build context on real directories: the ignore file, the walk, source selection, checksums
//! and the stat cache.

mod checksum;
mod ignore;
mod select;
mod statcache;

use std::path::{Path, PathBuf};

use kiln_builder::content::Digest;
use kiln_builder::context::{Context, IgnoreSource, Source};

/// A context directory built file by file.
pub(crate) struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    pub(crate) fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating its parents.
    pub(crate) fn file(&self, rel: &str, contents: &str) -> &Tree {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    pub(crate) fn dir(&self, rel: &str) -> &Tree {
        std::fs::create_dir_all(self.join(rel)).unwrap();
        self
    }

    pub(crate) fn symlink(&self, rel: &str, target: &str) -> &Tree {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
        self
    }

    /// The context with `.dockerignore` at its root, if any.
    pub(crate) fn context(&self) -> Context {
        Context::builder(self.path())
            .ignore(IgnoreSource::ContextRoot)
            .open()
            .unwrap()
    }

    /// The checksum of `source` in a freshly walked context.
    pub(crate) fn checksum(&self, source: &str) -> Digest {
        let context = self.context();
        let selection = context.select(&Source::new(source)).unwrap();
        context.checksum(&selection).unwrap()
    }
}

/// The entries' paths, as `kiln debug context` prints them.
pub(crate) fn paths(context: &Context) -> Vec<String> {
    context
        .entries()
        .iter()
        .map(|e| e.path().to_str().unwrap().to_owned())
        .collect()
}
