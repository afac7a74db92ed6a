//! A read-through cache in front of SQLite for the hot reads (a secret's
//! state and sealed values, KMS keys and aliases). This process owns the
//! store's only writer, so it knows every change: the writer invalidates
//! after each commit, before it answers anyone.
//!
//! A reader that loaded a row concurrently with a commit must not put the
//! old row back after the writer invalidated it. Every commit bumps a
//! generation under the cache lock; a reader inserts only if the generation
//! it saw before reading is still current, checked under the same lock.
//! The cache holds only what the store holds: ciphertext and metadata.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::{KmsKeyRow, SealedValue, SecretState};

/// Upper bound on cached secrets; beyond it the cache is cleared and refills
/// with what is read (simple, and keeps memory bounded for large stores).
const MAX_SECRETS: usize = 8192;

struct Entry {
    state: Arc<SecretState>,
    values: HashMap<String, Arc<SealedValue>>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    secrets: HashMap<i64, Entry>,
    by_name: HashMap<(String, String, String), i64>,
    by_arn: HashMap<String, i64>,
    kms_keys: HashMap<String, Arc<KmsKeyRow>>,
    kms_aliases: HashMap<(String, String, String), String>,
}

#[derive(Default)]
pub(crate) struct Cache {
    inner: RwLock<Inner>,
}

/// What a commit changed, for invalidation.
#[derive(Default)]
pub(crate) struct Changed {
    pub secrets: Vec<i64>,
    pub kms: bool,
}

impl Changed {
    pub(crate) fn is_empty(&self) -> bool {
        self.secrets.is_empty() && !self.kms
    }
}

impl Cache {
    pub(crate) fn generation(&self) -> u64 {
        self.inner.read().map(|i| i.generation).unwrap_or(u64::MAX)
    }

    pub(crate) fn secret_by_id(&self, id: i64) -> Option<Arc<SecretState>> {
        self.inner.read().ok()?.secrets.get(&id).map(|e| e.state.clone())
    }

    pub(crate) fn secret_by_name(&self, account: &str, region: &str, name: &str) -> Option<Arc<SecretState>> {
        let i = self.inner.read().ok()?;
        let id = i
            .by_name
            .get(&(account.to_owned(), region.to_owned(), name.to_owned()))?;
        i.secrets.get(id).map(|e| e.state.clone())
    }

    pub(crate) fn secret_by_arn(&self, arn: &str) -> Option<Arc<SecretState>> {
        let i = self.inner.read().ok()?;
        let id = i.by_arn.get(arn)?;
        i.secrets.get(id).map(|e| e.state.clone())
    }

    pub(crate) fn value(&self, id: i64, version_id: &str) -> Option<Arc<SealedValue>> {
        self.inner
            .read()
            .ok()?
            .secrets
            .get(&id)?
            .values
            .get(version_id)
            .cloned()
    }

    pub(crate) fn kms_key(&self, key_id: &str) -> Option<Arc<KmsKeyRow>> {
        self.inner.read().ok()?.kms_keys.get(key_id).cloned()
    }

    pub(crate) fn kms_alias(&self, account: &str, region: &str, alias: &str) -> Option<String> {
        let k = (account.to_owned(), region.to_owned(), alias.to_owned());
        self.inner.read().ok()?.kms_aliases.get(&k).cloned()
    }

    /// Insert what was read at `generation`, unless a commit came since.
    fn insert_if_current(&self, generation: u64, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut i) = self.inner.write()
            && i.generation == generation
        {
            f(&mut i);
        }
    }

    pub(crate) fn put_secret(&self, generation: u64, state: Arc<SecretState>) {
        self.insert_if_current(generation, |i| {
            if i.secrets.len() >= MAX_SECRETS {
                i.secrets.clear();
                i.by_name.clear();
                i.by_arn.clear();
            }
            let r = &state.row;
            i.by_name
                .insert((r.account.clone(), r.region.clone(), r.name.clone()), r.id);
            i.by_arn.insert(r.arn.clone(), r.id);
            i.secrets.insert(
                r.id,
                Entry {
                    state: state.clone(),
                    values: HashMap::new(),
                },
            );
        });
    }

    pub(crate) fn put_value(&self, generation: u64, id: i64, version_id: &str, value: Arc<SealedValue>) {
        self.insert_if_current(generation, |i| {
            // Values are cached only beside their secret's state, so that one
            // invalidation drops both.
            if let Some(e) = i.secrets.get_mut(&id) {
                e.values.insert(version_id.to_owned(), value);
            }
        });
    }

    pub(crate) fn put_kms_key(&self, generation: u64, key: Arc<KmsKeyRow>) {
        self.insert_if_current(generation, |i| {
            i.kms_keys.insert(key.key_id.clone(), key);
        });
    }

    pub(crate) fn put_kms_alias(&self, generation: u64, account: &str, region: &str, alias: &str, key_id: String) {
        self.insert_if_current(generation, |i| {
            i.kms_aliases
                .insert((account.to_owned(), region.to_owned(), alias.to_owned()), key_id);
        });
    }

    /// Called by the writer after a commit, before it answers.
    pub(crate) fn invalidate(&self, changed: &Changed) {
        let Ok(mut i) = self.inner.write() else {
            return;
        };
        i.generation += 1;
        for id in &changed.secrets {
            if let Some(e) = i.secrets.remove(id) {
                let r = &e.state.row;
                i.by_name.remove(&(r.account.clone(), r.region.clone(), r.name.clone()));
                i.by_arn.remove(&r.arn);
            }
        }
        if changed.kms {
            i.kms_keys.clear();
            i.kms_aliases.clear();
        }
    }
}
