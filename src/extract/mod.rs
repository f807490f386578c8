//! The extract stage: read leads from the Bitrix24 REST API.
//!
//! - [`auth`]: where requests go (the inbound webhook URL), and how to print it without
//!   its secret.
//! - [`client`]: one HTTP client; turns Bitrix24's error envelope into [`ExtractError`]s and
//!   retries what can heal (rate limit, operating limit, 5xx, timeouts, cut connections).
//! - [`oauth`]: OAuth application mode: tokens in `bitrix_oauth`, refreshed on 401.
//! - [`limits`]: the client-side leaky bucket and operating-time budget every request passes.
//! - [`paging`]: strategies that turn "all leads" into a stream of pages.
//! - [`portal`]: chosen leads read whole (`crm.lead.get`), for the error table.
//! - [`query`]: PHP-style query strings, the format of `batch` sub-commands.
//! - [`users`]: `user.get` for the operators leads are assigned to (the caller lookup).

pub mod auth;
pub mod client;
pub mod idset;
pub mod limits;
pub mod oauth;
pub mod paging;
pub mod portal;
pub mod query;
pub mod users;

pub use auth::Webhook;
pub use client::{Bitrix24Client, ClientConfig, ExtractError};
