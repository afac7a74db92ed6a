//! kill -9 the server in a loop during concurrent PutSecretValue and
//! GetSecretValue calls; after each restart every acknowledged write must be
//! there, the labels consistent, SQLite's integrity check clean, and the
//! audit trail's chain whole (its events of reads are appended to a log file
//! that a kill may cut in the middle of a record).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::common::Server;

/// Secret name -> (version id, value) of every acknowledged write.
type Acked = HashMap<String, Vec<(String, String)>>;

#[tokio::test(flavor = "multi_thread")]
async fn kill_nine_loses_no_acknowledged_write() {
    let mut server = Server::start_http();
    let names: Vec<String> = (0..4).map(|i| format!("crash-{i}")).collect();
    {
        let c = server.client();
        for n in &names {
            c.create_secret().name(n).secret_string("v0").send().await.unwrap();
        }
    }
    let acked: Arc<Mutex<Acked>> = Arc::default();
    for round in 0..5 {
        let c = server.client();
        let mut tasks = Vec::new();
        for n in names.clone() {
            let c = c.clone();
            let acked = acked.clone();
            let reader = c.clone();
            let secret = n.clone();
            tasks.push(tokio::spawn(async move {
                while reader.get_secret_value().secret_id(&secret).send().await.is_ok() {}
            }));
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let value = format!("{n}-r{round}-{i}");
                    match c.put_secret_value().secret_id(&n).secret_string(&value).send().await {
                        Ok(r) => acked
                            .lock()
                            .unwrap()
                            .entry(n.clone())
                            .or_default()
                            .push((r.version_id().unwrap().to_owned(), value)),
                        Err(_) => break,
                    }
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(400 + 150 * round)).await;
        let dir = server.kill();
        for t in tasks {
            let _ = t.await;
        }
        server = Server::start_in(dir, true);
        let c = server.client();
        let acked = acked.lock().unwrap().clone();
        for n in &names {
            let d = c.describe_secret().secret_id(n).send().await.unwrap();
            let stages = d.version_ids_to_stages().unwrap();
            let current: Vec<_> = stages
                .iter()
                .filter(|(_, s)| s.iter().any(|x| x == "AWSCURRENT"))
                .collect();
            assert_eq!(current.len(), 1, "exactly one AWSCURRENT for {n}");
            for (vid, value) in acked.get(n).into_iter().flatten() {
                let v = c.get_secret_value().secret_id(n).version_id(vid).send().await;
                let v = v.unwrap_or_else(|e| panic!("acknowledged version {vid} of {n} is gone: {e:?}"));
                assert_eq!(v.secret_string(), Some(value.as_str()));
            }
        }
    }
    let writes: usize = acked.lock().unwrap().values().map(Vec::len).sum();
    assert!(
        writes > 20,
        "only {writes} acknowledged writes: the test did not exercise the store"
    );
    let data = server.data_dir();
    let _dir = server.kill();
    let verify = std::process::Command::new(crate::common::tumbler_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "the audit trail is broken after the kills: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(std::fs::metadata(data.join("tumbler.db-audit")).unwrap().len() > 0);
    let db = rusqlite::Connection::open(data.join("tumbler.db")).unwrap();
    let ok: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let orphans: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM version_stages s LEFT JOIN secret_versions v
             ON v.secret_id = s.secret_id AND v.version_id = s.version_id WHERE v.version_id IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
}
