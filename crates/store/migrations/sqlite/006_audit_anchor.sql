-- Where the audit chain starts once old events are pruned: events 1..=seq
-- are gone, `mac` is event seq's chain MAC (the next event links to it), and
-- `anchor_mac` is a MAC over both under the chain key, so that nobody
-- without the root key can cut events off the start and write an anchor.
CREATE TABLE audit_anchor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    mac        BLOB    NOT NULL,
    anchor_mac BLOB    NOT NULL,
    pruned_ms  INTEGER NOT NULL
);
