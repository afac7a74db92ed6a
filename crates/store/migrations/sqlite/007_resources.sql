-- Resources Tumbler registers on behalf of services of its own (database
-- registrations; later Kafka clusters): one row each, the service's state
-- in `meta` (JSON only that service reads), `revision` for optimistic
-- concurrency as with secrets.
CREATE TABLE resources (
    arn        TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    account    TEXT NOT NULL,
    region     TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revision   INTEGER NOT NULL DEFAULT 0,
    meta       TEXT NOT NULL,
    UNIQUE (kind, account, region, name)
);
