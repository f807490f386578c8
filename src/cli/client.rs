//! The webhook client a command's settings describe (OAuth mode: `auth.rs`).

use tokio_util::sync::CancellationToken;

use super::settings::Settings;
use super::{exit, run_error_code, ui};
use b24sync::extract::client::{Bitrix24Client, ClientConfig};
use b24sync::extract::limits::RateConfig;
use b24sync::extract::Webhook;

pub(super) fn client_for(s: &Settings, cancel: CancellationToken) -> Result<Bitrix24Client, u8> {
    let config = ClientConfig {
        rate: RateConfig {
            per_second: s.rate,
            burst: s.burst,
        },
        ..ClientConfig::default()
    };
    client_with(s, cancel, config)
}

pub(crate) fn client_with(
    s: &Settings,
    cancel: CancellationToken,
    config: ClientConfig,
) -> Result<Bitrix24Client, u8> {
    let webhook_text = s.webhook.as_deref().ok_or_else(|| {
        ui::error(
            "no Bitrix24 webhook: pass --webhook https://PORTAL/rest/USER_ID/SECRET/ or set B24SYNC_WEBHOOK \
             (create one in Bitrix24 under Developer resources → Other → Inbound webhook, with the crm scope)",
        );
        exit::CONFIG
    })?;
    let webhook = Webhook::parse(webhook_text).map_err(|e| {
        ui::error(&e.to_string());
        exit::CONFIG
    })?;
    let config = ClientConfig {
        rate: RateConfig {
            per_second: s.rate,
            burst: s.burst,
        },
        give_up_after: s.give_up_after.unwrap_or(config.give_up_after),
        ..config
    };
    Bitrix24Client::new(webhook, config, cancel).map_err(|e| run_error_code(&e.into()))
}
