//! Temporary credentials through the Rust SDK: GetSessionToken, then the
//! session's key id, secret and token on STS and Secrets Manager.

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};

use crate::common::Server;

#[tokio::test(flavor = "multi_thread")]
async fn session_credentials_work_with_the_sdk() {
    let s = Server::start_http();
    let out = s.sts().get_session_token().duration_seconds(900).send().await.unwrap();
    let c = out.credentials().expect("credentials");
    assert!(c.access_key_id().starts_with("ASIA"));
    let session = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "session",
    );
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(session.clone())
            .endpoint_url(&s.url)
            .build(),
    );
    let who = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(who.arn(), Some("arn:aws:iam::000000000000:user/admin"));
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(session)
            .endpoint_url(&s.url)
            .build(),
    );
    sm.list_secrets().send().await.unwrap();

    // The same key id with a token that is not its own is refused.
    let wrong = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some("AQ==".to_owned()),
        None,
        "wrong",
    );
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(wrong)
            .endpoint_url(&s.url)
            .build(),
    );
    let e = sm.list_secrets().send().await.unwrap_err();
    assert_eq!(crate::common::code(&e), "UnrecognizedClientException");
}
