//! Request timestamps: parsing `X-Amz-Date` / `Date`, and the clock checks.

use crate::{AuthLocation, ParsedAuth, SigV4Error};
use jiff::{SignedDuration, Timestamp, civil, tz::TimeZone};

/// Allowed clock skew either way, as AWS allows for header auth.
const SKEW: SignedDuration = SignedDuration::from_mins(15);

/// The longest presigned URL lifetime AWS accepts: seven days.
pub(crate) const MAX_EXPIRES_SECS: u64 = 604_800;

/// Parses the ISO 8601 basic form SigV4 uses, `yyyymmddTHHMMSSZ`, and nothing else.
pub(crate) fn parse_amz_date(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i32> {
        let digits = &b[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // At most four ASCII digits, so this cannot overflow.
        Some(digits.iter().fold(0, |n, d| n * 10 + i32::from(d - b'0')))
    };
    let dt = civil::DateTime::new(
        i16::try_from(num(0..4)?).ok()?,
        i8::try_from(num(4..6)?).ok()?,
        i8::try_from(num(6..8)?).ok()?,
        i8::try_from(num(9..11)?).ok()?,
        i8::try_from(num(11..13)?).ok()?,
        i8::try_from(num(13..15)?).ok()?,
        0,
    )
    .ok()?;
    TimeZone::UTC.to_timestamp(dt).ok()
}

/// Parses an HTTP `Date` header: the RFC 7231 IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, which RFC 2822 parsing covers), or the
/// SigV4 basic form, which some clients put in `Date` too.
pub(crate) fn parse_http_date(s: &str) -> Option<Timestamp> {
    if let Some(ts) = parse_amz_date(s) {
        return Some(ts);
    }
    jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(s).ok()
}

/// Formats as `yyyymmddTHHMMSSZ`, the form AWS uses in its messages and the
/// string to sign.
pub(crate) fn format_amz_date(ts: Timestamp) -> String {
    let dt = TimeZone::UTC.to_datetime(ts);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn plus(ts: Timestamp, d: SignedDuration) -> Timestamp {
    ts.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Checks the request time against `now`.
///
/// Header auth: the request time must be within 15 minutes of `now` either
/// way. Query (presigned) auth: `X-Amz-Expires` must be in 1..=604800, the URL
/// must not have expired (`X-Amz-Date + X-Amz-Expires >= now`), and the
/// request time must not be more than 15 minutes in the future.
pub fn check_time(auth: &ParsedAuth, now: Timestamp) -> Result<(), SigV4Error> {
    let t = auth.request_time;
    let earliest = match auth.location {
        AuthLocation::Header => plus(now, -SKEW),
        AuthLocation::Query => {
            let expires = auth.expires_secs.ok_or_else(|| {
                SigV4Error::Incomplete(
                    "AWS query-string parameters must include 'X-Amz-Expires'. \
                     Re-examine the query-string parameters."
                        .to_owned(),
                )
            })?;
            if expires == 0 {
                return Err(SigV4Error::Incomplete(
                    "X-Amz-Expires must be greater than 0".to_owned(),
                ));
            }
            if expires > MAX_EXPIRES_SECS {
                return Err(SigV4Error::Incomplete(format!(
                    "X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES_SECS}"
                )));
            }
            // `expires` is at most a week, so it fits in an i64.
            plus(now, -SignedDuration::from_secs(expires as i64))
        }
    };
    if t < earliest {
        let window = match auth.location {
            AuthLocation::Header => "15 min.".to_owned(),
            AuthLocation::Query => format!("{} sec.", auth.expires_secs.unwrap_or(0)),
        };
        return Err(SigV4Error::Expired(format!(
            "Signature expired: {} is now earlier than {} ({} - {window})",
            format_amz_date(t),
            format_amz_date(earliest),
            format_amz_date(now),
        )));
    }
    let latest = plus(now, SKEW);
    if t > latest {
        return Err(SigV4Error::Expired(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            format_amz_date(t),
            format_amz_date(latest),
            format_amz_date(now),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_the_basic_form() {
        let ts = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(ts.as_second(), 1_440_938_160);
        assert_eq!(format_amz_date(ts), "20150830T123600Z");
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "",
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20150830t123600Z",
            "20151330T123600Z",
            "20150830T126000Z",
            "20150830T246000Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "20150830T12360０Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_an_http_date() {
        let ts = parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT").unwrap();
        assert_eq!(format_amz_date(ts), "20150830T123600Z");
        assert_eq!(
            parse_http_date("20150830T123600Z").map(format_amz_date),
            Some("20150830T123600Z".to_owned())
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
