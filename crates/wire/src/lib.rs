//! The AWS wire protocols as Tumbler speaks them: awsJson1_1 (Secrets
//! Manager, later KMS) and awsQuery (STS, later IAM). Shapes, model
//! constraints with AWS's validation wording, and error encodings.
//!
//! Pure: no I/O, no knowledge of HTTP servers or storage.

mod error;
mod json;
pub mod kms;
pub mod query;
pub mod secretsmanager;
mod validate;

pub use error::AwsError;
pub use json::{decode, encode, write_str as write_json_str};
pub use validate::Validator;
