use aws_sdk_secretsmanager::primitives::Blob;

use crate::common::{Server, code, file_contains};

#[tokio::test(flavor = "multi_thread")]
async fn create_get_put_and_labels() {
    let s = Server::start_http();
    let c = s.client();
    let created = c
        .create_secret()
        .name("app/db")
        .secret_string(r#"{"password":"one"}"#)
        .send()
        .await
        .unwrap();
    let v1 = created.version_id().unwrap().to_owned();
    assert!(
        created
            .arn()
            .unwrap()
            .starts_with("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-")
    );
    let got = c.get_secret_value().secret_id("app/db").send().await.unwrap();
    assert_eq!(got.secret_string(), Some(r#"{"password":"one"}"#));
    assert_eq!(got.version_stages(), ["AWSCURRENT"]);

    let v2 = c
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("two")
        .send()
        .await
        .unwrap();
    let v2 = v2.version_id().unwrap().to_owned();
    let d = c
        .describe_secret()
        .secret_id(created.arn().unwrap())
        .send()
        .await
        .unwrap();
    let map = d.version_ids_to_stages().unwrap();
    assert_eq!(map[&v1], ["AWSPREVIOUS"]);
    assert_eq!(map[&v2], ["AWSCURRENT"]);
    let prev = c
        .get_secret_value()
        .secret_id("app/db")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(prev.secret_string(), Some(r#"{"password":"one"}"#));

    // Binary values round-trip byte for byte.
    c.create_secret()
        .name("bin")
        .secret_binary(Blob::new(vec![0, 1, 2, 0xff]))
        .send()
        .await
        .unwrap();
    let b = c.get_secret_value().secret_id("bin").send().await.unwrap();
    assert_eq!(b.secret_binary().unwrap().as_ref(), &[0, 1, 2, 0xff]);
    assert!(b.secret_string().is_none());

    let e = c.get_secret_value().secret_id("missing").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = c
        .create_secret()
        .name("app/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceExistsException");
    let e = c
        .create_secret()
        .name("bad name!")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");

    let who = s.sts().get_caller_identity().send().await.unwrap();
    assert_eq!(who.account(), Some("000000000000"));
    assert_eq!(who.arn(), Some("arn:aws:iam::000000000000:user/admin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_keys_are_refused() {
    let s = Server::start_http();
    let e = s
        .client_with(
            crate::common::AKID,
            "not-the-secret-key-000000000000000000000",
            "us-east-1",
        )
        .list_secrets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidSignatureException");
    let e = s
        .client_with("AKIAUNKNOWNKEY000000", "whatever", "us-east-1")
        .list_secrets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "UnrecognizedClientException");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_per_region() {
    let s = Server::start_http();
    let east = s.client();
    let west = s.client_with(crate::common::AKID, crate::common::SECRET, "us-west-2");
    east.create_secret()
        .name("r")
        .secret_string("east")
        .send()
        .await
        .unwrap();
    let e = west.get_secret_value().secret_id("r").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    west.create_secret()
        .name("r")
        .secret_string("west")
        .send()
        .await
        .unwrap();
    let v = west.get_secret_value().secret_id("r").send().await.unwrap();
    assert_eq!(v.secret_string(), Some("west"));
    assert!(v.arn().unwrap().contains(":us-west-2:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ciphertext_moved_between_rows_fails_to_decrypt_and_plaintext_never_stored() {
    let s = Server::start_http();
    let c = s.client();
    let canary_a = format!("canary-a-{}", uuid::Uuid::new_v4());
    let canary_b = format!("canary-b-{}", uuid::Uuid::new_v4());
    c.create_secret()
        .name("a")
        .secret_string(&canary_a)
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("b")
        .secret_string(&canary_b)
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.get_secret_value()
            .secret_id("a")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some(canary_a.as_str())
    );
    let data = s.data_dir();
    let log = s.stderr_log.clone();
    let dir = s.kill();
    assert!(!file_contains(&log, canary_a.as_bytes()), "plaintext in the log");

    for f in ["tumbler.db", "tumbler.db-wal"] {
        assert!(
            !file_contains(&data.join(f), canary_a.as_bytes()),
            "plaintext found in {f}"
        );
        assert!(
            !file_contains(&data.join(f), canary_b.as_bytes()),
            "plaintext found in {f}"
        );
    }
    assert!(
        !file_contains(&dir.path().join("server.log"), canary_a.as_bytes()),
        "plaintext in the log"
    );

    // Copy b's ciphertext and wrapped key over a's.
    let db = rusqlite::Connection::open(data.join("tumbler.db")).unwrap();
    let n = db
        .execute(
            "UPDATE secret_versions SET ciphertext = (SELECT v.ciphertext FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'b'),
                                        wrapped_key = (SELECT v.wrapped_key FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'b')
             WHERE secret_id = (SELECT id FROM secrets WHERE name = 'a')",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(db);

    let s = Server::start_in(dir, true);
    let c = s.client();
    let e = c.get_secret_value().secret_id("a").send().await.unwrap_err();
    assert_eq!(code(&e), "DecryptionFailure");
    assert!(!format!("{e:?}").contains("canary"));
    // The untouched secret still reads.
    assert_eq!(
        c.get_secret_value()
            .secret_id("b")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some(canary_b.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly() {
    let s = Server::start_http();
    s.client().list_secrets().send().await.unwrap();
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_the_generated_ca() {
    let s = Server::start_https();
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let c = s.tls_client();
    c.create_secret()
        .name("tls")
        .secret_string("over-tls")
        .send()
        .await
        .unwrap();
    let v = c.get_secret_value().secret_id("tls").send().await.unwrap();
    assert_eq!(v.secret_string(), Some("over-tls"));
    // A client that does not trust the generated CA is refused by TLS itself.
    let e = s.client().list_secrets().send().await.unwrap_err();
    assert!(e.as_service_error().is_none(), "expected a TLS failure, got {e:?}");
    let mode = std::fs::metadata(s.data_dir().join("credentials")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}
