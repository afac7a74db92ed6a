-- The audit trail: one row per API call. `seq` numbers events without gaps
-- (the writer assigns it); `mac` chains each event to the one before it
-- (see tumbler-audit). The JSON is the whole CloudTrail-shaped event; search
-- filters on it with SQLite's JSON functions, so no column can disagree with
-- what the chain protects.
CREATE TABLE audit_events (
    seq  INTEGER PRIMARY KEY,
    json TEXT NOT NULL,
    mac  BLOB NOT NULL
);
