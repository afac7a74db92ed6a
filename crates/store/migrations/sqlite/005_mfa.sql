-- IAM virtual MFA devices. The TOTP seed is sealed by the identity domain;
-- `last_step` is the newest TOTP time step accepted, so that no code is
-- accepted twice. A user with a device can't be deleted (no cascade).
CREATE TABLE mfa_devices (
    serial      TEXT    PRIMARY KEY,
    account     TEXT    NOT NULL,
    sealed_seed BLOB    NOT NULL,
    created_ms  INTEGER NOT NULL,
    user_arn    TEXT    REFERENCES principals (arn),
    enabled_ms  INTEGER,
    last_step   INTEGER
);
CREATE INDEX mfa_devices_by_account ON mfa_devices (account, serial);
CREATE INDEX mfa_devices_by_user ON mfa_devices (user_arn);
