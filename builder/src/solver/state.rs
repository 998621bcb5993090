//! A stage's state while its instructions are lowered: the image config being built (with its
//! history) and the environment the next instruction sees.
//!
//! BuildKit keeps two environments apart, and so does kiln: the image config's `Env` holds only what
//! `ENV` set (and the base image's), while the *stage environment* also holds the ARGs in scope. Words
//! expand against the stage environment and `RUN` processes see it, but ARG values never reach the
//! image config. The working directory and user live in the config alone (`WorkingDir`, `User`).

use kiln_frontend::graph::Platform;

use super::image::{DEFAULT_PATH, HISTORY_COMMENT, History, ImageConfig};

/// The state of one stage between two instructions.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    /// The image config as it stands, history included.
    pub(crate) image: ImageConfig,
    /// The stage environment: the config's `Env` plus the ARGs in scope, one entry per name.
    pub(crate) env: Vec<(String, String)>,
    /// The ARGs declared in this stage and the stages it builds on, in order, with their values
    /// (BuildKit's `buildArgs`): `RUN` history names them.
    pub(crate) args: Vec<(String, Option<String>)>,
    /// Whether `CMD` was set in this stage: `ENTRYPOINT` then keeps it instead of clearing it.
    pub(crate) cmd_set: bool,
}

/// Where a stage starts, with the ONBUILD triggers it inherits.
#[derive(Debug)]
pub(crate) struct Start {
    /// The state after FROM.
    pub(crate) state: StageState,
    /// ONBUILD expressions of the base, to run before the stage's own instructions.
    pub(crate) triggers: Vec<String>,
}

impl StageState {
    /// `FROM scratch`: BuildKit's empty image for `platform`.
    pub(crate) fn scratch(platform: &Platform) -> Start {
        let image = ImageConfig::empty(platform.os(), platform.architecture(), platform.variant());
        StageState::from_image(image)
    }

    /// `FROM image`: the base image's config, its creation time dropped (the build sets its own)
    /// and its ONBUILD triggers taken out to run now.
    pub(crate) fn from_image(mut image: ImageConfig) -> Start {
        image.created = None;
        let triggers = std::mem::take(&mut image.config.on_build);
        let mut state = StageState {
            image,
            env: Vec::new(),
            args: Vec::new(),
            cmd_set: false,
        };
        state.init_env();
        Start { state, triggers }
    }

    /// `FROM <earlier stage>`: that stage's final state, environment and ARGs included; its ONBUILD
    /// instructions become this stage's triggers.
    pub(crate) fn from_stage(base: &StageState) -> Start {
        let mut state = base.clone();
        state.cmd_set = false;
        let triggers = std::mem::take(&mut state.image.config.on_build);
        state.init_env();
        Start { state, triggers }
    }

    /// BuildKit's start of dispatch: `PATH` is always set (appended to the config when missing), and
    /// the config's `Env` enters the stage environment.
    fn init_env(&mut self) {
        if self.image.env_value("PATH").is_none() {
            self.image.config.env.push(format!("PATH={DEFAULT_PATH}"));
        }
        let entries: Vec<(String, String)> = self
            .image
            .config
            .env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        for (k, v) in entries {
            self.set_env(&k, &v);
        }
    }

    /// Sets `key` in the stage environment (not the config), replacing an earlier value in place.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.env.push((key.to_owned(), value.to_owned())),
        }
    }

    /// The stage environment's value of `key`.
    pub(crate) fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The working directory (`/` when the config leaves it empty).
    pub(crate) fn workdir(&self) -> &str {
        match self.image.config.working_dir.as_str() {
            "" => "/",
            dir => dir,
        }
    }

    /// Appends a history entry, as BuildKit's `commitToHistory`.
    pub(crate) fn commit(&mut self, created_by: String, layer: bool) {
        self.image.history.push(History {
            created: None,
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.to_owned()),
            empty_layer: !layer,
        });
    }
}
