//! The solver: from a Dockerfile and a build context to an image.

mod cache;
mod cachekey;
mod gofmt;
pub mod image;
mod lower;
mod op;
mod path;
pub mod progress;
mod request;
mod state;

pub use cache::LayerDescriptor;
pub use cachekey::CacheKey;
pub use progress::{Event, LogStream, NoProgress, Recorder, Reporter, VertexId};
pub use request::{BuildRequest, BuildRequestBuilder, Network, Output};
mod error;
mod scheduler;

pub use error::BuildError;
