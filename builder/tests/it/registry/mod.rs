//! The registry client against a real registry: Debian's `docker-registry`, started per test on
//! a free loopback port (see `support`), with skopeo as the independent second implementation.

mod auth;
mod credentials;
mod documents;
mod pull;
mod push;
mod support;
mod token_server;
