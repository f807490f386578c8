//! The extract stage's failures as the `b24sync` binary reports them: the exit code a
//! scheduler sees and the text a DBA reads, which never holds the webhook secret.

mod common;

use common::{b24sync, run_cmd, test_db};

const SECRET: &str = "S3cr3tAbc";

async fn sync_with_webhook(webhook: &str) -> (i32, String) {
    let db = test_db();
    let out = run_cmd(
        b24sync()
            .arg("sync")
            .arg("--webhook")
            .arg(webhook)
            .arg("--db")
            .arg(&db.path),
    )
    .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_webhook_without_rest_in_its_path_is_refused_without_its_secret() {
    let (code, text) =
        sync_with_webhook(&format!("https://portal.bitrix24.ru/rest1/{SECRET}/")).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no /rest/ in the path"), "{text}");
    assert!(text.contains("portal.bitrix24.ru"), "{text}");
    assert!(
        !text.to_lowercase().contains(&SECRET.to_lowercase()),
        "{text}"
    );
}

#[tokio::test]
async fn an_unresolvable_portal_is_a_configuration_error_without_the_secret() {
    let started = std::time::Instant::now();
    let (code, text) =
        sync_with_webhook(&format!("https://no-such-portal.invalid/rest/1/{SECRET}/")).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("does not resolve"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    // At once, not after minutes of retries (a generous bound).
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}
