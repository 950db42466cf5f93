//! Pylon's data plane: listeners → route table → filters → backends.
//!
//! The contract with the controller (config schema, validation, wire protocol) is the
//! `pylon-config` crate, which the controller builds too without this crate's proxy stack.
// `deny`, not `forbid`: `memory` makes a foreign call (glibc's `malloc_trim`), `lazy_tcp` reads
// a socket into uninitialised memory, and `alloc` is the global allocator; each says why.
#![deny(unsafe_code)]

pub mod accesslog;
pub mod admin;
pub mod alloc;
pub mod backend;
pub mod body;
pub mod client;
pub mod client_hello;
pub mod deadline;
pub mod errors;
pub mod fields;
pub mod filters;
pub mod h1;
pub mod h1_pool;
pub mod head_budget;
pub mod hop_by_hop;
pub mod hyper_serve;
pub mod idle;
pub mod l4;
pub mod lazy_tcp;
pub mod limits;
pub mod matching;
pub mod memory;
pub mod metrics;
pub mod native;
pub mod outlier;
pub mod proxy;
pub mod random;
pub mod rewind;
pub mod san;
pub mod server;
pub mod state;
pub mod table;
pub mod target;
pub mod tcp_pool;
pub mod tls;
pub mod udp;
pub mod worker;
