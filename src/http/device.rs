//! The device API: `POST /api/v1/devices/register` (with the enrollment secret) and
//! `POST /api/v1/devices/checkin` (with `Authorization: Bearer TOKEN`). Refused with
//! 503 and `Retry-After` while client connections are disabled, the node is a standby, or
//! it is a stale primary (a newer primary exists), and while a switchover holds writes
//! (`hold`; then `Retry-After` is [`HELD_RETRY_SECONDS`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue, RETRY_AFTER};
use hyper::{Request, StatusCode};
use serde::de::DeserializeOwned;

use super::{AppState, Resp, error, json};
use crate::coredb::{CheckIn, DeviceError, Registration};
use crate::ha::{Mode, NodeStatus};

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;
/// Seconds a refused device is told to wait.
const RETRY_SECONDS: &str = "120";
/// Seconds a device refused during a switchover is told to wait: by then the new
/// primary takes writes, or this one again.
pub const HELD_RETRY_SECONDS: &str = "2";

/// Why device traffic is refused right now, if it is.
fn refusal(state: &AppState) -> Option<&'static str> {
    let view = state.view.borrow();
    let s = &view.settings;
    if s.mode == Mode::Witness {
        Some("this node is a quorum witness; it serves no device")
    } else if !s.client_connections {
        Some("client connections are disabled on this node")
    } else if s.mode == Mode::Secondary && s.node_status == NodeStatus::Standby && state.hold.taking_over_soon() {
        Some(TAKING_OVER)
    } else if s.mode == Mode::Secondary && s.node_status == NodeStatus::Standby {
        Some("this node is a standby; connect to the primary")
    } else if s.stale.is_some() {
        // Writes taken here now would be lost by the recovery sync.
        Some("this node is a stale primary: a newer primary exists; connect to it")
    } else {
        None
    }
}

/// Why a standby about to take over in a switchover refuses a device.
const TAKING_OVER: &str = "this node is taking over as primary in a switchover; retry shortly";

fn unavailable(reason: &str) -> Resp {
    let seconds = if reason == TAKING_OVER { HELD_RETRY_SECONDS } else { RETRY_SECONDS };
    unavailable_for(reason, seconds)
}

fn unavailable_for(reason: &str, seconds: &'static str) -> Resp {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, reason);
    resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(seconds));
    resp
}

/// The answer to a device write while a switchover holds writes, or the node is fenced.
fn held(state: &AppState) -> Resp {
    match state.hold.fenced() {
        Some(_) => {
            unavailable_for("this primary has fenced itself: it does not hold the quorum's lease", HELD_RETRY_SECONDS)
        }
        None => unavailable_for("a switchover is under way on this node; retry shortly", HELD_RETRY_SECONDS),
    }
}

/// Reads and parses a JSON body of at most [`MAX_BODY`] bytes, within `timeout`.
async fn body<T: DeserializeOwned>(req: Request<Incoming>, timeout: Duration) -> Result<T, Resp> {
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"));
    }
    let read = tokio::time::timeout(timeout, Limited::new(req.into_body(), MAX_BODY).collect()).await;
    let bytes: Bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"));
        }
        Ok(Err(_)) => return Err(error(StatusCode::BAD_REQUEST, "could not read the request body")),
        Err(_) => return Err(error(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time")),
    };
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("malformed JSON: {e}")))
}

fn failure(e: &DeviceError) -> Resp {
    let status = match e {
        DeviceError::EnrollmentClosed | DeviceError::BadSecret => StatusCode::FORBIDDEN,
        DeviceError::Unauthorized => StatusCode::UNAUTHORIZED,
        DeviceError::Enrolled(_) => StatusCode::CONFLICT,
        DeviceError::NoSuchDevice(_) => StatusCode::NOT_FOUND,
        DeviceError::Invalid(_) => StatusCode::BAD_REQUEST,
        DeviceError::Unconfirmed(_) => StatusCode::SERVICE_UNAVAILABLE,
        DeviceError::Store(err) => {
            tracing::error!(subsystem = "device-api", error = %err, "device request failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, &e.to_string())
}

/// Why a registration's secret was not accepted.
enum SecretRefused {
    /// Wrong, or registration closed.
    Device(DeviceError),
    /// Too many wrong secrets (or attempts under way) from this client: wait this long.
    TooMany(u64),
}

/// Checks the enrollment secret against the stored hash, remembering the last secret
/// that verified so that a wave of registrations costs one Argon2 verification. Any
/// other secret counts as an attempt of `from`'s client before it is verified, and
/// verifications run a few at a time.
async fn check_enrollment(state: &AppState, presented: &str, from: std::net::IpAddr) -> Result<(), SecretRefused> {
    let stored =
        state.view.borrow().enrollment_hash.clone().ok_or(SecretRefused::Device(DeviceError::EnrollmentClosed))?;
    let digest = crate::coredb::token_hash(presented);
    let known = state.enrollment_ok.lock().map(|c| c.as_ref() == Some(&(stored.clone(), digest))).unwrap_or(false);
    if known {
        return Ok(());
    }
    let attempt = state.enrollment_guard.begin(from, std::time::Instant::now()).map_err(SecretRefused::TooMany)?;
    if crate::secret::verify_bounded(stored.clone(), presented.to_string()).await != Some(true) {
        tracing::warn!(subsystem = "device-api", peer = %from, "wrong enrollment secret");
        return Err(SecretRefused::Device(DeviceError::BadSecret));
    }
    attempt.succeeded();
    if let Ok(mut cache) = state.enrollment_ok.lock() {
        *cache = Some((stored, digest));
    }
    Ok(())
}

pub async fn register(state: &AppState, req: Request<Incoming>, from: std::net::IpAddr, timeout: Duration) -> Resp {
    if let Some(reason) = refusal(state) {
        return unavailable(reason);
    }
    let reg: Registration = match body(req, timeout).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(e) = reg.validate() {
        return failure(&e);
    }
    match check_enrollment(state, &reg.enrollment_secret, from).await {
        Ok(()) => {}
        Err(SecretRefused::Device(e)) => return failure(&e),
        Err(SecretRefused::TooMany(wait)) => {
            let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "too many wrong enrollment secrets from this address");
            if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                resp.headers_mut().insert(RETRY_AFTER, value);
            }
            return resp;
        }
    }
    let mut raw = [0u8; 32];
    if getrandom::fill(&mut raw).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness for a token");
    }
    let token = hex::encode(raw);
    let Some(_writing) = state.hold.enter().await else { return held(state) };
    if let Some(reason) = refusal(state) {
        return unavailable(reason);
    }
    match state.writer.register(reg, token).await {
        Ok(done) => json(StatusCode::CREATED, &done),
        Err(e) => failure(&e),
    }
}

pub async fn check_in(state: &AppState, req: Request<Incoming>, timeout: Duration) -> Resp {
    if let Some(reason) = refusal(state) {
        return unavailable(reason);
    }
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .map(str::to_string);
    let Some(token) = token else {
        return error(StatusCode::UNAUTHORIZED, "missing bearer token");
    };
    let report: CheckIn = match body(req, timeout).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some(_writing) = state.hold.enter().await else { return held(state) };
    if let Some(reason) = refusal(state) {
        return unavailable(reason);
    }
    match state.writer.check_in(&token, report).await {
        Ok(done) => json(StatusCode::OK, &done),
        Err(e) => failure(&e),
    }
}
