//! Whether a webhook request is genuine and asks for work: a pure function of the Receiver's
//! type, token and event filter and the request's headers and body. Signatures and tokens are
//! compared in constant time.

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

use eddy_api::notify::ReceiverType;

/// What to do with a verified request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Reconcile the Receiver's resources.
    Reconcile,
    /// Genuine, but nothing to do (a ping, or an event type the Receiver does not act on).
    Ignore(String),
}

/// Why a request is refused: the status and the answer's text (which never echoes a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 401 or 403.
    pub status: StatusCode,
    /// Why.
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// Verifies a request to a Receiver of `receiver_type` with `token`, acting on `events` (all
/// when empty).
pub fn verify(
    receiver_type: ReceiverType,
    token: &str,
    events: &[String],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    match receiver_type {
        ReceiverType::Generic => Ok(Verified::Reconcile),
        ReceiverType::GenericHmac => {
            let signature =
                header("X-Signature").ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "missing X-Signature"))?;
            check_hmac(token, signature, body)?;
            Ok(Verified::Reconcile)
        }
        ReceiverType::Github => {
            let signature = header("X-Hub-Signature-256")
                .or_else(|| header("X-Hub-Signature"))
                .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256"))?;
            check_hmac(token, signature, body)?;
            let event =
                header("X-GitHub-Event").ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "missing X-GitHub-Event"))?;
            check_json(body)?;
            if event == "ping" {
                return Ok(Verified::Ignore("pong".into()));
            }
            Ok(filter(event, events))
        }
        ReceiverType::Gitlab => {
            let given =
                header("X-Gitlab-Token").ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "missing X-Gitlab-Token"))?;
            if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
                return Err(refuse(StatusCode::FORBIDDEN, "X-Gitlab-Token does not match"));
            }
            let event =
                header("X-Gitlab-Event").ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "missing X-Gitlab-Event"))?;
            check_json(body)?;
            Ok(filter(event, events))
        }
        ReceiverType::Bitbucket => {
            let signature =
                header("X-Hub-Signature").ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "missing X-Hub-Signature"))?;
            check_hmac(token, signature, body)?;
            let event = header("X-Event-Key").ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "missing X-Event-Key"))?;
            if event == "diagnostics:ping" {
                return Ok(Verified::Ignore("pong".into()));
            }
            check_json(body)?;
            Ok(filter(event, events))
        }
    }
}

fn filter(event: &str, events: &[String]) -> Verified {
    if events.is_empty() || events.iter().any(|wanted| wanted.eq_ignore_ascii_case(event)) {
        Verified::Reconcile
    } else {
        Verified::Ignore(format!("event {event:?} is not one this Receiver acts on"))
    }
}

/// The body must be the sender's JSON payload; GitHub may also send it form-encoded
/// (`payload=<json>`), which is accepted as it is.
fn check_json(body: &[u8]) -> Result<(), Refusal> {
    if body.starts_with(b"payload=") {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|err| refuse(StatusCode::BAD_REQUEST, format!("the body is not JSON: {err}")))
}

/// Checks `sha256=<hex>` or `sha1=<hex>` against the body's HMAC keyed with `token`.
fn check_hmac(token: &str, signature: &str, body: &[u8]) -> Result<(), Refusal> {
    let bad = || refuse(StatusCode::FORBIDDEN, "the signature does not match the body");
    let (algorithm, hex) = signature
        .split_once('=')
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "the signature is not <algorithm>=<hex>"))?;
    let expected = decode_hex(hex).ok_or_else(bad)?;
    let genuine = match algorithm {
        "sha256" => {
            let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        }
        "sha1" => {
            let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        }
        _ => {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "the signature algorithm must be sha256 or sha1",
            ));
        }
    };
    if genuine { Ok(()) } else { Err(bad()) }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || hex.len() > 256 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Equality whose time depends on the lengths only, not on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sha256 as sign;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

    #[test]
    fn github_needs_a_matching_signature_and_filters_events() {
        let good = sign("s3cret", BODY);
        let push = headers(&[("X-Hub-Signature-256", &good), ("X-GitHub-Event", "push")]);
        assert_eq!(
            verify(ReceiverType::Github, "s3cret", &[], &push, BODY),
            Ok(Verified::Reconcile)
        );
        let only_push = ["push".to_owned()];
        let release = headers(&[("X-Hub-Signature-256", &good), ("X-GitHub-Event", "release")]);
        assert!(matches!(
            verify(ReceiverType::Github, "s3cret", &only_push, &release, BODY),
            Ok(Verified::Ignore(_))
        ));
        let ping = headers(&[("X-Hub-Signature-256", &good), ("X-GitHub-Event", "ping")]);
        assert_eq!(
            verify(ReceiverType::Github, "s3cret", &only_push, &ping, BODY),
            Ok(Verified::Ignore("pong".into()))
        );
        let wrong = headers(&[
            ("X-Hub-Signature-256", &sign("other", BODY)),
            ("X-GitHub-Event", "push"),
        ]);
        assert_eq!(
            verify(ReceiverType::Github, "s3cret", &[], &wrong, BODY)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let tampered = verify(
            ReceiverType::Github,
            "s3cret",
            &[],
            &push,
            br#"{"ref":"refs/heads/evil"}"#,
        );
        assert_eq!(tampered.unwrap_err().status, StatusCode::FORBIDDEN);
        let missing = headers(&[("X-GitHub-Event", "push")]);
        assert_eq!(
            verify(ReceiverType::Github, "s3cret", &[], &missing, BODY)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        let not_json = b"not json";
        let signed = headers(&[
            ("X-Hub-Signature-256", &sign("s3cret", not_json)),
            ("X-GitHub-Event", "push"),
        ]);
        assert_eq!(
            verify(ReceiverType::Github, "s3cret", &[], &signed, not_json)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn gitlab_compares_its_token_header() {
        let ok = headers(&[("X-Gitlab-Token", "s3cret"), ("X-Gitlab-Event", "Push Hook")]);
        let only_push = ["Push Hook".to_owned()];
        assert_eq!(
            verify(ReceiverType::Gitlab, "s3cret", &only_push, &ok, BODY),
            Ok(Verified::Reconcile)
        );
        let wrong = headers(&[("X-Gitlab-Token", "s3creT"), ("X-Gitlab-Event", "Push Hook")]);
        assert_eq!(
            verify(ReceiverType::Gitlab, "s3cret", &[], &wrong, BODY)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let tag = headers(&[("X-Gitlab-Token", "s3cret"), ("X-Gitlab-Event", "Tag Push Hook")]);
        assert!(matches!(
            verify(ReceiverType::Gitlab, "s3cret", &only_push, &tag, BODY),
            Ok(Verified::Ignore(_))
        ));
    }

    #[test]
    fn bitbucket_and_generic_hmac_check_their_signatures() {
        let bitbucket = headers(&[
            ("X-Hub-Signature", &sign("s3cret", BODY)),
            ("X-Event-Key", "repo:refs_changed"),
        ]);
        assert_eq!(
            verify(ReceiverType::Bitbucket, "s3cret", &[], &bitbucket, BODY),
            Ok(Verified::Reconcile)
        );
        let hmac = headers(&[("X-Signature", &sign("s3cret", b"anything"))]);
        assert_eq!(
            verify(ReceiverType::GenericHmac, "s3cret", &[], &hmac, b"anything"),
            Ok(Verified::Reconcile)
        );
        let sha1 = {
            let mut mac = Hmac::<Sha1>::new_from_slice(b"s3cret").unwrap();
            mac.update(b"anything");
            let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
            format!("sha1={hex}")
        };
        let hmac1 = headers(&[("X-Signature", &sha1)]);
        assert_eq!(
            verify(ReceiverType::GenericHmac, "s3cret", &[], &hmac1, b"anything"),
            Ok(Verified::Reconcile)
        );
        for bad in ["sha256=zz", "md5=00", "nohash", "sha256="] {
            let h = headers(&[("X-Signature", bad)]);
            assert!(
                verify(ReceiverType::GenericHmac, "s3cret", &[], &h, b"x").is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            verify(ReceiverType::Generic, "s3cret", &[], &HeaderMap::new(), b""),
            Ok(Verified::Reconcile)
        );
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
