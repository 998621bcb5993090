//! The snapshotter suite: every case runs against both backends (overlay and copy), as root, with real
//! mounts in temporary directories on the real filesystem under cargo's target dir.
//!
//! `both_backends!(case)` turns `fn case(backend: Backend)` into `case::overlay` and `case::copy` tests.

/// Generates one test per backend for each listed `fn(Backend)`.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn overlay() {
                    super::$case(kiln_snapshotter::Backend::Overlay);
                }

                #[test]
                fn copy() {
                    super::$case(kiln_snapshotter::Backend::Copy);
                }
            }
        )*
    };
}

mod chain;
mod common;
mod concurrency;
mod crash;
mod layers;
mod lifecycle;
