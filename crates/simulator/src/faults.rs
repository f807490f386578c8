//! Injectable faults: the failures a client meets in the wild, queued by tests.
//!
//! A [`Fault`] applies to the next `times` HTTP requests whose method matches. Faults are
//! checked in the order they were injected; the first matching one is used (and its
//! `times` decremented) for each request, after authentication and before the rate limit
//! so its effect is deterministic.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;

/// One queued fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Method name (as in the URL, without `.json`; case-insensitive); `None` = any.
    pub method: Option<String>,
    pub kind: FaultKind,
    pub times: u32,
}

impl Fault {
    /// A fault for any method, once.
    pub fn once(kind: FaultKind) -> Fault {
        Fault {
            method: None,
            kind,
            times: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub enum FaultKind {
    /// 503 `QUERY_LIMIT_EXCEEDED` "Too many requests".
    QueryLimit,
    /// 500 `INTERNAL_SERVER_ERROR`.
    Internal,
    /// 429 `OPERATION_TIME_LIMIT`, with `time.operating_reset_at` = now + `reset_in`.
    OperationTimeLimit { reset_in: Duration },
    /// 502 with an HTML body (a proxy's error page).
    HtmlPage,
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// 200, headers with the full Content-Length, then the connection dies half-way.
    TruncatedBody,
    /// Serve normally, but only after this delay (for client timeouts).
    Delay(Duration),
    /// 302 to `location`, as a renamed portal answers at its old address.
    Moved { location: String },
    /// Any error envelope, e.g. 403 `insufficient_scope`.
    Error {
        status: u16,
        code: String,
        description: String,
    },
}

/// A fault for single ascending `crm.lead.list` pages, served inside a `batch` or on
/// their own: the holes a real portal can leave in a listing (a page that comes back
/// empty, or cut short, although leads follow it). The rest of the answer (`next`,
/// `total`, the other sub-calls) is left as it was.
#[derive(Debug, Clone)]
pub struct PageFault {
    /// Applies to pages in ascending ID order whose `>ID` filter is at least this.
    pub from_id: i64,
    /// Only pages whose `>ID` refers to an earlier sub-call (`$result[p3][49][ID]`): a
    /// page in the middle of a chained batch, not the first one.
    pub chained_only: bool,
    pub kind: PageFaultKind,
    pub times: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFaultKind {
    /// `[]`.
    Empty,
    /// Only the first `keep` rows.
    Truncated { keep: usize },
}

#[derive(Default)]
pub(crate) struct PageFaultQueue {
    faults: Vec<PageFault>,
}

impl PageFaultQueue {
    pub fn push(&mut self, f: PageFault) {
        if f.times > 0 {
            self.faults.push(f);
        }
    }

    /// Takes one use of the first fault for a page after `after_id`.
    pub fn take(&mut self, after_id: i64, chained: bool) -> Option<PageFaultKind> {
        let pos = self
            .faults
            .iter()
            .position(|f| after_id >= f.from_id && (chained || !f.chained_only))?;
        let f = &mut self.faults[pos];
        f.times -= 1;
        let kind = f.kind;
        if f.times == 0 {
            self.faults.remove(pos);
        }
        Some(kind)
    }
}

#[derive(Default)]
pub(crate) struct FaultQueue {
    faults: Vec<Fault>,
}

impl FaultQueue {
    pub fn push(&mut self, f: Fault) {
        if f.times > 0 {
            self.faults.push(f);
        }
    }

    /// Takes one use of the first fault matching `method`.
    pub fn take(&mut self, method: &str) -> Option<FaultKind> {
        let pos = self.faults.iter().position(|f| match f.method.as_deref() {
            None => true,
            Some(m) => m.trim_end_matches(".json").eq_ignore_ascii_case(method),
        })?;
        let f = &mut self.faults[pos];
        f.times -= 1;
        let kind = f.kind.clone();
        if f.times == 0 {
            self.faults.remove(pos);
        }
        Some(kind)
    }
}

pub(crate) fn raw_response(status: u16, content_type: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

pub(crate) const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// A 200 response announcing `full.len()` bytes that sends half and then fails, which
/// makes hyper abort the connection mid-body.
pub(crate) fn truncated(full: Vec<u8>) -> Response {
    let half = Bytes::copy_from_slice(&full[..full.len() / 2]);
    // The pause lets hyper flush the headers and the first half before the failure;
    // an immediate error would abort the response before anything left the socket.
    let failure = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated truncation",
        ))
    });
    let stream = futures::stream::iter([Ok::<Bytes, std::io::Error>(half)]).chain(failure);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CONTENT_LENGTH, full.len())
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
