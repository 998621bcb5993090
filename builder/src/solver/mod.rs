//! The solver: from a Dockerfile and a build context to an image.

mod gofmt;
pub mod image;
mod lower;
mod op;
mod path;
mod state;
