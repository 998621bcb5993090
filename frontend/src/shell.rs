//! (shell: filled in by its issue.)
