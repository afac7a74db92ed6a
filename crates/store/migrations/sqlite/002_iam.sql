-- IAM: users and roles are rows of `principals` (kind 'user' or 'role',
-- their tags, trust policy and limits in `meta`); these tables hold their
-- policies. Policy documents are stored as the caller sent them, so that
-- GetUserPolicy and GetPolicyVersion return them unchanged.
CREATE INDEX principals_by_kind ON principals (account, kind, name);
CREATE INDEX access_keys_by_principal ON access_keys (principal_arn);

CREATE TABLE inline_policies (
    principal_arn TEXT NOT NULL REFERENCES principals (arn) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    document      TEXT NOT NULL,
    PRIMARY KEY (principal_arn, name)
) WITHOUT ROWID;

-- Customer-managed policies; `meta` (owned by the identity domain) holds
-- the default version and the next version number.
CREATE TABLE managed_policies (
    arn        TEXT    PRIMARY KEY,
    account    TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    policy_id  TEXT    NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    meta       TEXT    NOT NULL
);
CREATE INDEX managed_policies_by_account ON managed_policies (account, name);

CREATE TABLE policy_versions (
    policy_arn TEXT    NOT NULL REFERENCES managed_policies (arn) ON DELETE CASCADE,
    version_id TEXT    NOT NULL,
    document   TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (policy_arn, version_id)
) WITHOUT ROWID;

-- No foreign key on policy_arn: AWS-managed policies (arn:aws:iam::aws:...)
-- are built in, not rows.
CREATE TABLE policy_attachments (
    principal_arn TEXT NOT NULL REFERENCES principals (arn) ON DELETE CASCADE,
    policy_arn    TEXT NOT NULL,
    PRIMARY KEY (principal_arn, policy_arn)
) WITHOUT ROWID;
CREATE INDEX policy_attachments_by_policy ON policy_attachments (policy_arn, principal_arn);
