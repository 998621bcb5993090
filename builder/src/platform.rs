//! The machine kiln runs on, as a [`Platform`] (the frontend is pure and never asks).

pub use kiln_frontend::graph::Platform;

/// The platform of the running host: `linux` and the CPU architecture kiln was built for, normalized
/// the way containerd names it (`x86_64` is `amd64`, `aarch64` is `arm64`).
///
/// ```
/// let host = kiln_builder::platform::host();
/// assert_eq!(host.os(), "linux");
/// ```
pub fn host() -> Platform {
    Platform::new(std::env::consts::OS, std::env::consts::ARCH, None)
}
