//! [`ExtractError`]: why a call failed for good, worded for the person who must act.

use std::time::Duration;

use crate::extract::auth::WebhookError;
use crate::extract::oauth::OAuthError;

/// Why a call failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// OAuth mode: the tokens could not be refreshed or stored.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// Bitrix24 refused: credentials, permissions, plan. Retrying cannot help.
    #[error("Bitrix24 at {portal} refused {method}: {code} ({description}). {hint}")]
    Refused {
        portal: String,
        method: String,
        status: u16,
        code: String,
        description: String,
        hint: String,
    },
    /// The portal could not be reached, or kept failing, for all attempts.
    #[error("Bitrix24 at {portal} did not answer {method} after {attempts} attempts over {secs} s; last problem: {last}")]
    Unreachable {
        portal: String,
        method: String,
        attempts: u32,
        secs: u64,
        last: String,
    },
    /// Nothing answered for the whole `give_up_after` budget.
    #[error("Bitrix24 at {portal} gave no answer to {method} for {} ({}), so b24sync gave up: give_up_after is {}; last problem: {last}. Check the network and the portal address; to wait longer, raise give_up_after (--give-up-after or B24SYNC_GIVE_UP_AFTER).", secs_text(*.waited), attempts_text(*.attempts), secs_text(*.budget))]
    GaveUp {
        portal: String,
        method: String,
        attempts: u32,
        /// How long nothing answered.
        waited: Duration,
        /// The `give_up_after` in force.
        budget: Duration,
        last: String,
    },
    /// The portal's host name does not resolve: a typo in the address (or this
    /// machine's DNS). Retrying does not help, so it is reported at once.
    #[error("the portal host {host} does not resolve ({detail}): check the host name in the webhook URL or --portal (and this machine's DNS settings)")]
    UnknownHost { host: String, detail: String },
    /// The listing stopped short of the leads the run saw at its start, and re-reading
    /// did not get past that point although Bitrix24 still lists leads beyond it. The
    /// run stops there rather than report a partial read as complete.
    #[error("Bitrix24 at {portal} stopped listing leads after ID {cursor}, although it still lists leads above it, up to ID {extent} (the highest this run reads); {rereads} re-reads from ID {cursor} came back empty. Nothing after ID {cursor} was read, and the watermark was not moved: run the sync again later; if it keeps stopping at the same ID, try --paging next and report it with the log.")]
    Incomplete {
        portal: String,
        cursor: i64,
        extent: i64,
        rereads: u32,
    },
    /// The portal answered, successfully, with something we cannot use.
    #[error("Bitrix24 at {portal} answered {method} with something unexpected: {detail}")]
    Protocol {
        portal: String,
        method: String,
        detail: String,
    },
    #[error("interrupted")]
    Cancelled,
}

impl ExtractError {
    /// True for errors about credentials and permissions (the DBA must act in Bitrix24).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ExtractError::Refused { .. }
                | ExtractError::Webhook(_)
                | ExtractError::OAuth(OAuthError::Reauthorize { .. } | OAuthError::Refused { .. })
        )
    }
}

/// "120 s", "1.5 s": whole seconds where that is exact enough.
fn secs_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 || s.fract() < 0.05 {
        format!("{} s", s.round())
    } else {
        format!("{s:.1} s")
    }
}

fn attempts_text(n: u32) -> String {
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(secs_text(Duration::from_secs(120)), "120 s");
        assert_eq!(secs_text(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(secs_text(Duration::from_millis(2010)), "2 s");
        assert_eq!(secs_text(Duration::from_millis(12_600)), "13 s");
        assert_eq!(attempts_text(1), "1 attempt");
    }
}
