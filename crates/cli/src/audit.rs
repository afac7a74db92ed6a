//! `tumbler audit`: verify the chain, search, export. These read the store
//! directly (SQLite allows it while the server runs) and need the root key,
//! which the chain's MACs are made with.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tumbler_audit::StoredEvent;
use tumbler_store::{AuditQuery, Store};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check that no event was edited, removed or reordered. Prints the number
    /// of events and the last MAC: note them elsewhere, since cutting events
    /// off the end is the one change the chain cannot show by itself.
    Verify {
        #[command(flatten)]
        dir: DataDir,
        /// Also fail unless the chain holds at least this many events...
        #[arg(long)]
        expect_events: Option<u64>,
        /// ...and event number --expect-events has this MAC (hex).
        #[arg(long, requires = "expect_events")]
        expect_mac: Option<String>,
    },
    /// Events matching all the filters given, as JSON lines, oldest first.
    Search(SearchArgs),
    /// Every event (after --after-seq) as JSON lines with its number and
    /// chain MAC, for archiving and for re-verification elsewhere. Events
    /// of reads are chained a batch at a time: the batch's last line carries
    /// the MAC and, as `block` (base64), the stored bytes it covers, whose
    /// decompressed contents are the batch's events; the others' `mac` is
    /// empty.
    Export {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
    },
    /// Delete the events recorded before a time (export them first to keep
    /// them). The events removed are verified first, and the chain keeps a
    /// MAC-protected record of where it now starts, so `verify` still
    /// detects any other removal. The newest event is always kept.
    Prune {
        #[command(flatten)]
        dir: DataDir,
        /// Remove events recorded before this time (RFC 3339)...
        #[arg(
            long,
            conflicts_with = "older_than_days",
            required_unless_present = "older_than_days"
        )]
        before: Option<String>,
        /// ...or more than this many days ago.
        #[arg(long)]
        older_than_days: Option<u32>,
    },
}

#[derive(Args)]
pub struct DataDir {
    /// The server's data directory.
    #[arg(long, env = "TUMBLER_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Events at or after this time (RFC 3339, e.g. 2026-11-23T00:00:00Z).
    #[arg(long)]
    start_time: Option<String>,
    /// Events at or before this time.
    #[arg(long)]
    end_time: Option<String>,
    /// The caller's ARN, or the role's ARN for role sessions.
    #[arg(long)]
    principal: Option<String>,
    /// The access key the call was signed with.
    #[arg(long)]
    access_key_id: Option<String>,
    /// The operation, e.g. GetSecretValue.
    #[arg(long)]
    event_name: Option<String>,
    /// e.g. secretsmanager.amazonaws.com.
    #[arg(long)]
    event_source: Option<String>,
    /// A secret's name or ARN (as the caller named it), or an ARN the call touched.
    #[arg(long)]
    resource: Option<String>,
    /// Only calls that failed or were refused.
    #[arg(long)]
    errors_only: bool,
    /// At most this many events (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
}

/// Events are read in pages so that a long trail is never all in memory.
const PAGE: usize = 5000;

fn open(dir: &DataDir) -> Result<std::sync::Arc<dyn Store>> {
    if !dir.data_dir.join("tumbler.db").exists() {
        bail!("{} holds no Tumbler store", dir.data_dir.display());
    }
    let master = crate::root::master_key(&dir.data_dir, None)?;
    crate::init::open_store(&dir.data_dir, &master)
}

/// Every event matching `query` (its `after_seq` and `limit` are managed here), page by page.
fn each(
    store: &dyn Store,
    query: AuditQuery,
    limit: usize,
    mut f: impl FnMut(StoredEvent) -> Result<()>,
) -> Result<()> {
    let mut after = query.after_seq;
    let mut seen = 0usize;
    loop {
        let page = store
            .audit_events(&AuditQuery {
                after_seq: after,
                limit: PAGE,
                ..query.clone()
            })
            .context("cannot read the audit trail")?;
        let n = page.len();
        for e in page {
            after = e.seq;
            f(StoredEvent::from(e))?;
            seen += 1;
            if limit > 0 && seen >= limit {
                return Ok(());
            }
        }
        if n < PAGE {
            return Ok(());
        }
    }
}

pub fn run(cmd: AuditCommand) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match cmd {
        AuditCommand::Verify {
            dir,
            expect_events,
            expect_mac,
        } => {
            let chain = crate::init::audit_chain(&crate::root::master_key(&dir.data_dir, None)?);
            let store = open(&dir)?;
            let anchor = store.audit_anchor().context("cannot read the audit trail")?;
            // Stream pages into the verifier; a read error ends the stream
            // and is reported after.
            let mut read_error = None;
            let mut after = anchor.as_ref().map_or(0, |a| a.seq);
            let mut mac_at_expected: Option<String> = match (&anchor, expect_events) {
                (Some(a), Some(n)) if n == a.seq => Some(hex_encode(&a.mac)),
                (Some(a), Some(n)) if n < a.seq && expect_mac.is_some() => {
                    bail!(
                        "event {n} was pruned (events 1 to {} are gone), so its MAC can't be checked",
                        a.seq
                    )
                }
                _ => None,
            };
            let mut page: std::vec::IntoIter<StoredEvent> = Vec::new().into_iter();
            let mut done = false;
            let events = std::iter::from_fn(|| {
                loop {
                    if let Some(e) = page.next() {
                        if Some(e.seq) == expect_events {
                            mac_at_expected = Some(hex_encode(&e.mac));
                        }
                        return Some(e);
                    }
                    if done {
                        return None;
                    }
                    match store.audit_events(&AuditQuery {
                        after_seq: after,
                        limit: PAGE,
                        ..Default::default()
                    }) {
                        Ok(p) => {
                            done = p.len() < PAGE;
                            after = p.last().map_or(after, |e| e.seq);
                            page = p.into_iter().map(StoredEvent::from).collect::<Vec<_>>().into_iter();
                        }
                        Err(e) => {
                            read_error = Some(e);
                            return None;
                        }
                    }
                }
            });
            let verdict = chain.verify_from(anchor.as_ref(), events);
            if let Some(e) = read_error {
                bail!("cannot read the audit trail: {e}");
            }
            match verdict {
                Ok(head) => {
                    if let Some(n) = expect_events {
                        if head.events < n {
                            bail!(
                                "the audit trail holds {} events, fewer than the {n} expected: events were removed from its end",
                                head.events
                            );
                        }
                        if let Some(mac) = &expect_mac
                            && mac_at_expected.as_deref() != Some(mac.to_ascii_lowercase().as_str())
                        {
                            bail!("event {n} does not have the expected MAC: the trail was rewritten");
                        }
                    }
                    let pruned = match &anchor {
                        Some(a) => format!(
                            " (events 1 to {} pruned at {})",
                            a.seq,
                            jiff::Timestamp::from_millisecond(a.pruned_ms).unwrap_or_default()
                        ),
                        None => String::new(),
                    };
                    writeln!(
                        out,
                        "audit trail intact: {} events{pruned}; last MAC {}",
                        head.events, head.last_mac
                    )?;
                    Ok(())
                }
                Err(b) => bail!("audit trail broken at event {}: {}", b.seq, b.reason),
            }
        }
        AuditCommand::Search(a) => {
            let store = open(&a.dir)?;
            let query = AuditQuery {
                start_time: a.start_time,
                end_time: a.end_time,
                principal: a.principal,
                access_key_id: a.access_key_id,
                event_name: a.event_name,
                event_source: a.event_source,
                resource: a.resource,
                errors_only: a.errors_only,
                ..Default::default()
            };
            each(store.as_ref(), query, a.limit, |e| {
                writeln!(out, "{}", e.json)?;
                Ok(())
            })?;
            out.flush()?;
            Ok(())
        }
        AuditCommand::Prune {
            dir,
            before,
            older_than_days,
        } => {
            let now = jiff::Timestamp::now();
            let cut = match (before, older_than_days) {
                (Some(t), _) => t
                    .parse::<jiff::Timestamp>()
                    .with_context(|| format!("--before {t:?} is not an RFC 3339 time"))?,
                (None, Some(days)) => now - jiff::SignedDuration::from_hours(24 * i64::from(days)),
                (None, None) => bail!("give --before or --older-than-days"),
            };
            let chain = crate::init::audit_chain(&crate::root::master_key(&dir.data_dir, None)?);
            let store = open(&dir)?;
            let pruned = tumbler_audit::prune(store.as_ref(), &chain, cut, now.as_millisecond())?;
            if pruned.events == 0 {
                writeln!(out, "nothing to prune: no event before {cut} but the newest")?;
            } else {
                writeln!(
                    out,
                    "pruned {} events recorded before {cut}; the chain now starts after event {}",
                    pruned.events, pruned.through_seq
                )?;
            }
            Ok(())
        }
        AuditCommand::Export { dir, after_seq } => {
            let store = open(&dir)?;
            let query = AuditQuery {
                after_seq,
                ..Default::default()
            };
            each(store.as_ref(), query, 0, |e| {
                // The stored JSON goes out byte for byte: the MAC is over
                // exactly it (or over the block that holds it).
                let block = e.block.as_deref().map_or(String::new(), |b| {
                    use base64::Engine;
                    format!(r#","block":"{}""#, base64::engine::general_purpose::STANDARD.encode(b))
                });
                writeln!(
                    out,
                    r#"{{"seq":{},"mac":"{}"{block},"event":{}}}"#,
                    e.seq,
                    hex_encode(&e.mac),
                    e.json
                )?;
                Ok(())
            })?;
            out.flush()?;
            Ok(())
        }
    }
}

fn hex_encode(b: &[u8]) -> String {
    hex::encode(b)
}
