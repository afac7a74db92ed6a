-- Where readers of the audit log of reads (the file `<db>-audit`) start
-- once its oldest records were pruned: the offset of the first record kept.
ALTER TABLE audit_anchor ADD COLUMN log_start INTEGER NOT NULL DEFAULT 0;
