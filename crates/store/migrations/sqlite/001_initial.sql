-- Secrets: sortable/filterable fields are columns; everything else about a
-- secret is `meta`, a JSON document owned by the secrets domain.
-- AUTOINCREMENT: an id is never reused, so a write computed against a
-- purged secret can never land on a new secret that took its name.
CREATE TABLE secrets (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    account          TEXT    NOT NULL,
    region           TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    arn              TEXT    NOT NULL UNIQUE,
    revision         INTEGER NOT NULL,
    created_ms       INTEGER NOT NULL,
    last_changed_ms  INTEGER NOT NULL,
    last_accessed_ms INTEGER,
    deleted_ms       INTEGER,
    purge_at_ms      INTEGER,
    meta             TEXT    NOT NULL,
    UNIQUE (account, region, name)
);
CREATE INDEX secrets_by_created ON secrets (account, region, created_ms, id);
CREATE INDEX secrets_by_changed ON secrets (account, region, last_changed_ms, id);
CREATE INDEX secrets_by_accessed ON secrets (account, region, COALESCE(last_accessed_ms, 0), id);
CREATE INDEX secrets_purge ON secrets (purge_at_ms) WHERE purge_at_ms IS NOT NULL;

-- One row per version. A version without a value is the rotation
-- placeholder (AWSPENDING before createSecret).
CREATE TABLE secret_versions (
    secret_id        INTEGER NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    version_id       TEXT    NOT NULL,
    created_ms       INTEGER NOT NULL,
    last_accessed_ms INTEGER,
    value_kind       TEXT,
    kms_key_id       TEXT,
    wrapped_key      BLOB,
    ciphertext       BLOB,
    PRIMARY KEY (secret_id, version_id),
    CHECK ((value_kind IS NULL) = (ciphertext IS NULL))
) WITHOUT ROWID;

-- A label sits on at most one version (the primary key) and always on a
-- version that exists (the foreign key): the store itself keeps the staging
-- label invariants, whatever the code above it does.
CREATE TABLE version_stages (
    secret_id  INTEGER NOT NULL,
    stage      TEXT    NOT NULL,
    version_id TEXT    NOT NULL,
    PRIMARY KEY (secret_id, stage),
    FOREIGN KEY (secret_id, version_id) REFERENCES secret_versions (secret_id, version_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX version_stages_by_version ON version_stages (secret_id, version_id);

-- KMS keys; material is wrapped by the root key and never stored in plaintext.
CREATE TABLE kms_keys (
    key_id           TEXT    PRIMARY KEY,
    account          TEXT    NOT NULL,
    region           TEXT    NOT NULL,
    arn              TEXT    NOT NULL UNIQUE,
    key_manager      TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    created_ms       INTEGER NOT NULL,
    current_material INTEGER NOT NULL,
    meta             TEXT    NOT NULL
);
CREATE TABLE kms_key_material (
    key_id     TEXT    NOT NULL REFERENCES kms_keys (key_id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    wrapped    BLOB    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE kms_aliases (
    account    TEXT NOT NULL,
    region     TEXT NOT NULL,
    alias_name TEXT NOT NULL,
    key_id     TEXT NOT NULL REFERENCES kms_keys (key_id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (account, region, alias_name)
);

-- Principals and their access keys. The secret half of an access key is
-- sealed under a root-derived key: SigV4 needs it to recompute HMACs.
CREATE TABLE principals (
    arn        TEXT    PRIMARY KEY,
    account    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    unique_id  TEXT    NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    meta       TEXT    NOT NULL
);
CREATE TABLE access_keys (
    access_key_id TEXT    PRIMARY KEY,
    principal_arn TEXT    NOT NULL REFERENCES principals (arn) ON DELETE CASCADE,
    status        TEXT    NOT NULL,
    sealed_secret BLOB    NOT NULL,
    created_ms    INTEGER NOT NULL
);
