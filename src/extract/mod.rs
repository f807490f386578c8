//! The extract stage: read leads from the Bitrix24 REST API.
//!
//! - [`auth`]: where requests go (the inbound webhook URL), and how to print it without
//!   its secret.
//! - [`client`]: one HTTP client; turns Bitrix24's error envelope into [`ExtractError`]s and
//!   retries what can heal (rate limit, operating limit, 5xx, timeouts, cut connections).
//! - [`oauth`]: OAuth application mode: tokens in `bitrix_oauth`, refreshed on 401.
//! - [`limits`]: the client-side leaky bucket and operating-time budget every request passes.
//! - [`paging`]: strategies that turn "all leads" into a stream of pages.
//! - [`portal`]: the portal's one-off questions (server time, the solution field, users,
//!   leads by ID, chosen leads read whole), each a typed function.
//! - [`query`]: PHP-style query strings, the format of `batch` sub-commands.

pub mod auth;
pub mod client;
pub mod idset;
pub mod limits;
pub mod oauth;
pub mod paging;
pub mod portal;
pub mod query;

pub use auth::Webhook;
pub use client::{Bitrix24Client, ClientConfig, ExtractError};
