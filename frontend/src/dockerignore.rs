//! (dockerignore: filled in by its issue.)
