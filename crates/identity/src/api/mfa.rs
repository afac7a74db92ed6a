//! Virtual MFA devices (TOTP, RFC 6238: six digits, 30-second steps,
//! HMAC-SHA1, which authenticator apps use) and the MFA check of
//! GetSessionToken and AssumeRole.
//!
//! A device's seed is sealed under a root-derived key and shown once, by
//! CreateVirtualMFADevice. Each accepted code's time step is stored, and a
//! code of that step or an earlier one is refused afterwards, so a code
//! can't be replayed.

use aws_lc_rs::hmac;
use tumbler_store::{MfaDeviceRow, StoreError, Write};
use tumbler_wire::AwsError;
use tumbler_wire::query::Xml;

use super::{
    Call, already_exists, check_name, check_path, db, delete_conflict, internal, iso, limit_exceeded, no_such_entity,
    page, page_end, required, user_xml, validation,
};
use crate::Identity;
use crate::authz::PrincipalMeta;

const STEP_S: i64 = 30;
/// 40 bytes: 64 base32 characters, the size of AWS's seeds.
const SEED_BYTES: usize = 40;
/// AWS's limit of MFA devices per user.
const MAX_DEVICES_PER_USER: usize = 8;
/// Steps either side of now whose codes are accepted (clock drift).
const DRIFT_STEPS: i64 = 1;
/// How far back EnableMFADevice's first code may be: a person reads two
/// codes off the device one after the other and then submits both.
const ENABLE_PAST_STEPS: i64 = 10;

/// RFC 4226's HOTP truncated to six digits. It is a dozen lines over
/// aws-lc-rs's HMAC, which the project already uses; a TOTP crate would
/// bring in a second cryptography stack.
fn hotp(seed: &[u8], counter: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let h = tag.as_ref();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[offset] & 0x7f, h[offset + 1], h[offset + 2], h[offset + 3]]);
    format!("{:06}", bin % 1_000_000)
}

fn same_code(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The TOTP step `code` belongs to, within the drift window around `now_s`.
fn matching_step(seed: &[u8], code: &str, now_s: i64) -> Option<i64> {
    let now = now_s.div_euclid(STEP_S);
    step_in(seed, code, now - DRIFT_STEPS, now + DRIFT_STEPS)
}

/// The step in `first..=last` whose code is `code`.
fn step_in(seed: &[u8], code: &str, first: i64, last: i64) -> Option<i64> {
    // Every candidate is computed, so the time taken says nothing of which matched.
    let mut found = None;
    for step in first..=last {
        if same_code(&hotp(seed, step), code) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

fn code_param<'p>(call: &'p Call<'_>, name: &str) -> Result<&'p str, AwsError> {
    let code = required(call.params, name)?;
    let member = super::member_name(name);
    if code.len() != 6 {
        return Err(validation(&member, code, "Member must have length 6"));
    }
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(validation(
            &member,
            code,
            "Member must satisfy regular expression pattern: [\\d]+",
        ));
    }
    Ok(code)
}

fn serial_param<'p>(call: &'p Call<'_>) -> Result<&'p str, AwsError> {
    let serial = required(call.params, "SerialNumber")?;
    check_serial(serial)?;
    Ok(serial)
}

fn check_serial(serial: &str) -> Result<(), AwsError> {
    let len = serial.chars().count();
    if !(9..=256).contains(&len) {
        return Err(validation(
            "serialNumber",
            serial,
            "Member must have length between 9 and 256",
        ));
    }
    if !serial
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=/:,.@-".contains(c))
    {
        return Err(validation(
            "serialNumber",
            serial,
            "Member must satisfy regular expression pattern: [\\w+=/:,.@-]+",
        ));
    }
    Ok(())
}

fn invalid_code() -> AwsError {
    AwsError::custom(
        "InvalidAuthenticationCode",
        403,
        "Authentication code for device is not valid.",
    )
}

/// STS's answer to any failed MFA check: which part failed is not said.
fn mfa_failed() -> AwsError {
    AwsError::custom(
        "AccessDenied",
        403,
        "MultiFactorAuthentication failed with invalid MFA one time pass code.",
    )
}

/// A code that was checked for a session request but not yet consumed.
pub(super) struct MfaCode {
    serial: String,
    user_arn: String,
    step: i64,
}

impl Identity {
    fn open_seed(&self, device: &MfaDeviceRow) -> Result<tumbler_types::Sensitive, AwsError> {
        self.mfa_kek
            .open(&device.sealed_seed, device.serial.as_bytes())
            .map_err(internal)
    }

    pub(super) fn create_virtual_mfa_device(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        let name = required(call.params, "VirtualMFADeviceName")?;
        check_name("VirtualMFADeviceName", name, 1, 226)?;
        check_path(call.params)?;
        let serial = format!("arn:aws:iam::{account}:mfa/{name}");
        self.allow(call, "iam:CreateVirtualMFADevice", &serial)?;
        let seed = tumbler_crypto::random_bytes(SEED_BYTES).map_err(internal)?;
        let row = MfaDeviceRow {
            serial: serial.clone(),
            account: account.clone(),
            sealed_seed: self.mfa_kek.seal(&seed, serial.as_bytes()).map_err(internal)?,
            created_ms: call.request.now.as_millisecond(),
            user_arn: None,
            enabled_ms: None,
            last_step: None,
        };
        match self.apply(call, vec![Write::CreateMfaDevice(row)]) {
            Ok(()) => {}
            Err(StoreError::Duplicate(_)) => {
                return Err(already_exists(
                    "MFADevice entity at the same path and name already exists.",
                ));
            }
            Err(e) => return Err(internal(e)),
        }
        // Base32StringSeed is a blob on the wire: base64 of the base32 text.
        let mut base32 = data_encoding::BASE32_NOPAD.encode(&seed);
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, base32.as_bytes());
        zeroize::Zeroize::zeroize(&mut base32);
        let mut x = Xml::new();
        x.open("VirtualMFADevice")
            .field("SerialNumber", &serial)
            .field("Base32StringSeed", &encoded)
            .close("VirtualMFADevice");
        Ok(Some(x.into_string()))
    }

    pub(super) fn enable_mfa_device(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let user_arn = self.kind_arn(call, "user")?;
        let serial = serial_param(call)?;
        let first = code_param(call, "AuthenticationCode1")?;
        let second = code_param(call, "AuthenticationCode2")?;
        self.allow(call, "iam:EnableMFADevice", &user_arn)?;
        let (user, _) = self.principal_of_kind(call, "user")?;
        let devices = db(self.store.mfa_devices(&call.caller.account))?;
        let device = devices
            .iter()
            .find(|d| d.serial == serial)
            .ok_or_else(|| no_such_entity(format!("VirtualMFADevice with serial number {serial} doesn't exist.")))?;
        if device.user_arn.is_some() {
            return Err(already_exists("MFA Device is already in use."));
        }
        if devices
            .iter()
            .filter(|d| d.user_arn.as_deref() == Some(&user.arn))
            .count()
            >= MAX_DEVICES_PER_USER
        {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for MFADevicesPerUser: {MAX_DEVICES_PER_USER}"
            )));
        }
        // Two consecutive codes prove the device is in sync.
        let seed = self.open_seed(device)?;
        let now = call.request.now.as_second().div_euclid(STEP_S);
        let step = step_in(seed.expose(), first, now - ENABLE_PAST_STEPS, now).ok_or_else(invalid_code)?;
        if !same_code(&hotp(seed.expose(), step + 1), second) {
            return Err(invalid_code());
        }
        match self.apply(
            call,
            vec![Write::EnableMfaDevice {
                serial: serial.into(),
                user_arn: user.arn,
                enabled_ms: call.request.now.as_millisecond(),
                last_step: step + 1,
            }],
        ) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(already_exists("MFA Device is already in use.")),
            Err(e) => Err(internal(e)),
        }
    }

    pub(super) fn deactivate_mfa_device(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let name = self.user_or_caller(call)?;
        let user_arn = super::user_arn(&call.caller.account, &name);
        let serial = serial_param(call)?;
        self.allow(call, "iam:DeactivateMFADevice", &user_arn)?;
        let (user, _) = self.user(&call.caller.account, &name)?;
        match self.apply(
            call,
            vec![Write::DeactivateMfaDevice {
                serial: serial.into(),
                user_arn: user.arn,
            }],
        ) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(no_such_entity(format!(
                "MFA Device with serial number {serial} does not exist."
            ))),
            Err(e) => Err(internal(e)),
        }
    }

    pub(super) fn delete_virtual_mfa_device(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let serial = serial_param(call)?;
        self.allow(call, "iam:DeleteVirtualMFADevice", serial)?;
        let not_found = || no_such_entity(format!("VirtualMFADevice with serial number {serial} doesn't exist."));
        let device = db(self.store.mfa_device(serial))?
            .filter(|d| d.account == call.caller.account)
            .ok_or_else(not_found)?;
        if device.user_arn.is_some() {
            return Err(delete_conflict("MFA Device is still in use."));
        }
        match self.apply(call, vec![Write::DeleteMfaDevice { serial: serial.into() }]) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(not_found()),
            Err(e) => Err(internal(e)),
        }
    }

    pub(super) fn list_mfa_devices(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let name = self.user_or_caller(call)?;
        let user_arn = super::user_arn(&call.caller.account, &name);
        self.allow(call, "iam:ListMFADevices", &user_arn)?;
        let (user, _) = self.user(&call.caller.account, &name)?;
        let devices = db(self.store.mfa_devices(&call.caller.account))?
            .into_iter()
            .filter(|d| d.user_arn.as_deref() == Some(&user.arn))
            .map(|d| (d.serial.clone(), d))
            .collect();
        let (devices, next) = page(call.params, devices)?;
        let mut x = Xml::new();
        x.open("MFADevices");
        for d in &devices {
            x.open("member")
                .field("UserName", &user.name)
                .field("SerialNumber", &d.serial)
                .field("EnableDate", &iso(d.enabled_ms.unwrap_or_default()))
                .close("member");
        }
        x.close("MFADevices");
        page_end(&mut x, next);
        Ok(Some(x.into_string()))
    }

    pub(super) fn list_virtual_mfa_devices(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        let status = call.params.get("AssignmentStatus").map(String::as_str).unwrap_or("Any");
        if !["Assigned", "Unassigned", "Any"].contains(&status) {
            return Err(validation(
                "assignmentStatus",
                status,
                "Member must satisfy enum value set: [Assigned, Unassigned, Any]",
            ));
        }
        self.allow(
            call,
            "iam:ListVirtualMFADevices",
            &format!("arn:aws:iam::{account}:mfa/"),
        )?;
        let devices = db(self.store.mfa_devices(account))?
            .into_iter()
            .filter(|d| match status {
                "Assigned" => d.user_arn.is_some(),
                "Unassigned" => d.user_arn.is_none(),
                _ => true,
            })
            .map(|d| (d.serial.clone(), d))
            .collect();
        let (devices, next) = page(call.params, devices)?;
        let mut x = Xml::new();
        x.open("VirtualMFADevices");
        for d in &devices {
            x.open("member").field("SerialNumber", &d.serial);
            if let Some(user) = d.user_arn.as_deref().map(|arn| self.store.principal(arn)) {
                if let Some(user) = db(user)? {
                    x.open("User");
                    user_xml(&mut x, &user, &PrincipalMeta::parse(&user.meta));
                    x.close("User");
                }
                x.field("EnableDate", &iso(d.enabled_ms.unwrap_or_default()));
            }
            x.close("member");
        }
        x.close("VirtualMFADevices");
        page_end(&mut x, next);
        Ok(Some(x.into_string()))
    }

    /// GetSessionToken's and AssumeRole's SerialNumber and TokenCode: None
    /// when neither is given; the checked code otherwise, still to be
    /// consumed with [`Identity::consume_mfa_code`] once the call is allowed.
    pub(super) fn check_mfa(&self, call: &Call<'_>) -> Result<Option<MfaCode>, AwsError> {
        let (serial, code) = match (call.params.get("SerialNumber"), call.params.get("TokenCode")) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => (serial_param(call)?, code_param(call, "TokenCode")?),
            _ => return Err(mfa_failed()),
        };
        // Only an IAM user (long-term keys, or a GetSessionToken session)
        // has MFA devices.
        let caller = call.caller;
        let is_user = caller.kind == "user" && caller.session.as_ref().is_none_or(|s| s.role_arn.is_none());
        if !is_user {
            return Err(mfa_failed());
        }
        let Some(device) = db(self.store.mfa_device(serial))? else {
            return Err(mfa_failed());
        };
        if device.user_arn.as_deref() != Some(&caller.arn) {
            return Err(mfa_failed());
        }
        let seed = self.open_seed(&device)?;
        let step = matching_step(seed.expose(), code, call.request.now.as_second()).ok_or_else(mfa_failed)?;
        if device.last_step.is_some_and(|last| step <= last) {
            return Err(mfa_failed());
        }
        Ok(Some(MfaCode {
            serial: device.serial,
            user_arn: caller.arn.clone(),
            step,
        }))
    }

    /// Mark a checked code used, with the call's audit event. Two calls
    /// racing with the same code: only one gets through.
    pub(super) fn consume_mfa_code(&self, call: &Call<'_>, code: MfaCode) -> Result<(), AwsError> {
        let write = Write::UseMfaCode {
            serial: code.serial,
            user_arn: code.user_arn,
            step: code.step,
        };
        // Not `self.apply`: no IAM state the caches derive from changes.
        match tumbler_store::apply_journaled(self.store.as_ref(), call.journal, vec![write]) {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => Err(mfa_failed()),
            Err(e) => Err(internal(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 appendix B, truncated to six digits (the RFC shows eight).
        let seed = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(hotp(seed, time / STEP_S), code, "t={time}");
        }
    }

    #[test]
    fn codes_are_accepted_within_one_step_of_now() {
        let seed = b"12345678901234567890";
        let now = 1_111_111_111;
        let step = now / STEP_S;
        assert_eq!(matching_step(seed, &hotp(seed, step), now), Some(step));
        assert_eq!(matching_step(seed, &hotp(seed, step - 1), now), Some(step - 1));
        assert_eq!(matching_step(seed, &hotp(seed, step + 1), now), Some(step + 1));
        assert_eq!(matching_step(seed, &hotp(seed, step - 2), now), None);
        assert_eq!(matching_step(seed, &hotp(seed, step + 2), now), None);
    }
}
