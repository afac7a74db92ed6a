//! awsQuery (STS, IAM): form-encoded parameters in, XML out.
//! The XML we send is small and fixed-shape, so it is written directly
//! rather than through a serializer.

use std::collections::BTreeMap;

use crate::AwsError;

/// Parameters of a Query request: the form body merged over the URL query
/// (presigned GET requests carry everything in the URL).
pub fn parse_params(url_query: Option<&str>, body: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(q) = url_query {
        out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    out.extend(form_urlencoded::parse(body).into_owned());
    out
}

pub const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub const IAM_XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// Builds the `<{Action}Result>` part of a response, element by element.
#[derive(Default)]
pub struct Xml(String);

impl Xml {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    /// `<tag>escaped value</tag>`
    pub fn field(&mut self, tag: &str, value: &str) -> &mut Self {
        self.open(tag);
        self.0.push_str(&escape(value));
        self.close(tag)
    }

    pub fn opt_field(&mut self, tag: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.field(tag, v);
        }
        self
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A response whose result is `result` (None: an action without a result
/// element, such as IAM's DeleteUser).
pub fn response_xml(action: &str, xmlns: &str, result: Option<&str>, request_id: &str) -> Vec<u8> {
    let result = match result {
        Some(r) => format!("  <{action}Result>{r}</{action}Result>\n"),
        None => String::new(),
    };
    format!(
        "<{action}Response xmlns=\"{xmlns}\">\n{result}  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  \
         </ResponseMetadata>\n</{action}Response>\n",
        escape(request_id)
    )
    .into_bytes()
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<{Action}Response xmlns=..><{Action}Result>{fields}</..><ResponseMetadata>..`
pub fn response(action: &str, xmlns: &str, fields: &[(&str, &str)], request_id: &str) -> Vec<u8> {
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!("<{k}>{}</{k}>", escape(v)));
    }
    format!(
        "<{action}Response xmlns=\"{xmlns}\">\n  <{action}Result>{body}</{action}Result>\n  \
         <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        escape(request_id)
    )
    .into_bytes()
}

/// The code, status and sender/receiver that Query services use for an
/// error the JSON services name differently.
pub fn query_error(e: &AwsError) -> (&'static str, u16) {
    match e.code {
        "UnrecognizedClientException" => ("InvalidClientTokenId", 403),
        "InvalidSignatureException" if e.message.starts_with("Signature expired") => ("SignatureDoesNotMatch", 403),
        "InvalidSignatureException" => ("SignatureDoesNotMatch", 403),
        "IncompleteSignatureException" => ("IncompleteSignature", 400),
        "MissingAuthenticationTokenException" => ("MissingAuthenticationToken", 403),
        "ExpiredTokenException" => ("ExpiredToken", 400),
        "UnknownOperationException" => ("InvalidAction", 400),
        "ValidationException" => ("ValidationError", 400),
        "AccessDeniedException" => ("AccessDenied", 403),
        "InternalServiceError" => ("InternalFailure", 500),
        other => (other, e.status),
    }
}

pub fn error_body(e: &AwsError, xmlns: &str, request_id: &str) -> (u16, Vec<u8>) {
    let (code, status) = query_error(e);
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{xmlns}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    \
         <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        escape(&e.message),
        escape(request_id)
    );
    (status, body.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_xml() {
        let p = parse_params(Some("Action=GetCallerIdentity"), b"Version=2011-06-15&X=a%26b");
        assert_eq!(p["Action"], "GetCallerIdentity");
        assert_eq!(p["X"], "a&b");
        let r = String::from_utf8(response("GetCallerIdentity", "ns", &[("Arn", "a<b")], "rid")).unwrap();
        assert!(r.contains("<Arn>a&lt;b</Arn>"));
        let (s, b) = error_body(&AwsError::unrecognized_client("bad"), "ns", "r");
        assert_eq!(s, 403);
        assert!(
            String::from_utf8(b)
                .unwrap()
                .contains("<Code>InvalidClientTokenId</Code>")
        );
    }
}
