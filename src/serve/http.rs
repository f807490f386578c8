//! The service's HTTP side (axum): `POST /` (and `/events`) for Bitrix24's outbound
//! events, `GET /health`, `GET /metrics`. A post is answered 200 only once its record is
//! committed to the queue; a refusal says why in a few words, never with a token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::inbound::{read_event, Expect, Inbound};
use super::{now_ms, Service, ENTITIES};

pub(super) async fn run(listener: tokio::net::TcpListener, service: Arc<Service>) {
    let cancel = service.cancel.clone();
    let limit = service.opts.max_body;
    let app = Router::new()
        .route("/", post(event))
        .route("/events", post(event))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(service);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
    {
        tracing::error!("the HTTP endpoint stopped: {e}");
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn event(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !form {
        service.metrics.event("malformed");
        tracing::warn!("refused an event: not application/x-www-form-urlencoded");
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "events are posted as application/x-www-form-urlencoded\n".into(),
        );
    }
    let expect = Expect {
        token: &service.opts.application_token,
        portal: &service.portal,
        entities: &ENTITIES,
    };
    match read_event(&body, &expect, now_ms()) {
        Err(refusal) => {
            service.metrics.event(refusal.label());
            tracing::warn!("refused an event: {}", refusal.say());
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            text(status, format!("{}\n", refusal.say()))
        }
        Ok(Inbound::Ignored(name)) => {
            service.metrics.event("ignored");
            tracing::debug!(event = %name, "event not acted on");
            text(StatusCode::OK, "ignored\n".into())
        }
        Ok(Inbound::Queue(e)) => {
            let (entity, id) = (e.entity.clone(), e.id);
            match service.stores.queue.enqueue(vec![e]).await {
                Ok(()) => {
                    service.metrics.event("queued");
                    tracing::debug!(entity = %entity, id, "event queued");
                    service.wake.notify_one();
                    text(StatusCode::OK, "queued\n".into())
                }
                Err(err) => {
                    service.metrics.event("not_queued");
                    tracing::error!(entity = %entity, id, "could not queue an event: {err}");
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the event could not be queued; the periodic sync will pick the change up\n"
                            .into(),
                    )
                }
            }
        }
    }
}

async fn health(State(service): State<Arc<Service>>) -> Response {
    let depth = service.stores.queue.queue_depth().await;
    let h = service.health();
    let now = now_ms();
    let (db_ok, db_error) = match &depth {
        Ok(_) => (true, None),
        Err(e) => (false, Some(e.to_string())),
    };
    let depth = depth.ok();
    let healthy = db_ok && h.last_sync_ok;
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "database": if db_ok { "reachable" } else { "unreachable" },
        "queue_depth": depth.map(|d| d.rows),
        "queue_failed": depth.map(|d| d.failed),
        "oldest_queued_age_s": depth.and_then(|d| d.oldest_ms).map(|ms| (now - ms).max(0) as f64 / 1000.0),
        "last_sync": h.last_sync,
        "last_sync_ok": h.last_sync_ok,
        "last_error": db_error.or(h.last_error),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let depth = service.stores.queue.queue_depth().await.ok();
    let body = service
        .metrics
        .render(&service.client.stats(), depth, now_ms());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
