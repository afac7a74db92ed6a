//! The STS Query API: GetCallerIdentity, GetSessionToken and AssumeRole.
//! Sessions are stateless: their claims travel sealed in the session token.

use tumbler_iam::{NamedPolicy, ParseOptions, PolicyKind};
use tumbler_wire::AwsError;
use tumbler_wire::query::{STS_XMLNS, Xml, response_xml};

use super::*;

/// At most this many managed session policies (PolicyArns), as on AWS.
const MAX_SESSION_POLICY_ARNS: usize = 10;

impl Identity {
    /// An STS Query call (Version 2011-06-15).
    pub fn sts_call(&self, call: &Call<'_>) -> Result<Vec<u8>, AwsError> {
        let action = call.params.get("Action").map(String::as_str).unwrap_or_default();
        let result = match action {
            "GetCallerIdentity" => {
                let mut x = Xml::new();
                x.field("Arn", &call.caller.arn)
                    .field("UserId", &call.caller.user_id)
                    .field("Account", &call.caller.account);
                x.into_string()
            }
            "GetSessionToken" => self.get_session_token(call)?,
            "AssumeRole" => self.assume_role(call)?,
            "" => return Err(AwsError::unknown_operation("The request names no Action.")),
            other => {
                return Err(AwsError::unknown_operation(format!(
                    "Could not find operation {other} for version 2011-06-15"
                )));
            }
        };
        Ok(response_xml(action, STS_XMLNS, Some(&result), call.request_id))
    }

    fn issue(&self, claims: SessionClaims) -> Result<(String, String), AwsError> {
        let token = self.sealer.seal(&claims).map_err(internal)?;
        let mut x = Xml::new();
        x.open("Credentials")
            .field("AccessKeyId", &claims.access_key_id)
            .field("SecretAccessKey", &claims.secret)
            .field("SessionToken", &token)
            .field("Expiration", &jiff_iso(claims.expires_s))
            .close("Credentials");
        Ok((x.into_string(), token))
    }

    fn get_session_token(&self, call: &Call<'_>) -> Result<String, AwsError> {
        let duration = int_param(call.params, "DurationSeconds", 900, 129_600)?.unwrap_or(43_200);
        if call.caller.session.is_some() || call.caller.kind != "user" {
            return Err(access_denied("Cannot call GetSessionToken with session credentials"));
        }
        let mfa = self.check_mfa(call)?;
        let now = call.request.now.as_second();
        let claims = SessionClaims {
            access_key_id: session_access_key_id()?,
            secret: new_secret_access_key()?.expose().to_owned(),
            issued_s: now,
            expires_s: now + duration,
            account: call.caller.account.clone(),
            arn: call.caller.arn.clone(),
            user_id: call.caller.user_id.clone(),
            role_arn: None,
            session_name: None,
            session_policy: None,
            tags: Vec::new(),
            policy_arns: Vec::new(),
            source_identity: None,
            mfa_s: mfa.as_ref().map(|_| now),
        };
        if let Some(code) = mfa {
            self.consume_mfa_code(call, code)?;
        }
        Ok(self.issue(claims)?.0)
    }

    fn assume_role(&self, call: &Call<'_>) -> Result<String, AwsError> {
        let params = call.params;
        let target = required(params, "RoleArn")?;
        if target.len() < 20 || target.len() > 2048 {
            return Err(validation(
                "roleArn",
                target,
                "Member must have length greater than or equal to 20",
            ));
        }
        let session_name = required(params, "RoleSessionName")?;
        let len = session_name.chars().count();
        if len < 2 {
            return Err(validation(
                "roleSessionName",
                session_name,
                "Member must have length greater than or equal to 2",
            ));
        }
        if len > 64 {
            return Err(validation(
                "roleSessionName",
                session_name,
                "Member must have length less than or equal to 64",
            ));
        }
        if !session_name.chars().all(is_name_char) {
            return Err(validation(
                "roleSessionName",
                session_name,
                "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            ));
        }
        let duration = int_param(params, "DurationSeconds", 900, 43_200)?.unwrap_or(3600);
        let session_policy = params.get("Policy").cloned();
        if let Some(p) = &session_policy {
            if p.chars().count() > SESSION_POLICY_SIZE {
                return Err(validation(
                    "policy",
                    "...",
                    &format!("Member must have length less than or equal to {SESSION_POLICY_SIZE}"),
                ));
            }
            match ParseOptions::new(PolicyKind::Session).parse(p) {
                Ok(_) => {}
                Err(e) => return Err(AwsError::custom("MalformedPolicyDocument", 400, e.to_string())),
            }
        }
        let tags = tags_param(params)?;
        let external_id = params.get("ExternalId");
        let policy_arns = self.session_policy_arns(params)?;
        let inherited_source = call.caller.session.as_ref().and_then(|s| s.source_identity.clone());
        let source_identity = match (source_identity_param(params)?, inherited_source) {
            (Some(asked), Some(had)) if asked != had => {
                return Err(access_denied(format!(
                    "User: {} is not authorized to perform: sts:SetSourceIdentity on resource: {target} because the session's source identity {had} can't be changed",
                    call.caller.arn
                )));
            }
            (asked, had) => asked.map(str::to_owned).or(had),
        };
        let mfa = self.check_mfa(call)?;

        let denied = || {
            access_denied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {target}",
                call.caller.arn
            ))
        };
        let role = db(self.store.principal(target))?
            .filter(|r| r.kind == "role")
            .ok_or_else(denied)?;
        let meta = PrincipalMeta::parse(&role.meta);
        let trust = meta
            .assume_role_policy_document
            .as_deref()
            .and_then(|d| tumbler_iam::parse_policy(d, PolicyKind::Trust).ok())
            .ok_or_else(denied)?;
        let trust = NamedPolicy::new(format!("{} trust policy", role.name), trust);
        let mut keys = request_tag_keys(&tags);
        keys.insert("sts:RoleSessionName", session_name);
        if let Some(id) = external_id {
            keys.insert("sts:ExternalId", id.clone());
        }
        if let Some(id) = &source_identity {
            keys.insert("sts:SourceIdentity", id.clone());
        }
        let now = call.request.now.as_second();
        if mfa.is_some() {
            // The code just checked is this request's MFA.
            keys.insert_bool("aws:MultiFactorAuthPresent", true);
            keys.insert("aws:MultiFactorAuthAge", "0");
        }
        // Passing session tags also needs sts:TagSession, and a source
        // identity sts:SetSourceIdentity, as on AWS.
        let mut actions = vec!["sts:AssumeRole"];
        if !tags.is_empty() {
            actions.push("sts:TagSession");
        }
        if source_identity.is_some() {
            actions.push("sts:SetSourceIdentity");
        }
        for action in actions {
            let auth = self.authorize(
                call.caller,
                action,
                target,
                &call.request,
                keys.clone(),
                Some(ResourcePolicy {
                    policy: &trust,
                    required: true,
                }),
            )?;
            if !auth.is_allowed() {
                return Err(if action == "sts:AssumeRole" {
                    denied()
                } else {
                    access_denied(format!(
                        "User: {} is not authorized to perform: {action} on resource: {target}",
                        call.caller.arn
                    ))
                });
            }
        }
        let chained = call.caller.session.as_ref().is_some_and(|s| s.role_arn.is_some());
        if chained && duration > 3600 {
            return Err(AwsError::validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            ));
        }
        let max = meta.max_session_duration.unwrap_or(3600);
        if duration > max {
            return Err(AwsError::validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        let assumed = tumbler_iam::Principal::assumed_role(&role.arn, session_name, &role.unique_id)
            .ok_or_else(|| internal("role ARN does not parse"))?;
        let packed = {
            let policy_chars = session_policy
                .as_deref()
                .map(|p| p.chars().filter(|c| !c.is_whitespace()).count())
                .unwrap_or(0);
            let tag_chars: usize = tags.iter().map(|t| t.key.len() + t.value.len()).sum();
            let arn_chars: usize = policy_arns.iter().map(String::len).sum();
            (policy_chars + tag_chars + arn_chars) * 100 / SESSION_POLICY_SIZE
        };
        let claims = SessionClaims {
            access_key_id: session_access_key_id()?,
            secret: new_secret_access_key()?.expose().to_owned(),
            issued_s: now,
            expires_s: now + duration,
            account: role.account.clone(),
            arn: assumed.arn.clone(),
            user_id: assumed.user_id.clone(),
            role_arn: Some(role.arn.clone()),
            session_name: Some(session_name.into()),
            session_policy,
            tags: tags.into_iter().map(|t| (t.key, t.value)).collect(),
            policy_arns,
            source_identity,
            // An MFA code now, or the MFA of the session this one chains from.
            mfa_s: match &mfa {
                Some(_) => Some(now),
                None => call.caller.session.as_ref().and_then(|s| s.mfa_s),
            },
        };
        let has_packed = claims.session_policy.is_some() || !claims.tags.is_empty() || !claims.policy_arns.is_empty();
        if packed > 100 {
            return Err(AwsError::custom(
                "PackedPolicyTooLarge",
                400,
                format!("Packed size of session policies and tags is {packed}% of the limit."),
            ));
        }
        if let Some(code) = mfa {
            self.consume_mfa_code(call, code)?;
        }
        let source_identity_out = claims.source_identity.clone();
        let (credentials, _) = self.issue(claims)?;
        let mut x = Xml::new();
        x.open("AssumedRoleUser")
            .field("AssumedRoleId", &assumed.user_id)
            .field("Arn", &assumed.arn)
            .close("AssumedRoleUser");
        let mut out = x.into_string() + &credentials;
        if has_packed {
            out.push_str(&format!("<PackedPolicySize>{packed}</PackedPolicySize>"));
        }
        if let Some(id) = &source_identity_out {
            let mut x = Xml::new();
            x.field("SourceIdentity", id);
            out.push_str(&x.into_string());
        }
        Ok(out)
    }

    /// AssumeRole's PolicyArns: managed policies that exist, at most ten.
    fn session_policy_arns(&self, params: &Params) -> Result<Vec<String>, AwsError> {
        let arns = indexed(params, "PolicyArns", Some("arn"));
        if arns.len() > MAX_SESSION_POLICY_ARNS {
            return Err(validation(
                "policyArns",
                "...",
                &format!("Member must have length less than or equal to {MAX_SESSION_POLICY_ARNS}"),
            ));
        }
        for arn in &arns {
            if arn.len() < 20 || arn.len() > 2048 || !arn.starts_with("arn:") {
                return Err(validation(
                    "policyArns.member.arn",
                    arn,
                    "Member must be an ARN of 20 to 2048 characters",
                ));
            }
            if self.policy(arn).is_err() {
                return Err(AwsError::custom(
                    "InvalidParameterValue",
                    400,
                    format!("Policy {arn} does not exist or is not attachable."),
                ));
            }
        }
        Ok(arns)
    }
}

/// `ASIA` + 16 characters: temporary credentials' access key ids.
/// AssumeRole's SourceIdentity: 2 to 64 of `[\w+=,.@-]` (so never the
/// reserved `aws:` prefix).
fn source_identity_param(params: &Params) -> Result<Option<&str>, AwsError> {
    let Some(id) = params.get("SourceIdentity") else {
        return Ok(None);
    };
    let len = id.chars().count();
    if !(2..=64).contains(&len) {
        return Err(validation(
            "sourceIdentity",
            id,
            "Member must have length between 2 and 64",
        ));
    }
    if !id.chars().all(is_name_char) {
        return Err(validation(
            "sourceIdentity",
            id,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        ));
    }
    Ok(Some(id))
}

fn session_access_key_id() -> Result<String, IdentityError> {
    Ok(format!("ASIA{}", random_from(ID_ALPHABET, 16)?))
}
