//! Semantics of the extended CONNECT request (RFC 9220) and its response, on decoded
//! QPACK field lists. Pure functions: the transport decides what to do with the result.

use crate::codes::H3_MESSAGE_ERROR;
use crate::error::WireError;
use crate::qpack::Field;

/// `:protocol` tokens that open a WebTransport session.
pub const PROTOCOL_DRAFT: &str = "webtransport";
pub const PROTOCOL_H3: &str = "webtransport-h3";
/// Request header Chromium sends in draft-02 and the response header it then requires.
pub const DRAFT02_REQUEST_HEADER: &str = "sec-webtransport-http3-draft02";
pub const DRAFT_RESPONSE_HEADER: &str = "sec-webtransport-http3-draft";

/// A well-formed WebTransport CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    /// Regular (non-pseudo) header fields, in order.
    pub headers: Vec<Field>,
}

impl ConnectRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// The request's field section, pseudo-headers first, as a client sends it.
    pub fn fields(&self) -> Vec<(&str, &str)> {
        let mut f = vec![
            (":method", "CONNECT"),
            (":protocol", self.protocol.as_str()),
            (":scheme", self.scheme.as_str()),
            (":authority", self.authority.as_str()),
            (":path", self.path.as_str()),
        ];
        f.extend(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        f
    }
    /// Whether the client spoke draft-02 and expects the draft version response header.
    pub fn wants_draft02_response(&self) -> bool {
        self.header(DRAFT02_REQUEST_HEADER).is_some()
    }
}

/// Why a request is not a WebTransport session: a status to answer with, or a malformed
/// message (stream error H3_MESSAGE_ERROR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    Respond(u16, &'static str),
    Malformed(WireError),
}

fn malformed(msg: impl Into<String>) -> RequestError {
    RequestError::Malformed(WireError::new(H3_MESSAGE_ERROR, msg))
}

/// Split pseudo-header fields from regular ones, enforcing RFC 9114 §4.3: pseudo-headers
/// first, each at most once.
fn split_pseudo(
    fields: &[Field],
    allowed: &[&str],
) -> Result<(Vec<Field>, Vec<Field>), RequestError> {
    let mut pseudo: Vec<Field> = Vec::new();
    let mut regular = Vec::new();
    for (name, value) in fields {
        if let Some(stripped) = name.strip_prefix(':') {
            if !regular.is_empty() {
                return Err(malformed("pseudo-header after regular header"));
            }
            if !allowed.contains(&stripped) {
                return Err(malformed(format!("unknown pseudo-header {name}")));
            }
            if pseudo.iter().any(|(n, _)| n == stripped) {
                return Err(malformed(format!("duplicate pseudo-header {name}")));
            }
            pseudo.push((stripped.to_string(), value.clone()));
        } else {
            if matches!(
                name.as_str(),
                "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
            ) {
                return Err(malformed(format!("connection-specific header {name}")));
            }
            regular.push((name.clone(), value.clone()));
        }
    }
    Ok((pseudo, regular))
}

/// Classify a request's fields.
pub fn parse_request(fields: &[Field]) -> Result<ConnectRequest, RequestError> {
    let (pseudo, headers) = split_pseudo(
        fields,
        &["method", "protocol", "scheme", "authority", "path"],
    )?;
    let get = |n: &str| pseudo.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let Some(method) = get("method") else {
        return Err(malformed("request without :method"));
    };
    if method != "CONNECT" {
        if get("protocol").is_some() {
            return Err(malformed(":protocol on a non-CONNECT request"));
        }
        return Err(RequestError::Respond(
            404,
            "only WebTransport sessions are served here",
        ));
    }
    let Some(protocol) = get("protocol") else {
        return Err(RequestError::Respond(501, "plain CONNECT is not supported"));
    };
    let (Some(scheme), Some(authority), Some(path)) =
        (get("scheme"), get("authority"), get("path"))
    else {
        return Err(malformed(
            "extended CONNECT without :scheme, :authority or :path",
        ));
    };
    if path.is_empty() || authority.is_empty() {
        return Err(malformed("empty :path or :authority"));
    }
    if protocol != PROTOCOL_DRAFT && protocol != PROTOCOL_H3 {
        return Err(RequestError::Respond(501, "unsupported :protocol"));
    }
    Ok(ConnectRequest {
        protocol,
        scheme,
        authority,
        path,
        headers,
    })
}

/// The `:status` of a response, with its regular headers.
pub fn parse_response(fields: &[Field]) -> Result<(u16, Vec<Field>), WireError> {
    let (pseudo, headers) = split_pseudo(fields, &["status"]).map_err(|e| match e {
        RequestError::Malformed(w) => w,
        RequestError::Respond(..) => WireError::new(H3_MESSAGE_ERROR, "bad response"),
    })?;
    let status = pseudo
        .first()
        .and_then(|(_, v)| v.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| WireError::new(H3_MESSAGE_ERROR, "response without a valid :status"))?;
    Ok((status, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<Field> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn chromium_request() {
        let r = parse_request(&f(&[
            (":method", "CONNECT"),
            (":scheme", "https"),
            (":authority", "127.0.0.1:4433"),
            (":path", "/echo"),
            (":protocol", "webtransport"),
            ("sec-webtransport-http3-draft02", "1"),
            ("origin", "http://127.0.0.1:8000"),
        ]))
        .unwrap();
        assert_eq!(r.path, "/echo");
        assert_eq!(r.header("origin"), Some("http://127.0.0.1:8000"));
        assert!(r.wants_draft02_response());
    }

    #[test]
    fn classification() {
        let get = f(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
        ]);
        assert_eq!(
            parse_request(&get),
            Err(RequestError::Respond(
                404,
                "only WebTransport sessions are served here"
            ))
        );
        let other = f(&[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
        ]);
        assert!(matches!(
            parse_request(&other),
            Err(RequestError::Respond(501, _))
        ));
        let h3 = f(&[
            (":method", "CONNECT"),
            (":protocol", "webtransport-h3"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
        ]);
        assert_eq!(parse_request(&h3).unwrap().protocol, "webtransport-h3");
        let malformed_cases = [
            f(&[
                (":method", "CONNECT"),
                (":protocol", "webtransport"),
                (":authority", "a"),
                (":path", "/"),
            ]),
            f(&[("origin", "x"), (":method", "CONNECT")]),
            f(&[(":method", "CONNECT"), (":method", "CONNECT")]),
            f(&[(":method", "CONNECT"), (":bogus", "1")]),
            f(&[
                (":method", "CONNECT"),
                (":protocol", "webtransport"),
                (":scheme", "https"),
                (":authority", "a"),
                (":path", "/"),
                ("connection", "close"),
            ]),
            f(&[]),
        ];
        for m in malformed_cases {
            assert!(
                matches!(parse_request(&m), Err(RequestError::Malformed(ref w)) if w.code == H3_MESSAGE_ERROR),
                "{m:?}"
            );
        }
    }

    #[test]
    fn responses() {
        assert_eq!(parse_response(&f(&[(":status", "200")])).unwrap().0, 200);
        assert!(parse_response(&f(&[(":status", "abc")])).is_err());
        assert!(parse_response(&f(&[("server", "x")])).is_err());
    }
}
