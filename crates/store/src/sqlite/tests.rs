use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::{Applied, Cursor, NewVersion, SecretRow, SortKey, ValueKind};

fn store() -> (tempdir::Dir, SqliteStore) {
    let dir = tempdir::Dir::new();
    let s = SqliteStore::open(&dir.0.join("t.db")).unwrap();
    (dir, s)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!(
                "tumbler-store-test-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn row(name: &str, created: i64) -> SecretRow {
    SecretRow {
        id: 0,
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: name.into(),
        arn: format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-abcdef"),
        revision: 0,
        created_ms: created,
        last_changed_ms: created,
        last_accessed_ms: None,
        deleted_ms: None,
        purge_at_ms: None,
        meta: "{}".into(),
    }
}

fn value(b: u8) -> SealedValue {
    SealedValue {
        kind: ValueKind::String,
        kms_key_id: "k".into(),
        wrapped_key: vec![b],
        ciphertext: vec![b; 4],
    }
}

fn create(s: &SqliteStore, name: &str, created: i64) -> i64 {
    let r = s
        .apply(vec![Write::CreateSecret {
            row: row(name, created),
            versions: vec![NewVersion {
                version_id: "v1".into(),
                created_ms: created,
                value: Some(value(1)),
            }],
            stages: vec![("AWSCURRENT".into(), "v1".into())],
        }])
        .unwrap();
    match r[0] {
        Applied::SecretId(id) => id,
        _ => panic!(),
    }
}

#[test]
fn create_read_and_names_are_unique() {
    let (_d, s) = store();
    let id = create(&s, "a", 1);
    let st = s.secret_by_name("000000000000", "us-east-1", "a").unwrap().unwrap();
    assert_eq!(st.row.id, id);
    assert_eq!(st.row.revision, 1);
    assert_eq!(st.versions[0].stages, vec!["AWSCURRENT"]);
    assert_eq!(s.version_value(id, "v1").unwrap().unwrap().ciphertext, vec![1; 4]);
    assert!(s.secret_by_arn(&st.row.arn).unwrap().is_some());
    let dup = s.apply(vec![Write::CreateSecret {
        row: row("a", 2),
        versions: vec![],
        stages: vec![],
    }]);
    assert!(matches!(dup, Err(StoreError::NameExists)));
}

#[test]
fn stale_revision_conflicts_and_batch_is_atomic() {
    let (_d, s) = store();
    let id = create(&s, "a", 1);
    let st = s.secret_by_id(id).unwrap().unwrap();
    let upd = |rev: i64| Write::UpdateSecret {
        row: SecretRow {
            revision: rev,
            ..st.row.clone()
        },
        new_versions: vec![NewVersion {
            version_id: format!("v{}", rev + 1),
            created_ms: 2,
            value: Some(value(2)),
        }],
        fill_versions: vec![],
        delete_versions: vec![],
        stages: Some(vec![
            ("AWSCURRENT".into(), format!("v{}", rev + 1)),
            ("AWSPREVIOUS".into(), "v1".into()),
        ]),
        rewrap_versions: vec![],
    };
    s.apply(vec![upd(1)]).unwrap();
    // The same revision again is stale, and the whole batch (including the
    // secret created first in it) must not land.
    let r = s.apply(vec![
        Write::CreateSecret {
            row: row("b", 3),
            versions: vec![],
            stages: vec![],
        },
        upd(1),
    ]);
    assert!(matches!(r, Err(StoreError::Conflict)));
    assert!(s.secret_by_name("000000000000", "us-east-1", "b").unwrap().is_none());
    let st = s.secret_by_id(id).unwrap().unwrap();
    assert_eq!(st.row.revision, 2);
    assert_eq!(st.versions.len(), 2);
}

#[test]
fn a_label_cannot_point_at_a_missing_version() {
    let (_d, s) = store();
    let id = create(&s, "a", 1);
    let st = s.secret_by_id(id).unwrap().unwrap();
    let r = s.apply(vec![Write::UpdateSecret {
        row: st.row.clone(),
        new_versions: vec![],
        fill_versions: vec![],
        delete_versions: vec![],
        stages: Some(vec![("AWSCURRENT".into(), "nope".into())]),
        rewrap_versions: vec![],
    }]);
    assert!(r.is_err());
    let st = s.secret_by_id(id).unwrap().unwrap();
    assert_eq!(st.versions[0].stages, vec!["AWSCURRENT"]);
    // Deleting a labelled version removes its labels with it.
    s.apply(vec![Write::UpdateSecret {
        row: st.row.clone(),
        new_versions: vec![],
        fill_versions: vec![],
        delete_versions: vec!["v1".into()],
        stages: None,
        rewrap_versions: vec![],
    }])
    .unwrap();
    let st = s.secret_by_id(id).unwrap().unwrap();
    assert!(st.versions.is_empty());
    assert_eq!(s.integrity_check().unwrap(), "ok");
}

#[test]
fn list_pages_by_keyset() {
    let (_d, s) = store();
    for i in 0..5 {
        create(&s, &format!("n{i}"), 10 - i);
    }
    let mut q = ListQuery {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        sort: SortKey::CreatedDate,
        descending: false,
        include_deleted: false,
        after: None,
        limit: 2,
    };
    let p1 = s.list_secrets(&q).unwrap();
    assert_eq!(p1.iter().map(|l| l.row.name.as_str()).collect::<Vec<_>>(), ["n4", "n3"]);
    assert_eq!(p1[0].stages, vec![("v1".to_string(), vec!["AWSCURRENT".to_string()])]);
    let last = &p1[1].row;
    q.after = Some(Cursor::Int(last.created_ms, last.id));
    let p2 = s.list_secrets(&q).unwrap();
    assert_eq!(p2.iter().map(|l| l.row.name.as_str()).collect::<Vec<_>>(), ["n2", "n1"]);
    q.sort = SortKey::Name;
    q.descending = true;
    q.after = Some(Cursor::Text("n3".into(), 0));
    let p3 = s.list_secrets(&q).unwrap();
    assert_eq!(p3[0].row.name, "n2");
}

#[test]
fn concurrent_writers_all_commit() {
    let (_d, s) = store();
    let s = Arc::new(s);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    create(&s, &format!("t{t}-{i}"), i);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let q = ListQuery {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        sort: SortKey::Name,
        descending: false,
        include_deleted: false,
        after: None,
        limit: 1000,
    };
    assert_eq!(s.list_secrets(&q).unwrap().len(), 80);
}

#[test]
fn reads_see_one_snapshot_while_labels_move() {
    let (_d, s) = store();
    let s = Arc::new(s);
    let id = create(&s, "a", 1);
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 2..200 {
                let st = s.secret_by_id(id).unwrap().unwrap();
                let vid = format!("v{i}");
                let mut versions = vec![NewVersion {
                    version_id: vid.clone(),
                    created_ms: i,
                    value: Some(value(2)),
                }];
                versions.truncate(1);
                let old: Vec<String> = st.versions.iter().map(|v| v.version_id.clone()).collect();
                s.apply(vec![Write::UpdateSecret {
                    row: st.row.clone(),
                    new_versions: versions,
                    fill_versions: vec![],
                    delete_versions: old,
                    stages: Some(vec![("AWSCURRENT".into(), vid)]),
                    rewrap_versions: vec![],
                }])
                .unwrap();
            }
        })
    };
    for _ in 0..2000 {
        let st = s.secret_by_id(id).unwrap().unwrap();
        assert_eq!(
            st.versions
                .iter()
                .filter(|v| v.stages.iter().any(|x| x == "AWSCURRENT"))
                .count(),
            1
        );
    }
    writer.join().unwrap();
}

#[test]
fn cached_reads_follow_every_commit() {
    let (_d, s) = store();
    let id = create(&s, "a", 1);
    // Warm the cache, then change the secret: the next read sees the change.
    let st = s.secret_by_name("000000000000", "us-east-1", "a").unwrap().unwrap();
    assert_eq!(s.version_value(id, "v1").unwrap().unwrap().ciphertext, vec![1; 4]);
    s.apply(vec![Write::UpdateSecret {
        row: SecretRow {
            meta: "{\"x\":1}".into(),
            ..st.row.clone()
        },
        new_versions: vec![NewVersion {
            version_id: "v2".into(),
            created_ms: 2,
            value: Some(value(2)),
        }],
        fill_versions: vec![],
        delete_versions: vec!["v1".into()],
        stages: Some(vec![("AWSCURRENT".into(), "v2".into())]),
        rewrap_versions: vec![],
    }])
    .unwrap();
    let st = s.secret_by_arn(&st.row.arn).unwrap().unwrap();
    assert_eq!(st.row.meta, "{\"x\":1}");
    assert_eq!(st.versions.len(), 1);
    assert!(s.version_value(id, "v1").unwrap().is_none());
    s.apply(vec![Write::PurgeSecret { id }]).unwrap();
    assert!(s.secret_by_name("000000000000", "us-east-1", "a").unwrap().is_none());
    assert!(s.secret_by_id(id).unwrap().is_none());
}

#[test]
fn ids_are_never_reused_so_stale_writes_cannot_land_on_a_new_secret() {
    let (_d, s) = store();
    let id = create(&s, "a", 1);
    let stale = s.secret_by_id(id).unwrap().unwrap();
    s.apply(vec![Write::PurgeSecret { id }]).unwrap();
    let id2 = create(&s, "a", 2);
    assert_ne!(id, id2);
    let r = s.apply(vec![Write::UpdateSecret {
        row: stale.row.clone(),
        new_versions: vec![],
        fill_versions: vec![],
        delete_versions: vec![],
        stages: Some(vec![("AWSPREVIOUS".into(), "v1".into())]),
        rewrap_versions: vec![],
    }]);
    assert!(matches!(r, Err(StoreError::Conflict)));
}

fn principal(arn: &str, kind: &str, name: &str) -> PrincipalRow {
    PrincipalRow {
        arn: arn.into(),
        account: "000000000000".into(),
        kind: kind.into(),
        name: name.into(),
        unique_id: format!("ID{name}"),
        created_ms: 1,
        meta: "{}".into(),
    }
}

#[test]
fn iam_rows_policies_attachments_and_cascades() {
    use crate::{AccessKeyRow, ManagedPolicyRow, PolicyVersionRow};
    let (_d, s) = store();
    let user = "arn:aws:iam::000000000000:user/u";
    let policy = "arn:aws:iam::000000000000:policy/p";
    let version = |id: &str| PolicyVersionRow {
        version_id: id.into(),
        document: format!("doc {id}"),
        created_ms: 1,
    };
    s.apply(vec![
        Write::CreatePrincipal(principal(user, "user", "u")),
        Write::CreatePrincipal(principal("arn:aws:iam::000000000000:role/r", "role", "r")),
        Write::CreateAccessKey(AccessKeyRow {
            access_key_id: "AKIATESTTESTTEST0001".into(),
            principal_arn: user.into(),
            status: "Active".into(),
            sealed_secret: vec![1, 2, 3],
            created_ms: 1,
        }),
        Write::PutInlinePolicy {
            principal_arn: user.into(),
            name: "inline".into(),
            document: "one".into(),
        },
        Write::PutInlinePolicy {
            principal_arn: user.into(),
            name: "inline".into(),
            document: "two".into(),
        },
        Write::CreateManagedPolicy {
            row: ManagedPolicyRow {
                arn: policy.into(),
                account: "000000000000".into(),
                name: "p".into(),
                policy_id: "ANPA1".into(),
                created_ms: 1,
                updated_ms: 1,
                meta: "{}".into(),
            },
            version: version("v1"),
        },
        Write::PutPolicyVersion {
            policy_arn: policy.into(),
            version: version("v2"),
        },
        Write::AttachPolicy {
            principal_arn: user.into(),
            policy_arn: policy.into(),
        },
        Write::AttachPolicy {
            principal_arn: user.into(),
            policy_arn: "arn:aws:iam::aws:policy/AdministratorAccess".into(),
        },
    ])
    .unwrap();
    assert_eq!(s.principals("000000000000", "user").unwrap().len(), 1);
    assert_eq!(s.principals("000000000000", "role").unwrap()[0].name, "r");
    assert_eq!(s.inline_policies(user).unwrap(), vec![("inline".into(), "two".into())]);
    assert_eq!(s.policy_versions(policy).unwrap().len(), 2);
    assert_eq!(s.attachment_count(policy).unwrap(), 1);
    assert_eq!(s.attached_policies(user).unwrap().len(), 2);
    assert_eq!(s.access_keys_of(user).unwrap().len(), 1);
    // Deleting what is not there reports NotFound and changes nothing else in the batch.
    let missing = s.apply(vec![
        Write::DetachPolicy {
            principal_arn: user.into(),
            policy_arn: policy.into(),
        },
        Write::DeleteInlinePolicy {
            principal_arn: user.into(),
            name: "nope".into(),
        },
    ]);
    assert!(matches!(missing, Err(StoreError::NotFound)));
    assert_eq!(s.attachment_count(policy).unwrap(), 1);
    s.apply(vec![Write::SetAccessKeyStatus {
        access_key_id: "AKIATESTTESTTEST0001".into(),
        status: "Inactive".into(),
    }])
    .unwrap();
    assert_eq!(
        s.access_key("AKIATESTTESTTEST0001").unwrap().unwrap().status,
        "Inactive"
    );
    // A principal takes its keys, inline policies and attachments with it.
    s.apply(vec![Write::DeletePrincipal { arn: user.into() }]).unwrap();
    assert!(s.access_key("AKIATESTTESTTEST0001").unwrap().is_none());
    assert!(s.inline_policies(user).unwrap().is_empty());
    assert_eq!(s.attachment_count(policy).unwrap(), 0);
    s.apply(vec![Write::DeleteManagedPolicy { arn: policy.into() }])
        .unwrap();
    assert!(s.policy_versions(policy).unwrap().is_empty());
    assert!(s.managed_policy(policy).unwrap().is_none());
}

#[test]
fn group_membership_follows_its_group_and_user() {
    let (_d, s) = store();
    let group = "arn:aws:iam::000000000000:group/g";
    let (alice, bob) = ("arn:aws:iam::000000000000:user/a", "arn:aws:iam::000000000000:user/b");
    let member = |user: &str| Write::AddGroupMember {
        group_arn: group.into(),
        user_arn: user.into(),
    };
    s.apply(vec![
        Write::CreatePrincipal(principal(group, "group", "g")),
        Write::CreatePrincipal(principal(alice, "user", "a")),
        Write::CreatePrincipal(principal(bob, "user", "b")),
        member(bob),
        member(alice),
        member(alice),
    ])
    .unwrap();
    assert_eq!(s.group_members(group).unwrap(), vec![alice.to_owned(), bob.to_owned()]);
    assert_eq!(s.groups_of(alice).unwrap(), vec![group.to_owned()]);
    // A user that does not exist can't join.
    let ghost = s.apply(vec![member("arn:aws:iam::000000000000:user/ghost")]);
    assert!(matches!(ghost, Err(StoreError::NotFound)), "{ghost:?}");
    let remove = || Write::RemoveGroupMember {
        group_arn: group.into(),
        user_arn: bob.into(),
    };
    s.apply(vec![remove()]).unwrap();
    assert!(matches!(s.apply(vec![remove()]), Err(StoreError::NotFound)));
    // Deleting the user or the group ends the membership.
    s.apply(vec![Write::DeletePrincipal { arn: alice.into() }]).unwrap();
    assert!(s.group_members(group).unwrap().is_empty());
    s.apply(vec![member(bob), Write::DeletePrincipal { arn: group.into() }])
        .unwrap();
    assert!(s.groups_of(bob).unwrap().is_empty());
}

/// A stand-in chain: the MAC is the previous MAC's first byte plus the
/// number, enough to see linking order without a crypto dependency.
struct TestLinker;
impl AuditLinker for TestLinker {
    fn link(&self, prev: &[u8], seq: u64, json: &str) -> Vec<u8> {
        vec![prev[0].wrapping_add(seq as u8), json.len() as u8]
    }
    fn link_block(&self, prev: &[u8], _first: u64, last: u64, block: &[u8]) -> Vec<u8> {
        vec![prev[0].wrapping_add(last as u8), block.len() as u8]
    }
}

/// The events that carry a chain MAC (an event of its own, or a block's
/// last), each linked to the one before as `TestLinker` links them.
fn links(all: &[StoredAuditEvent]) -> Vec<&StoredAuditEvent> {
    let links: Vec<_> = all.iter().filter(|e| !e.mac.is_empty()).collect();
    for pair in links.windows(2) {
        assert_eq!(pair[1].mac[0], pair[0].mac[0].wrapping_add(pair[1].seq as u8));
    }
    assert_eq!(
        all.last().map(|e| e.seq),
        links.last().map(|e| e.seq),
        "a block ends the trail"
    );
    links
}

fn event(name: &str, secret: &str) -> AuditRecord {
    AuditRecord {
        json: format!(
            r#"{{"eventName":"{name}","eventTime":"2026-11-23T12:00:0{}Z","requestParameters":{{"secretId":"{secret}"}},"readOnly":{}}}"#,
            name.len() % 10,
            name.starts_with("Get")
        ),
    }
}

/// A new secret with no versions, named `name`.
fn create_secret(name: &str) -> Write {
    Write::CreateSecret {
        row: row(name, 1),
        versions: vec![],
        stages: vec![],
    }
}

fn record_sync(s: &SqliteStore, e: AuditRecord) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    s.record(
        vec![e],
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv().unwrap()
}

#[test]
fn audit_events_commit_with_their_change_and_only_then() {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("t.db");
    let s = SqliteStore::open_audited(&path, Arc::new(TestLinker)).unwrap();
    s.apply_with_event(vec![create_secret("a")], Some(event("CreateSecret", "a")))
        .unwrap();
    // The name is taken: neither the write nor its event is stored.
    assert!(matches!(
        s.apply_with_event(vec![create_secret("a")], Some(event("CreateSecret", "a"))),
        Err(StoreError::NameExists)
    ));
    record_sync(&s, event("GetSecretValue", "a")).unwrap();
    let all = s.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(all[1].mac[0], all[0].mac[0].wrapping_add(2));
    drop(s);

    // The chain goes on from the stored head after a restart.
    let s = SqliteStore::open_audited(&path, Arc::new(TestLinker)).unwrap();
    record_sync(&s, event("DescribeSecret", "b")).unwrap();
    let all = s.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].seq, 3);
    assert_eq!(all[2].mac[0], all[1].mac[0].wrapping_add(3));

    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        s.audit_events(&q)
            .unwrap()
            .into_iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(q(&|q| q.event_name = Some("GetSecretValue".into())), [2]);
    assert_eq!(q(&|q| q.resource = Some("a".into())), [1, 2]);
    assert_eq!(q(&|q| q.read_only = Some(true)), [2]);
    assert_eq!(q(&|q| q.after_seq = 1), [2, 3]);
    assert_eq!(
        q(&|q| {
            q.descending = true;
            q.limit = 2
        }),
        [3, 2]
    );
    assert_eq!(q(&|q| q.errors_only = true), Vec::<u64>::new());
}

/// Record `n` events of reads at once, so that the writer stores them in
/// blocks, and wait until all are committed.
fn record_many(s: &SqliteStore, n: usize, secret: &str) {
    let (tx, rx) = mpsc::channel();
    for _ in 0..n {
        let tx = tx.clone();
        s.record(
            vec![event("GetSecretValue", secret)],
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
    }
    for _ in 0..n {
        rx.recv().unwrap().unwrap();
    }
}

#[test]
fn events_of_reads_share_rows_and_read_back_in_order() {
    reads_and_changes_read_back_in_order(false);
}

#[test]
fn events_of_reads_in_the_log_read_back_in_order_with_the_tables() {
    reads_and_changes_read_back_in_order(true);
}

/// Events of reads in blocks of the table (`read_log` false) or in the log
/// of reads, and an event of a change between them: one chain, read back in
/// order through every kind of query, across a restart and a prune.
fn reads_and_changes_read_back_in_order(read_log: bool) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("t.db");
    let open = || SqliteStore::open_tuned(&path, Some(Arc::new(TestLinker)), Default::default(), read_log).unwrap();
    let s = open();
    record_many(&s, 20, "a");
    s.apply_with_event(vec![create_secret("b")], Some(event("CreateSecret", "b")))
        .unwrap();
    record_many(&s, 20, "b");
    let rows: Vec<(i64, String)> = {
        let c = Connection::open(&path).unwrap();
        let mut st = c
            .prepare("SELECT seq, typeof(json) FROM audit_events ORDER BY seq")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    if read_log {
        assert_eq!(rows, [(21, "text".into())], "only the change's event is in the table");
        assert!(std::fs::metadata(dir.0.join("t.db-audit")).unwrap().len() > 0);
    } else {
        assert!(rows.len() < 41 && rows.iter().any(|r| r.1 == "blob"), "{rows:?}");
        assert!(
            rows.contains(&(21, "text".into())),
            "the change's event is a row of its own: {rows:?}"
        );
    }

    let seqs = |q: AuditQuery| {
        s.audit_events(&q)
            .unwrap()
            .into_iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(AuditQuery::default()), (1..=41).collect::<Vec<_>>());
    let all = s.audit_events(&AuditQuery::default()).unwrap();
    links(&all);
    // Bounds and limits fall inside blocks.
    let after = |n| AuditQuery {
        after_seq: n,
        limit: 3,
        ..Default::default()
    };
    assert_eq!(seqs(after(5)), [6, 7, 8]);
    assert_eq!(seqs(after(20)), [21, 22, 23]);
    let before = |n| AuditQuery {
        descending: true,
        before_seq: n,
        limit: 3,
        ..Default::default()
    };
    assert_eq!(seqs(before(30)), [29, 28, 27]);
    assert_eq!(seqs(before(0)), [41, 40, 39]);
    let named = |name: &str, secret: &str| AuditQuery {
        event_name: Some(name.into()),
        resource: Some(secret.into()),
        ..Default::default()
    };
    assert_eq!(seqs(named("GetSecretValue", "b")), (22..=41).collect::<Vec<_>>());
    assert_eq!(seqs(named("CreateSecret", "b")), [21]);
    drop(s);

    // The chain goes on from the last event of the last block.
    let s = open();
    record_sync(&s, event("DescribeSecret", "b")).unwrap();
    let all = s.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(all.last().unwrap().seq, 42);
    links(&all);

    // Pruning up to an event inside a block keeps the rest of the block.
    let cut = if read_log {
        // record_many's events arrive one by one: mostly a block each; a
        // prune ends at a block's end.
        links(&all).into_iter().find(|e| e.seq >= 7).unwrap().seq
    } else {
        rows.windows(2)
            .find(|w| w[0].1 == "blob" && w[1].0 > w[0].0 + 1)
            .map(|w| w[0].0 as u64)
            .expect("a block of two or more events")
    };
    let anchor = |seq: u64, mac: Vec<u8>| AuditAnchor {
        seq,
        mac,
        anchor_mac: vec![1],
        pruned_ms: 0,
    };
    let wrong = anchor(cut, vec![0]);
    assert!(matches!(
        s.apply(vec![Write::PruneAudit { anchor: wrong }]),
        Err(StoreError::NotFound)
    ));
    s.apply(vec![Write::PruneAudit {
        anchor: anchor(cut, all[cut as usize - 1].mac.clone()),
    }])
    .unwrap();
    let left = s.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(left.first().unwrap().seq, cut + 1);
    assert_eq!(left, all[cut as usize..]);
    // Readers opened afterwards start where the prune left the log, and
    // the chain goes on from the end.
    drop(s);
    let s = open();
    assert_eq!(s.audit_events(&AuditQuery::default()).unwrap(), all[cut as usize..]);
    record_sync(&s, event("DescribeSecret", "c")).unwrap();
    let last = s.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(last.last().unwrap().seq, 43);
    links(&last);
}

#[test]
fn events_need_an_audit_trail() {
    let (_d, s) = store();
    assert!(record_sync(&s, event("GetSecretValue", "a")).is_err());
}

#[test]
fn mfa_devices_enable_once_and_never_accept_a_step_twice() {
    use crate::MfaDeviceRow;
    let (_d, s) = store();
    let user = "arn:aws:iam::000000000000:user/u";
    let serial = "arn:aws:iam::000000000000:mfa/u";
    let device = MfaDeviceRow {
        serial: serial.into(),
        account: "000000000000".into(),
        sealed_seed: vec![9; 40],
        created_ms: 1,
        user_arn: None,
        enabled_ms: None,
        last_step: None,
    };
    s.apply(vec![
        Write::CreatePrincipal(principal(user, "user", "u")),
        Write::CreateMfaDevice(device.clone()),
    ])
    .unwrap();
    assert!(matches!(
        s.apply(vec![Write::CreateMfaDevice(device)]),
        Err(StoreError::Duplicate(_))
    ));
    let enable = || Write::EnableMfaDevice {
        serial: serial.into(),
        user_arn: user.into(),
        enabled_ms: 5,
        last_step: 100,
    };
    s.apply(vec![enable()]).unwrap();
    assert!(matches!(s.apply(vec![enable()]), Err(StoreError::NotFound)));
    let got = s.mfa_device(serial).unwrap().unwrap();
    assert_eq!((got.user_arn.as_deref(), got.last_step), (Some(user), Some(100)));
    let use_code = |step| Write::UseMfaCode {
        serial: serial.into(),
        user_arn: user.into(),
        step,
    };
    // The enabling codes' step, and anything before it, can't be reused.
    assert!(matches!(s.apply(vec![use_code(100)]), Err(StoreError::NotFound)));
    s.apply(vec![use_code(101)]).unwrap();
    assert!(matches!(s.apply(vec![use_code(101)]), Err(StoreError::NotFound)));
    // An enabled device can't be deleted; a deactivated one can.
    let delete = || Write::DeleteMfaDevice { serial: serial.into() };
    assert!(matches!(s.apply(vec![delete()]), Err(StoreError::NotFound)));
    s.apply(vec![Write::DeactivateMfaDevice {
        serial: serial.into(),
        user_arn: user.into(),
    }])
    .unwrap();
    assert!(matches!(s.apply(vec![use_code(102)]), Err(StoreError::NotFound)));
    s.apply(vec![delete()]).unwrap();
    assert!(s.mfa_devices("000000000000").unwrap().is_empty());
}

#[test]
fn the_writer_checkpoints_when_the_checkpointer_falls_behind() {
    // The checkpointer never gets to run here; only the writer's overdue
    // checkpoint can move events of reads (committed without an fsync) out
    // of the WAL into the database file.
    let main_file_after_events = |overdue: Duration| {
        let dir = tempfile_dir(&format!("overdue-{}", overdue.as_millis()));
        let path = dir.join("s.db");
        let timing = write::CheckpointTiming {
            every: Duration::from_secs(3600),
            busy_every: Duration::from_secs(3600),
            overdue,
            writer_pages: 0,
        };
        let s = SqliteStore::open_tuned(&path, Some(Arc::new(TestLinker)), timing, false).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for i in 0..8 {
            record_sync(&s, incompressible_event(i, 128 * 1024)).unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        let after = std::fs::metadata(&path).unwrap().len();
        let wal = std::fs::metadata(dir.join("s.db-wal")).unwrap().len();
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
        (after - before, wal)
    };
    let (grown, _) = main_file_after_events(Duration::from_millis(10));
    assert!(grown > 512 * 1024, "the database file grew by only {grown} bytes");
    let (grown, wal) = main_file_after_events(Duration::from_secs(3600));
    assert!(
        grown < 64 * 1024,
        "without an overdue checkpoint the events stay in the WAL ({grown} bytes copied)"
    );
    assert!(wal > 512 * 1024, "WAL of {wal} bytes");
}

#[test]
fn the_writer_keeps_the_wal_small_under_a_steady_stream_of_commits() {
    // The checkpointer never gets to run here, as on a saturated machine.
    let wal_after_events = |writer_pages: u32| {
        let dir = tempfile_dir(&format!("wal-bound-{writer_pages}"));
        let path = dir.join("s.db");
        let timing = write::CheckpointTiming {
            every: Duration::from_secs(3600),
            busy_every: Duration::from_secs(3600),
            overdue: Duration::from_secs(3600),
            writer_pages,
        };
        let s = SqliteStore::open_tuned(&path, Some(Arc::new(TestLinker)), timing, false).unwrap();
        for i in 0..64 {
            // Four pages per commit.
            record_sync(&s, incompressible_event(i, 16 * 1024)).unwrap();
        }
        let wal = std::fs::metadata(dir.join("s.db-wal")).unwrap().len();
        let events = s.audit_events(&AuditQuery::default()).unwrap().len();
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
        (wal, events)
    };
    let (unbounded, events) = wal_after_events(0);
    assert_eq!(events, 64);
    assert!(
        unbounded > 1024 * 1024,
        "WAL of {unbounded} bytes without the writer's checkpoints"
    );
    let (bounded, events) = wal_after_events(64);
    assert_eq!(events, 64);
    assert!(
        bounded < 512 * 1024,
        "WAL of {bounded} bytes with the writer checkpointing"
    );
}

/// An event of about `bytes` bytes whose padding does not compress (events
/// of reads are stored compressed), different for each `n`.
fn incompressible_event(n: u64, bytes: usize) -> AuditRecord {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ n;
    let pad: String = (0..bytes / 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:016x}", x)
        })
        .collect();
    AuditRecord {
        json: format!(r#"{{"n":{n},"pad":"{pad}"}}"#),
    }
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tumbler-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// While events of reads go to the log and events of changes to the table,
/// from several threads, a reader always sees an unbroken run of numbers in
/// order. (A change committed between a reader's snapshot and its look at
/// the log, which `audit_events` reads again for, falls in a window of
/// microseconds: this test rarely provokes it and checks the merge itself.)
#[test]
fn readers_never_see_a_gap_while_reads_and_changes_are_recorded() {
    let dir = tempdir::Dir::new();
    let s = Arc::new(SqliteStore::open_audited(&dir.0.join("t.db"), Arc::new(TestLinker)).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..2 {
        let (s, stop) = (s.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if t == 0 && i % 5 == 0 {
                    s.apply_with_event(Vec::new(), Some(event("TagResource", "a"))).unwrap();
                } else {
                    record_sync(&s, event("GetSecretValue", "a")).unwrap();
                }
                i += 1;
            }
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut checks = 0;
    while std::time::Instant::now() < deadline {
        let seqs: Vec<u64> = s
            .audit_events(&AuditQuery::default())
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "a gap after {checks} checks"
        );
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let all = s.audit_events(&AuditQuery::default()).unwrap();
    assert!(all.len() > 100 && checks > 10, "{} events, {checks} checks", all.len());
    assert!(std::fs::metadata(dir.0.join("t.db-audit")).unwrap().len() > 0);
}

/// A store whose events of reads are blocks in the table (before the log of
/// reads existed) goes on into the log, and readers see one chain.
#[test]
fn a_store_with_blocks_in_the_table_goes_on_in_the_log() {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("t.db");
    let open = |log| SqliteStore::open_tuned(&path, Some(Arc::new(TestLinker)), Default::default(), log).unwrap();
    let before = open(false);
    record_many(&before, 10, "a");
    before
        .apply_with_event(vec![create_secret("a")], Some(event("CreateSecret", "a")))
        .unwrap();
    drop(before);
    let s = open(true);
    record_many(&s, 10, "a");
    let all = s.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=21).collect::<Vec<_>>()
    );
    links(&all);
    assert!(std::fs::metadata(dir.0.join("t.db-audit")).unwrap().len() > 0);
    let blocks: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM audit_events WHERE typeof(json) = 'blob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(blocks > 0, "the first reads stayed in the table");
}

/// Prunes the events up to and including `last`, or up to the end of the
/// block before it if it is inside one.
fn prune_upto(s: &SqliteStore, all: &[StoredAuditEvent], last: usize) {
    let last = all[..=last].iter().rev().find(|e| !e.mac.is_empty()).unwrap();
    let anchor = AuditAnchor {
        seq: last.seq,
        mac: last.mac.clone(),
        anchor_mac: vec![1],
        pruned_ms: 0,
    };
    s.apply(vec![Write::PruneAudit { anchor }]).unwrap();
}

/// A reader in another process (as `tumbler audit verify` is beside the
/// server) never takes records freed by a prune committed during its read
/// for damaged ones, nor sees a gap where they were.
#[test]
fn a_prune_during_a_read_in_another_process_is_not_damage() {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("t.db");
    let server = Arc::new(SqliteStore::open_audited(&path, Arc::new(TestLinker)).unwrap());
    record_many(&server, 50, "a");
    // The server appends; this store only reads the log (the lock is taken).
    let reader = SqliteStore::open_audited(&path, Arc::new(TestLinker)).unwrap();
    let whole = |all: &[StoredAuditEvent]| {
        let first = all.first().map_or(1, |e| e.seq);
        all.iter().map(|e| e.seq).eq(first..first + all.len() as u64)
            && all.iter().all(|e| !e.json.is_empty())
            && all.last().is_none_or(|e| !e.mac.is_empty())
    };
    // Records appended and pruned before the reader looked at them: where
    // the file system frees them, it finds zeros where it had got to.
    record_many(&server, 50, "a");
    let all = server.audit_events(&AuditQuery::default()).unwrap();
    prune_upto(&server, &all, 80);
    let read = reader.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(
        read.first().map(|e| e.seq),
        server.audit_anchor().unwrap().map(|a| a.seq + 1)
    );
    assert!(whole(&read), "{:?}", read.iter().map(|e| e.seq).collect::<Vec<_>>());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (s, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut prunes = 0;
            while !stop.load(Ordering::Relaxed) {
                record_many(&s, 20, "a");
                let all = s.audit_events(&AuditQuery::default()).unwrap();
                prune_upto(&s, &all, all.len() - 30);
                prunes += 1;
                // Far more often than anyone prunes, but not so often that
                // a reader on a loaded machine never reads between two.
                std::thread::sleep(Duration::from_millis(2));
            }
            prunes
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut checks = 0;
    while std::time::Instant::now() < deadline {
        let all = reader.audit_events(&AuditQuery::default()).unwrap();
        assert!(whole(&all), "a gap or a damaged record after {checks} reads");
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let prunes = worker.join().unwrap();
    assert!(prunes > 10 && checks > 10, "{prunes} prunes, {checks} checks");
}

/// A log of reads written before blocks were chained as one (version 1
/// records, a MAC an event) goes on with version 2 records, and readers see
/// one chain: the first block links to the last event of the old ones.
#[test]
fn a_log_of_version_1_records_goes_on_with_version_2() {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("t.db");
    let open = || SqliteStore::open_tuned(&path, Some(Arc::new(TestLinker)), Default::default(), true).unwrap();
    drop(open());
    {
        let log = read_log::ReadLog::open(&read_log::path_for(&path), 0).unwrap();
        assert!(log.take_over().unwrap());
        let mut prev = vec![0u8; 32];
        for (first, last) in [(1u64, 3u64), (4, 5)] {
            let events: Vec<StoredAuditEvent> = (first..=last)
                .map(|seq| {
                    let json = event("GetSecretValue", "old").json;
                    let mac = TestLinker.link(&prev, seq, &json);
                    prev.clone_from(&mac);
                    StoredAuditEvent {
                        seq,
                        json,
                        mac,
                        block: None,
                    }
                })
                .collect();
            let body = audit_rows::encode_block(&events);
            log.append(first, events.len() as u32, &body).unwrap();
        }
    }
    let s = open();
    let (tx, rx) = mpsc::channel();
    s.record(
        (0..4).map(|_| event("GetSecretValue", "new")).collect(),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv().unwrap().unwrap();
    let all = s.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    assert!(
        all[..5].iter().all(|e| e.block.is_none() && !e.mac.is_empty()),
        "version 1: a MAC each"
    );
    assert!(all[5..8].iter().all(|e| e.mac.is_empty()), "version 2: one MAC a block");
    assert!(all[8].block.is_some());
    links(&all);
}
