//! Integration tests: the real server over the network, driven by the Rust
//! AWS SDK. (The aws CLI / boto3 suite is in tests/python.)

mod common;
mod crash;
mod secrets;
mod sts;
