//! `COPY` and `ADD`: sources, destination and flags expanded and checked as BuildKit's
//! `dispatchCopy` checks them.

use std::fmt::Write as _;

use kiln_frontend::instruction::{Add, Chmod, Copy, InlineFile, Sources};
use kiln_frontend::shell::Lexer;

use super::{LowerError, Lowered, Scope, display_name, expand};
use crate::solver::op::{CopyOp, CopySource, Op};
use crate::solver::path;
use crate::solver::state::StageState;

/// The parts COPY and ADD share, expanded.
struct Common {
    sources: Vec<String>,
    inline: Vec<(String, String)>,
    dest: String,
    written_dest: String,
    chown: Option<String>,
    chmod: Option<(String, Chmod)>,
}

/// `COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude] src... dest`. History:
/// `COPY [--parents] [--chown=u] [--chmod=m] src... dest # buildkit`.
pub(super) fn copy(
    state: &mut StageState,
    copy: &Copy,
    original: &str,
    scope: &Scope<'_>,
) -> Result<Lowered, LowerError> {
    let common = expand_common(
        state,
        &copy.sources,
        &copy.dest,
        copy.chown.as_ref(),
        copy.chmod.as_ref(),
        scope,
    )?;
    for source in &common.sources {
        match classify(source) {
            Remote::Http => return Err(LowerError::UrlInCopy),
            Remote::Git => return Err(LowerError::GitInCopy),
            Remote::Local => {}
        }
    }
    let source = match &copy.from {
        None => CopySource::Context,
        Some(from) => CopySource::Input((scope.resolve)(from)),
    };
    let name = display_name(original, scope.lexer, state);
    commit(state, "COPY", copy.parents, &common);
    Ok(Lowered {
        name: Some(name),
        op: Some(Op::Copy(CopyOp {
            add: false,
            source,
            sources: common.sources,
            inline: common.inline,
            dest: common.dest,
            chown: common.chown,
            chmod: common.chmod.map(|(_, chmod)| chmod),
            link: copy.link,
            parents: copy.parents,
            excludes: copy.excludes.clone(),
            checksum: None,
            unpack: false,
            keep_git_dir: false,
        })),
    })
}

/// `ADD [--chown] [--chmod] [--link] [--checksum] [--unpack] [--keep-git-dir] [--exclude] src... dest`:
/// local archives are extracted unless `--unpack=false`. History as COPY's, with `ADD`.
pub(super) fn add(
    state: &mut StageState,
    add: &Add,
    original: &str,
    scope: &Scope<'_>,
) -> Result<Lowered, LowerError> {
    let common = expand_common(
        state,
        &add.sources,
        &add.dest,
        add.chown.as_ref(),
        add.chmod.as_ref(),
        scope,
    )?;
    let checksum = add
        .checksum
        .as_ref()
        .map(|c| expand(c, state, scope))
        .transpose()?;
    if checksum.is_some() {
        if common.sources.len() != 1 {
            return Err(LowerError::ChecksumMultipleSources);
        }
        if classify(&common.sources[0]) == Remote::Local {
            return Err(LowerError::ChecksumNeedsRemote);
        }
    }
    let name = display_name(original, scope.lexer, state);
    commit(state, "ADD", false, &common);
    Ok(Lowered {
        name: Some(name),
        op: Some(Op::Copy(CopyOp {
            add: true,
            source: CopySource::Context,
            sources: common.sources,
            inline: common.inline,
            dest: common.dest,
            chown: common.chown,
            chmod: common.chmod.map(|(_, chmod)| chmod),
            link: add.link,
            parents: false,
            excludes: add.excludes.clone(),
            checksum,
            unpack: add.unpack.unwrap_or(true),
            keep_git_dir: add.keep_git_dir.unwrap_or(false),
        })),
    })
}

fn expand_common(
    state: &StageState,
    sources: &Sources,
    dest: &str,
    chown: Option<&String>,
    chmod: Option<&String>,
    scope: &Scope<'_>,
) -> Result<Common, LowerError> {
    let expanded_sources = sources
        .paths
        .iter()
        .map(|s| expand(s, state, scope))
        .collect::<Result<Vec<_>, _>>()?;
    let inline = sources
        .inline
        .iter()
        .map(|file| inline_content(file, state))
        .collect::<Result<Vec<_>, _>>()?;
    let written_dest = expand(dest, state, scope)?;
    let chown = chown.map(|c| expand(c, state, scope)).transpose()?;
    let chmod = match chmod {
        None => None,
        Some(raw) => {
            let value = expand(raw, state, scope)?;
            let parsed = Chmod::parse(&value).map_err(LowerError::Chmod)?;
            Some((value, parsed))
        }
    };
    Ok(Common {
        sources: expanded_sources,
        inline,
        dest: path::destination(state.workdir(), &written_dest),
        written_dest,
        chown,
        chmod,
    })
}

/// A heredoc file's content: expanded (quotes kept as text, always with the `\` escape) unless its
/// delimiter was quoted.
fn inline_content(file: &InlineFile, state: &StageState) -> Result<(String, String), LowerError> {
    let content = if file.expand {
        Lexer::new('\\')
            .skip_process_quotes(true)
            .process_word(&file.content, &state.env)
            .map_err(LowerError::Expand)?
    } else {
        file.content.clone()
    };
    Ok((file.name.clone(), content))
}

fn commit(state: &mut StageState, keyword: &str, parents: bool, common: &Common) {
    let mut message = keyword.to_owned();
    if parents {
        message.push_str(" --parents");
    }
    if let Some(chown) = &common.chown {
        let _ = write!(message, " --chown={chown}");
    }
    if let Some((chmod, _)) = &common.chmod {
        let _ = write!(message, " --chmod={chmod}");
    }
    for source in &common.sources {
        message.push(' ');
        message.push_str(source);
    }
    for (name, _) in &common.inline {
        let _ = write!(message, " <<{name}");
    }
    let _ = write!(message, " {} # buildkit", common.written_dest);
    state.commit(message, true);
}

/// What kind of source a COPY/ADD word is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remote {
    /// A path or glob in the context (or the `--from` stage).
    Local,
    /// An `http://` or `https://` URL.
    Http,
    /// A git repository (`git@host:repo`, `git://`, `ssh://`, or an HTTP URL ending in `.git`).
    Git,
}

/// Tells URLs and git references from local paths, as BuildKit's `isHTTPSource`/`ParseGitRef` do for
/// the common spellings.
pub(crate) fn classify(source: &str) -> Remote {
    let is_http = source.starts_with("http://") || source.starts_with("https://");
    let url_path = source.split(['#', '?']).next().unwrap_or(source);
    if source.starts_with("git://")
        || source.starts_with("ssh://")
        || (source.starts_with("git@") && source.contains(':'))
        || (is_http && url_path.to_ascii_lowercase().ends_with(".git"))
    {
        Remote::Git
    } else if is_http {
        Remote::Http
    } else {
        Remote::Local
    }
}
