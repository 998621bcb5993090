//! (instruction: filled in by its issue.)
