//! Pylon's data plane: listeners → route table → filters → backends.
//!
//! The [`config`] module is the contract with the controller: the data plane owns its schema.
// `deny`, not `forbid`: `memory` makes a foreign call (glibc's `malloc_trim`), `lazy_tcp` reads
// a socket into uninitialised memory, and `alloc` is the global allocator; each says why.
#![deny(unsafe_code)]

pub mod accesslog;
pub mod admin;
pub mod alloc;
pub mod backend;
pub mod client;
pub mod config;
pub mod deadline;
pub mod errors;
pub mod fields;
pub mod filters;
pub mod h1;
pub mod h1_pool;
pub mod head_budget;
pub mod idle;
pub mod lazy_tcp;
pub mod matching;
pub mod memory;
pub mod metrics;
pub mod outlier;
pub mod proxy;
pub mod san;
pub mod server;
pub mod state;
pub mod table;
pub mod target;
pub mod tls;
