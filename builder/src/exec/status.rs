//! How a step ended, and BuildKit's wording when it did not succeed.

use std::fmt;

/// How the step's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal (this number) killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// Whether the process exited with code 0.
    pub fn success(self) -> bool {
        self == Self::Exited(0)
    }

    /// The number a shell (and BuildKit, through runc) reports: the exit code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(signal) => 128 + signal,
        }
    }

    /// `Ok` on success, otherwise the error BuildKit reports for a failed step running `args`.
    pub fn check(self, args: &[String]) -> Result<(), ProcessFailed> {
        if self.success() {
            Ok(())
        } else {
            Err(ProcessFailed {
                args: args.to_vec(),
                status: self,
            })
        }
    }

    /// Decodes a `waitpid` status word.
    pub(super) fn from_wait_status(raw: i32) -> Self {
        if libc::WIFSIGNALED(raw) {
            Self::Signaled(libc::WTERMSIG(raw))
        } else {
            Self::Exited(libc::WEXITSTATUS(raw))
        }
    }
}

/// BuildKit's wording: `exit code: 3` (a signal shows as 128 + its number, as runc reports it).
impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit code: {}", self.code())
    }
}

/// A step whose process did not exit 0, worded as BuildKit words it:
/// `process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "process {} did not complete successfully: {status}",
    kiln_frontend::syntax::go_quote(&.args.join(" "))
)]
pub struct ProcessFailed {
    /// The argv of the step.
    pub args: Vec<String>,
    /// How it ended.
    pub status: ExitStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exec_failed_step_message_matches_buildkit() {
        let err = ExitStatus::Exited(3)
            .check(&args(&["/bin/sh", "-c", "exit 3"]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"process "/bin/sh -c exit 3" did not complete successfully: exit code: 3"#
        );
    }

    #[test]
    fn exec_signal_reports_128_plus_signal() {
        let err = ExitStatus::Signaled(9).check(&args(&["sleep", "9"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"process "sleep 9" did not complete successfully: exit code: 137"#
        );
        assert!(ExitStatus::Exited(0).check(&[]).is_ok());
    }

    #[test]
    fn exec_command_is_quoted_like_go() {
        let err = ExitStatus::Exited(1)
            .check(&args(&["/bin/sh", "-c", "echo \"a\\b\"\n\tx\u{1b}é"]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"process "/bin/sh -c echo \"a\\b\"\n\tx\x1bé" did not complete successfully: exit code: 1"#
        );
    }

    #[test]
    fn exec_wait_status_decodes() {
        assert_eq!(ExitStatus::from_wait_status(3 << 8), ExitStatus::Exited(3));
        assert_eq!(ExitStatus::from_wait_status(9), ExitStatus::Signaled(9));
    }
}
