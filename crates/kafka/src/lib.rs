//! Kafka SASL/SCRAM for clusters Tumbler can reach: clusters are registered
//! with an admin secret, secrets are associated with them through MSK's
//! API, and each cluster's SCRAM-SHA-512 users follow the AWSCURRENT value
//! of their secrets (on association, on every new AWSCURRENT, and by a
//! reconciler that repairs drift). A built-in rotator rotates them.

pub mod acl;
mod acl_sync;
pub mod client;
pub mod cluster;
pub mod rotator;
pub mod scram;
pub mod secret;
pub mod service;

pub use rotator::{KAFKA_SCRAM, KafkaScramRotator};
pub use service::{AclReport, KafkaAuthorizer, KafkaCtx, KafkaService, SyncReport};
