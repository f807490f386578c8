//! A database belongs to one portal: the binding recorded in the state table, and the
//! check every run makes before it reads or writes anything.

use crate::extract::client::{Auth, Bitrix24Client};
use crate::schema::LEAD;
use crate::store::StateStore;

use super::{state_keys, RunError, RunStores, SyncOptions};

/// The portal a client reads from, as a database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalIdentity {
    /// Host name, lower-case, with the port when the URL has one.
    pub domain: String,
    /// Bitrix24's `member_id` of the portal, when known (OAuth mode).
    pub member_id: Option<String>,
}

impl std::fmt::Display for PortalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.member_id {
            Some(m) => write!(f, "{} (member_id {m})", self.domain),
            None => f.write_str(&self.domain),
        }
    }
}

impl PortalIdentity {
    /// Whether `other` is the same portal: by `member_id` when both have one (a portal can
    /// be renamed), else by the host.
    pub fn same_portal(&self, other: &PortalIdentity) -> bool {
        match (&self.member_id, &other.member_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.domain.eq_ignore_ascii_case(&other.domain),
        }
    }

    /// A loopback host (`127.0.0.1:PORT`, `localhost`, `[::1]`): the simulator.
    pub fn is_loopback(&self) -> bool {
        let host = match self.domain.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => self.domain.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// The portal `client` reads from.
pub async fn client_portal(client: &Bitrix24Client) -> PortalIdentity {
    let member_id = match client.auth() {
        Auth::OAuth(session) => Some(session.member_id().await),
        Auth::Webhook(_) => None,
    };
    PortalIdentity {
        domain: client.portal().to_ascii_lowercase(),
        member_id: member_id.filter(|m| !m.trim().is_empty()),
    }
}

/// The portal the database is bound to (`None` before the first sync of this version).
pub async fn bound_portal(state: &dyn StateStore) -> Result<Option<PortalIdentity>, RunError> {
    let domain = read_state_text(state, state_keys::PORTAL_DOMAIN).await?;
    let member_id = read_state_text(state, state_keys::PORTAL_MEMBER_ID).await?;
    Ok(domain.map(|domain| PortalIdentity { domain, member_id }))
}

/// A state value; an empty one counts as unset (that is how a value is reset).
pub(super) async fn read_state_text(
    state: &dyn StateStore,
    key: &str,
) -> Result<Option<String>, RunError> {
    Ok(state
        .read_state(key)
        .await?
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty()))
}

async fn write_binding(state: &dyn StateStore, portal: &PortalIdentity) -> Result<(), RunError> {
    state
        .write_state(state_keys::PORTAL_DOMAIN, &portal.domain)
        .await?;
    state
        .write_state(
            state_keys::PORTAL_MEMBER_ID,
            portal.member_id.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(())
}

/// What [`check_portal`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Binding {
    /// The database is this portal's (or new, or adopted): go on.
    Same,
    /// `--rebind-portal` moved it from another portal: this run must read every lead.
    Rebound,
}

/// A database belongs to one portal: refuse a run from another one before anything is read
/// or written. `bind` records the portal (first sync, adoption of a database synced by an
/// earlier version, `--rebind-portal`); `errors retry` only checks.
///
/// Re-binding resets the watermark: it is the other portal's clock, and an incremental run
/// from it would skip every lead of this portal modified before that instant.
pub(super) async fn check_portal(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
    bind: bool,
) -> Result<Binding, RunError> {
    let current = client_portal(client).await;
    let write = bind && !opts.dry_run;
    match bound_portal(stores.state.as_ref()).await? {
        Some(bound) if bound.same_portal(&current) => {
            // Same portal, renamed or now with a member_id: keep the record current.
            if write && bound != current {
                tracing::info!(from = %bound, to = %current, "updating the database's portal binding");
                write_binding(stores.state.as_ref(), &current).await?;
            }
            Ok(Binding::Same)
        }
        Some(bound) if bind && opts.rebind_portal => {
            tracing::warn!(
                from = %bound,
                to = %current,
                "--rebind-portal: the database now follows {current}; this run reads every lead"
            );
            if write {
                stores.state.write_state(state_keys::WATERMARK, "").await?;
                write_binding(stores.state.as_ref(), &current).await?;
            }
            Ok(Binding::Rebound)
        }
        Some(bound) => Err(RunError::Config(format!(
            "the database {} holds the leads of the Bitrix24 portal {bound}, but this run reads \
             from {current}: refusing to mix two portals' leads (nothing was read or written). \
             Point --db at {current}'s database; or, if this database is to follow {current} from \
             now on, run `b24sync sync --rebind-portal` once (it reads every lead, and its deletion \
             check removes {}'s leads behind --max-delete-share)",
            stores.target,
            bound.domain
        ))),
        None => {
            if write {
                if !stores.deletions.record_ids(LEAD).await?.is_empty() {
                    tracing::info!(
                        portal = %current,
                        "the database holds leads but records no portal (synced by an earlier \
                         version): adopting it for {current}"
                    );
                }
                write_binding(stores.state.as_ref(), &current).await?;
            }
            Ok(Binding::Same)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portals_compare_by_member_id_when_both_have_one_else_by_host() {
        let p = |d: &str, m: Option<&str>| PortalIdentity {
            domain: d.into(),
            member_id: m.map(str::to_string),
        };
        assert!(p("acme.bitrix24.ru", None).same_portal(&p("ACME.bitrix24.ru", None)));
        assert!(!p("acme.bitrix24.ru", None).same_portal(&p("beta.bitrix24.ru", None)));
        assert!(p("old.bitrix24.ru", Some("m1")).same_portal(&p("new.bitrix24.ru", Some("m1"))));
        assert!(!p("acme.bitrix24.ru", Some("m1")).same_portal(&p("acme.bitrix24.ru", Some("m2"))));
        assert!(p("127.0.0.1:4545", None).is_loopback());
        assert!(p("localhost", None).is_loopback());
        assert!(p("[::1]:80", None).is_loopback());
        assert!(!p("acme.bitrix24.ru", None).is_loopback());
    }
}
