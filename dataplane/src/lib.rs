//! Pylon's data plane: listeners → route table → filters → backends.
//!
//! The [`config`] module is the contract with the controller: the data plane owns its schema.
#![forbid(unsafe_code)]

pub mod config;
pub mod tls;
