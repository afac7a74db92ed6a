//! CloudTrail's LookupEvents over the audit trail, so that
//! `aws cloudtrail lookup-events` works against Tumbler: the caller's
//! account and region, newest first, one lookup attribute, 50 per page.

use serde::Deserialize;
use serde_json::{Value, json};
use tumbler_store::{AuditQuery, Store};
use tumbler_wire::AwsError;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LookupEventsRequest {
    #[serde(default)]
    lookup_attributes: Vec<LookupAttribute>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    event_category: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LookupAttribute {
    attribute_key: String,
    attribute_value: String,
}

const MAX_RESULTS: i64 = 50;

fn invalid(code: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::custom(code, 400, message)
}

fn rfc3339(epoch: f64) -> Result<String, AwsError> {
    jiff::Timestamp::from_second(epoch.floor() as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .map_err(|_| invalid("InvalidTimeRangeException", "The time is out of range."))
}

/// Answer a LookupEvents body for a caller in `account`, signed for `region`.
pub fn lookup_events(store: &dyn Store, account: &str, region: &str, body: &[u8]) -> Result<Vec<u8>, AwsError> {
    let req: LookupEventsRequest = tumbler_wire::decode(body)?;
    let mut query = AuditQuery {
        descending: true,
        account: Some(account.to_owned()),
        region: Some(region.to_owned()),
        ..Default::default()
    };
    if req.lookup_attributes.len() > 1 {
        return Err(invalid(
            "InvalidLookupAttributesException",
            "You can specify only one lookup attribute.",
        ));
    }
    if let Some(a) = req.lookup_attributes.first() {
        let value = a.attribute_value.clone();
        if value.is_empty() || value.chars().count() > 2000 {
            return Err(invalid(
                "InvalidLookupAttributesException",
                "AttributeValue must be 1 to 2000 characters.",
            ));
        }
        match a.attribute_key.as_str() {
            "EventId" => query.event_id = Some(value),
            "EventName" => query.event_name = Some(value),
            "EventSource" => query.event_source = Some(value),
            "AccessKeyId" => query.access_key_id = Some(value),
            "Username" => query.user_name = Some(value),
            "ResourceName" => query.resource = Some(value),
            "ResourceType" => query.resource_type = Some(value),
            "ReadOnly" => match value.as_str() {
                "true" => query.read_only = Some(true),
                "false" => query.read_only = Some(false),
                _ => {
                    return Err(invalid(
                        "InvalidLookupAttributesException",
                        "ReadOnly must be true or false.",
                    ));
                }
            },
            other => {
                return Err(invalid(
                    "InvalidLookupAttributesException",
                    format!(
                        "{other} is not a lookup attribute: use EventId, EventName, ReadOnly, Username, ResourceType, ResourceName, EventSource or AccessKeyId."
                    ),
                ));
            }
        }
    }
    if let (Some(s), Some(e)) = (req.start_time, req.end_time)
        && s > e
    {
        return Err(invalid(
            "InvalidTimeRangeException",
            "The start time must be before the end time.",
        ));
    }
    query.start_time = req.start_time.map(rfc3339).transpose()?;
    query.end_time = req.end_time.map(rfc3339).transpose()?;
    if let Some(c) = &req.event_category
        && c != "insight"
    {
        return Err(invalid(
            "InvalidEventCategoryException",
            "EventCategory must be insight.",
        ));
    }
    let limit = match req.max_results {
        None => MAX_RESULTS,
        Some(n) if (1..=MAX_RESULTS).contains(&n) => n,
        Some(_) => {
            return Err(invalid(
                "InvalidMaxResultsException",
                "MaxResults must be from 1 to 50.",
            ));
        }
    };
    if let Some(token) = &req.next_token {
        query.before_seq = token
            .strip_prefix("seq-")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 1)
            .ok_or_else(|| invalid("InvalidNextTokenException", "The NextToken is not valid."))?;
    }
    // Tumbler records no Insights events.
    let rows = if req.event_category.is_some() {
        Vec::new()
    } else {
        query.limit = limit as usize + 1;
        store.audit_events(&query).map_err(|e| {
            tracing::error!(error = %e, "cannot read the audit trail");
            AwsError::internal("An internal error occurred. Try the request again.")
        })?
    };
    let more = rows.len() > limit as usize;
    let mut events = Vec::new();
    let mut last_seq = 0;
    for row in rows.into_iter().take(limit as usize) {
        last_seq = row.seq;
        let Ok(e) = serde_json::from_str::<Value>(&row.json) else {
            continue;
        };
        events.push(summary(&e, &row.json));
    }
    let mut out = json!({ "Events": events });
    if more {
        out["NextToken"] = json!(format!("seq-{last_seq}"));
    }
    Ok(serde_json::to_vec(&out).unwrap_or_default())
}

/// One event as LookupEvents lists it.
fn summary(e: &Value, raw: &str) -> Value {
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let identity = &e["userIdentity"];
    let user_name = s(&identity["userName"]).or_else(|| {
        // For a role session CloudTrail shows the session name.
        s(&identity["arn"]).and_then(|a| a.rsplit('/').next().map(str::to_owned))
    });
    let time = s(&e["eventTime"])
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or_default();
    let resources: Vec<Value> = e["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| json!({"ResourceType": r["type"], "ResourceName": r["ARN"]}))
                .collect()
        })
        .unwrap_or_default();
    let mut m = json!({
        "EventId": e["eventID"],
        "EventName": e["eventName"],
        "ReadOnly": if e["readOnly"].as_bool() == Some(true) { "true" } else { "false" },
        "EventTime": time,
        "EventSource": e["eventSource"],
        "Resources": resources,
        "CloudTrailEvent": raw,
    });
    if let Some(k) = s(&identity["accessKeyId"]) {
        m["AccessKeyId"] = json!(k);
    }
    if let Some(u) = user_name {
        m["Username"] = json!(u);
    }
    m
}
