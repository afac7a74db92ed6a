-- IAM groups are rows of `principals` (kind 'group'), with their policies in
-- inline_policies and policy_attachments like users' and roles'. This table
-- holds who is in which group.
CREATE TABLE group_members (
    group_arn TEXT NOT NULL REFERENCES principals (arn) ON DELETE CASCADE,
    user_arn  TEXT NOT NULL REFERENCES principals (arn) ON DELETE CASCADE,
    PRIMARY KEY (group_arn, user_arn)
) WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members (user_arn, group_arn);
