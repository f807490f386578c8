//! How the client fails when the portal cannot be reached: within the configured
//! `give_up_after`, with a message that names that budget, never with the webhook secret;
//! at once (as a configuration problem) when the host name does not resolve; and not at
//! all while the portal answers, however long it asks us to wait.
//!
//! Budgets here are small so the tests are quick; the bounds asserted are generous.

use std::time::{Duration, Instant};

use b24sync::exit;
use b24sync::extract::client::{Bitrix24Client, ClientConfig, ExtractError};
use b24sync::extract::limits::RateConfig;
use b24sync::extract::Webhook;
use b24sync::run::RunError;
use b24sync_simulator::{Fault, FaultKind, Simulator, SimulatorConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "S3cr3tAbc";

fn client(webhook: &str, give_up_after: Duration) -> Bitrix24Client {
    let config = ClientConfig {
        rate: RateConfig {
            per_second: 1000.0,
            burst: 1000,
        },
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        give_up_after,
        ..ClientConfig::default()
    };
    Bitrix24Client::new(
        Webhook::parse(webhook).unwrap(),
        config,
        CancellationToken::new(),
    )
    .unwrap()
}

/// The error as a person (and a log) would see it, both renderings.
fn shown(e: &ExtractError) -> String {
    format!("{e} | {e:?}")
}

fn exit_code(e: ExtractError) -> u8 {
    exit::for_error(&RunError::Extract(e))
}

#[tokio::test]
async fn a_portal_that_accepts_and_never_answers_is_given_up_within_the_budget() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept every connection and hold it open without a byte of answer.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let budget = Duration::from_secs(2);
    let c = client(&format!("http://127.0.0.1:{port}/rest/1/{SECRET}/"), budget);
    let t = Instant::now();
    let e = c.call("server.time", &json!({})).await.unwrap_err();
    let took = t.elapsed();
    holder.abort();
    assert!(
        took < budget + Duration::from_millis(1500),
        "took {took:?}: {e}"
    );
    assert!(
        took >= budget - Duration::from_millis(100),
        "gave up early: {took:?}"
    );
    assert!(
        matches!(e, ExtractError::GaveUp { budget, .. } if budget == Duration::from_secs(2)),
        "{e:?}"
    );
    let text = shown(&e);
    assert!(text.contains("give_up_after is 2 s"), "{text}");
    assert!(text.contains("timed out"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(exit_code(e), exit::BITRIX_UNREACHABLE);
}

#[tokio::test]
async fn connection_refused_is_given_up_within_the_budget_without_the_secret() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let budget = Duration::from_millis(1500);
    let c = client(&format!("http://127.0.0.1:{port}/rest/1/{SECRET}/"), budget);
    let t = Instant::now();
    let e = c.call("crm.lead.list", &json!({})).await.unwrap_err();
    let took = t.elapsed();
    assert!(took < budget + Duration::from_millis(1500), "took {took:?}");
    assert!(matches!(e, ExtractError::GaveUp { .. }), "{e:?}");
    // Retried for the whole budget, not after the default 10 attempts' worth of backoff.
    assert!(c.stats().requests > 3, "{:?}", c.stats());
    let text = shown(&e);
    assert!(text.contains("could not connect"), "{text}");
    assert!(text.contains("give_up_after is 1.5 s"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(exit_code(e), exit::BITRIX_UNREACHABLE);
}

#[tokio::test]
async fn an_unresolvable_host_is_a_configuration_error_at_once() {
    // RFC 2606: `.invalid` never resolves.
    let budget = Duration::from_secs(60);
    let c = client(
        &format!("https://no-such-portal.invalid/rest/1/{SECRET}/"),
        budget,
    );
    let t = Instant::now();
    let e = c.call("server.time", &json!({})).await.unwrap_err();
    assert!(t.elapsed() < budget / 2, "took {:?}", t.elapsed());
    assert!(matches!(e, ExtractError::UnknownHost { .. }), "{e:?}");
    assert_eq!(
        (c.stats().requests, c.stats().retries),
        (1, 0),
        "one attempt"
    );
    let text = shown(&e);
    assert!(text.contains("no-such-portal.invalid"), "{text}");
    assert!(text.contains("does not resolve"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(exit_code(e), exit::CONFIG);
}

#[tokio::test]
async fn a_portal_that_answers_rate_limited_is_waited_for_beyond_the_budget() {
    let sim = Simulator::start(SimulatorConfig {
        leads: 10,
        rate_limit: None,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    // 503s for 4 attempts (backoff 50+100+200+400 ms, jittered), then a 429 whose
    // operating_reset_at is 2 s away: well over a 300 ms budget in all, but the portal
    // answered every time, so that is waiting, not silence.
    sim.inject(Fault {
        method: Some("server.time".into()),
        kind: FaultKind::QueryLimit,
        times: 4,
    });
    sim.inject(Fault {
        method: Some("server.time".into()),
        kind: FaultKind::OperationTimeLimit {
            reset_in: Duration::from_secs(2),
        },
        times: 1,
    });
    let budget = Duration::from_millis(300);
    let c = client(&sim.webhook_url(), budget);
    let t = Instant::now();
    let answer = c.call("server.time", &json!({})).await;
    let took = t.elapsed();
    assert!(answer.is_ok(), "{answer:?}");
    assert!(took > budget * 3, "the waits really were longer: {took:?}");
    assert_eq!(c.stats().retries, 5);
    assert_eq!(sim.stats().faults_served, 5);
}

#[tokio::test]
async fn a_silent_spell_after_answers_gets_the_whole_budget_and_no_request_outlasts_it() {
    // One answer that is slower than the budget: the request is cut at the budget (not
    // at the 65 s request timeout), and the call gives up, naming the budget.
    let sim = Simulator::start(SimulatorConfig {
        leads: 10,
        rate_limit: None,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    sim.inject(Fault {
        method: Some("server.time".into()),
        kind: FaultKind::Delay(Duration::from_secs(30)),
        times: 10,
    });
    let budget = Duration::from_millis(800);
    let c = client(&sim.webhook_url(), budget);
    let t = Instant::now();
    let e = c.call("server.time", &json!({})).await.unwrap_err();
    assert!(
        t.elapsed() < budget + Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(matches!(e, ExtractError::GaveUp { .. }), "{e:?}");
    assert!(!shown(&e).contains(&sim.config().webhook_secret), "{e}");
}

#[tokio::test]
async fn a_renamed_portal_is_reported_with_its_new_host_and_without_the_secret() {
    let sim = Simulator::start(SimulatorConfig {
        leads: 10,
        rate_limit: None,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let secret = sim.config().webhook_secret.clone();
    sim.inject(Fault::once(FaultKind::Moved {
        location: format!("https://new-name.bitrix24.ru/rest/1/{secret}/server.time.json"),
    }));
    let c = client(&sim.webhook_url(), Duration::from_secs(5));
    let e = c.call("server.time", &json!({})).await.unwrap_err();
    assert!(
        matches!(&e, ExtractError::Refused { code, .. } if code == "PORTAL_MOVED"),
        "{e:?}"
    );
    let text = shown(&e);
    assert!(text.contains("new-name.bitrix24.ru"), "{text}");
    assert!(!text.contains(&secret), "{text}");
    assert_eq!(c.stats().requests, 1, "not retried, not followed");
    assert_eq!(exit_code(e), exit::BITRIX_REFUSED);
}

#[tokio::test]
async fn a_429_without_operating_reset_at_is_retried_after_a_backoff() {
    // The docs' examples leave `operating_reset_at` out of some `time` blocks.
    let sim = Simulator::start(SimulatorConfig {
        leads: 10,
        rate_limit: None,
        sparse_time: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    sim.inject(Fault::once(FaultKind::OperationTimeLimit {
        reset_in: Duration::from_secs(600),
    }));
    let c = client(&sim.webhook_url(), Duration::from_secs(5));
    let t = Instant::now();
    let answer = c.call("server.time", &json!({})).await;
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(c.stats().retries, 1);
    // A backoff, not the 600 s the portal did not announce.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}
