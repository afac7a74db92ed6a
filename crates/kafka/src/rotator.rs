//! The Kafka SCRAM rotator, for secrets associated with registered
//! clusters (`AmazonMSK_...`, `{"username","password"}`):
//!
//! - createSecret: AWSCURRENT with a new password, as AWSPENDING;
//! - setSecret: the pending password's SCRAM-SHA-512 credential is set on
//!   every cluster the secret is associated with (Kafka keeps one
//!   credential per user, so new logins need the new password from here);
//! - testSecret: logs in to each cluster as the user with the pending password;
//! - finishSecret: AWSCURRENT moves to the new version.
//!
//! Connections opened with the old password stay open: Kafka checks a
//! credential only when a connection authenticates. Set
//! `connections.max.reauth.ms` on the brokers' SCRAM listeners so sessions
//! re-authenticate (and a client still holding the old password is
//! disconnected) within that time.

use std::sync::Arc;

use serde_json::{Value, json};
use tumbler_rotation::{Rotator, Step, StepCall, StepError, template};

use crate::secret::ScramSecret;
use crate::service::KafkaService;

pub const KAFKA_SCRAM: &str = "arn:aws:lambda:::function:tumbler-kafka-scram";

pub struct KafkaScramRotator {
    /// None where only the description is wanted (`tumbler rotators list`).
    service: Option<Arc<KafkaService>>,
}

impl KafkaScramRotator {
    pub fn new(service: Option<Arc<KafkaService>>) -> Self {
        KafkaScramRotator { service }
    }

    fn service(&self) -> Result<&KafkaService, StepError> {
        self.service
            .as_deref()
            .ok_or_else(|| StepError("the Kafka service is not running".into()))
    }

    fn value(call: &StepCall<'_>, stage: &str) -> Result<ScramSecret, StepError> {
        let token = (stage == "AWSPENDING").then_some(call.token);
        let text = template::secret_string(call, token, stage)?
            .ok_or_else(|| StepError(format!("the secret has no {stage} value")))?;
        ScramSecret::parse(&text).map_err(|e| StepError(format!("the {stage} secret value: {e}")))
    }

    fn clusters(&self, call: &StepCall<'_>) -> Result<Vec<(String, crate::cluster::Cluster)>, StepError> {
        let clusters = self.service()?.clusters_of(call.secret_arn);
        if clusters.is_empty() {
            return Err(StepError(
                "the secret is not associated with any Kafka cluster registered with Tumbler \
                 (aws kafka batch-associate-scram-secret)"
                    .into(),
            ));
        }
        Ok(clusters)
    }

    fn create(&self, call: &StepCall<'_>) -> Result<(), StepError> {
        let current = template::secret_string(call, None, "AWSCURRENT")?
            .ok_or_else(|| StepError("the secret has no AWSCURRENT value".into()))?;
        ScramSecret::parse(&current).map_err(|e| StepError(format!("the AWSCURRENT secret value: {e}")))?;
        if template::secret_string(call, Some(call.token), "AWSPENDING")?.is_some() {
            return Ok(());
        }
        // Every other field is kept, as AWS's templates keep them.
        let mut value: Value =
            serde_json::from_str(&current).map_err(|_| StepError("the AWSCURRENT value is not JSON".into()))?;
        value["password"] = Value::String(template::random_password(call)?);
        call.call(
            "PutSecretValue",
            json!({
                "SecretId": call.secret_arn,
                "ClientRequestToken": call.token,
                "SecretString": value.to_string(),
                "VersionStages": ["AWSPENDING"],
            }),
        )?;
        Ok(())
    }

    fn set(&self, call: &StepCall<'_>) -> Result<(), StepError> {
        let pending = Self::value(call, "AWSPENDING")?;
        let service = self.service()?;
        for (arn, _) in self.clusters(call)? {
            service
                .set_password(&arn, call.secret_arn, &pending, call.token)
                .map_err(StepError)?;
        }
        Ok(())
    }

    fn test(&self, call: &StepCall<'_>) -> Result<(), StepError> {
        let pending = Self::value(call, "AWSPENDING")?;
        let service = self.service()?;
        for (_, cluster) in self.clusters(call)? {
            service.test_login(&cluster, &pending).map_err(StepError)?;
        }
        Ok(())
    }
}

impl Rotator for KafkaScramRotator {
    fn arn(&self) -> &str {
        KAFKA_SCRAM
    }

    fn description(&self) -> &str {
        "Kafka SCRAM-SHA-512 user of an associated AmazonMSK_ secret: new password set on every cluster, tested by \
         logging in (open connections stay until they re-authenticate)"
    }

    fn step(&self, step: Step, call: &StepCall<'_>) -> Result<(), StepError> {
        if template::check_token(call)? {
            return Ok(());
        }
        match step {
            Step::CreateSecret => self.create(call),
            Step::SetSecret => self.set(call),
            Step::TestSecret => self.test(call),
            Step::FinishSecret => template::finish(call),
        }
    }
}
