//! `serve` (the event-driven service, `b24sync::serve`) and `events bind|status|unbind`
//! (an OAuth app's event bindings). Settings: flags > environment > TOML, like the others.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

use super::client::client_for;
use super::groups::{DbArgs, LoadArgs, PortalArgs, ReadArgs, SyncArgs, ToSyncArgs};
use super::open::open_stores;
use super::settings::{parse_duration, FileSettings, Settings};
use super::signals::interrupt_token;
use super::{auth, exit, fail, ui};
use b24sync::extract::client::Bitrix24Client;
use b24sync::extract::portal::events::{bind_event, bound_events, crm_events, unbind_event};
use b24sync::serve::{self, ServeError, ServeOptions, ENTITIES};

/// `serve`: its own settings, then the sync's.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the event endpoint listens on; put a reverse proxy with TLS in front of it to
    /// expose it [default: 127.0.0.1:8723]
    #[arg(
        long,
        env = "B24SYNC_LISTEN",
        value_name = "ADDR",
        help_heading = "Service"
    )]
    pub listen: Option<String>,
    /// The application token Bitrix24 signs its events with (auth[application_token]): the
    /// outgoing webhook's token shown in the portal, or the app's from ONAPPINSTALL
    #[arg(
        long,
        env = "B24SYNC_APPLICATION_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Service"
    )]
    pub application_token: Option<String>,
    /// Run the normal incremental sync this often, for the events missed while the service
    /// was down [default: 5m]
    #[arg(
        long,
        env = "B24SYNC_RECONCILE_EVERY",
        value_name = "DURATION",
        help_heading = "Service"
    )]
    pub reconcile_every: Option<String>,
    /// OAuth apps: read the offline event queue (event.offline.get) this often, e.g. 5s
    /// [default: off]
    #[arg(
        long,
        env = "B24SYNC_OFFLINE_POLL",
        value_name = "DURATION",
        help_heading = "Service"
    )]
    pub offline_poll: Option<String>,
    /// Failed attempts before a changed record gets a row in bitrix_import_lead_error
    /// instead [default: 10]
    #[arg(
        long,
        env = "B24SYNC_MAX_ATTEMPTS",
        value_name = "N",
        help_heading = "Service"
    )]
    pub max_attempts: Option<u32>,
    /// OAuth apps: renew the tokens shortly before they expire, even when idle
    #[arg(long, env = "B24SYNC_KEEP_TOKEN_FRESH", help_heading = "Service")]
    pub keep_token_fresh: bool,
    #[command(flatten)]
    pub portal: PortalArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub read: ReadArgs,
}

impl ToSyncArgs for ServeArgs {
    fn to_sync_args(&self) -> SyncArgs {
        SyncArgs {
            portal: self.portal.clone(),
            db: self.db.clone(),
            load: self.load.clone(),
            read: self.read.clone(),
            ..SyncArgs::default()
        }
    }
}

/// `serve`'s own settings resolved: flag or environment, then the TOML file, then defaults.
fn serve_options(args: &ServeArgs, file: &FileSettings) -> anyhow::Result<ServeOptions> {
    let defaults = ServeOptions::default();
    let listen = match args.listen.as_ref().or(file.listen.as_ref()) {
        None => defaults.listen,
        Some(text) => text.trim().parse::<SocketAddr>().map_err(|_| {
            anyhow::anyhow!(
                "--listen / B24SYNC_LISTEN must be an address with a port, e.g. 127.0.0.1:8723 \
                 or 0.0.0.0:8723; got {text:?}"
            )
        })?,
    };
    let duration =
        |name: &str, v: Option<&String>| -> anyhow::Result<Option<std::time::Duration>> {
            match v {
                None => Ok(None),
                Some(v) => match parse_duration(v) {
                    Ok(d) if !d.is_zero() => Ok(Some(d)),
                    Ok(_) => anyhow::bail!("{name} must be longer than 0 (e.g. 5m); got {v:?}"),
                    Err(e) => anyhow::bail!("{name}: {e}"),
                },
            }
        };
    let reconcile_every = duration(
        "--reconcile-every / B24SYNC_RECONCILE_EVERY",
        args.reconcile_every
            .as_ref()
            .or(file.reconcile_every.as_ref()),
    )?
    .unwrap_or(defaults.reconcile_every);
    let offline_poll = duration(
        "--offline-poll / B24SYNC_OFFLINE_POLL",
        args.offline_poll.as_ref().or(file.offline_poll.as_ref()),
    )?;
    let application_token = args
        .application_token
        .clone()
        .or_else(|| file.application_token.clone())
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let max_attempts = args
        .max_attempts
        .or(file.max_attempts)
        .unwrap_or(defaults.max_attempts);
    if max_attempts == 0 {
        anyhow::bail!("--max-attempts / B24SYNC_MAX_ATTEMPTS must be at least 1");
    }
    Ok(ServeOptions {
        listen,
        application_token,
        reconcile_every,
        offline_poll,
        max_attempts,
        keep_token_fresh: args.keep_token_fresh || file.keep_token_fresh.unwrap_or(false),
        ..defaults
    })
}

async fn client_of(
    s: &Settings,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<Bitrix24Client, u8> {
    match &s.client_id {
        Some(_) => auth::oauth_client(s, cancel).await,
        None => client_for(s, cancel),
    }
}

pub(super) async fn serve_command(args: &ServeArgs, file: &FileSettings) -> u8 {
    let (s, opts) = match (Settings::resolve(args, file), serve_options(args, file)) {
        (Ok(s), Ok(o)) => (s.creating_db(), o),
        (Err(e), _) | (_, Err(e)) => return fail(exit::CONFIG, &e),
    };
    if opts.offline_poll.is_some() && s.client_id.is_none() {
        ui::warn("--offline-poll needs an OAuth application (--client-id); offline events are off");
    }
    let cancel = interrupt_token();
    let client = match client_of(&s, cancel.clone()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stores = match open_stores(&s).await {
        Ok(stores) => stores,
        Err(code) => return code,
    };
    match serve::serve(client, stores, s.sync_options(), opts, cancel, None).await {
        Ok(()) => exit::OK,
        Err(ServeError::Config(e)) => fail(exit::CONFIG, &anyhow::anyhow!(e)),
        Err(e @ ServeError::Listen { .. }) => fail(exit::CONFIG, &anyhow::anyhow!(e)),
        Err(ServeError::Store(e)) => {
            ui::error(&e.to_string());
            exit::DATABASE
        }
        Err(ServeError::Run(e)) => super::run_error_code(&e),
    }
}

/// `events`: an OAuth app's event bindings for the CRM entities b24sync keeps.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Bind ONCRMLEADADD/UPDATE/DELETE and the same for contacts and companies
    /// (ONCRMCONTACT*, ONCRMCOMPANY*) to the handler URL (outbound), or to the app's offline
    /// queue with --offline
    Bind(EventsArgs),
    /// List the app's event bindings (event.get)
    Status(EventsArgs),
    /// Remove the bindings `bind` made
    Unbind(EventsArgs),
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The handler URL Bitrix24 posts to: where `b24sync serve` is reachable from the
    /// portal (https, through the reverse proxy)
    #[arg(long, value_name = "URL", help_heading = "Events")]
    pub handler: Option<String>,
    /// Offline events (event_type=offline): read by `serve --offline-poll`, no handler
    #[arg(long, help_heading = "Events")]
    pub offline: bool,
    #[command(flatten)]
    pub portal: PortalArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

impl ToSyncArgs for EventsArgs {
    fn to_sync_args(&self) -> SyncArgs {
        SyncArgs {
            portal: self.portal.clone(),
            db: self.db.clone(),
            load: LoadArgs::default(),
            ..SyncArgs::default()
        }
    }
}

pub(super) async fn events_command(cmd: &EventsCommand, file: &FileSettings) -> u8 {
    let (args, what) = match cmd {
        EventsCommand::Bind(a) => (a, "bind"),
        EventsCommand::Status(a) => (a, "status"),
        EventsCommand::Unbind(a) => (a, "unbind"),
    };
    let s = match Settings::resolve(args, file) {
        Ok(s) => s,
        Err(e) => return fail(exit::CONFIG, &e),
    };
    if s.client_id.is_none() {
        return fail(
            exit::CONFIG,
            &anyhow::anyhow!(
                "`events` binds an OAuth application's events (--client-id): an inbound webhook \
                 cannot bind events; set up an outgoing webhook in the portal instead (see README, \
                 \"Event-driven: the serve command\")"
            ),
        );
    }
    let handler = args
        .handler
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty());
    if what != "status" && !args.offline && handler.is_none() {
        return fail(
            exit::CONFIG,
            &anyhow::anyhow!("--handler URL is needed for outbound events (or pass --offline)"),
        );
    }
    let client = match auth::oauth_client(&s, interrupt_token()).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let names: Vec<String> = ENTITIES
        .iter()
        .filter_map(|e| crm_events(e))
        .flat_map(|e| e.into_iter())
        .collect();
    let result = match what {
        "bind" => bind_all(&client, &names, handler, args.offline).await,
        "unbind" => unbind_all(&client, &names, handler, args.offline).await,
        _ => status(&client).await,
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => super::run_error_code(&e.into()),
    }
}

async fn bind_all(
    client: &Bitrix24Client,
    names: &[String],
    handler: Option<&str>,
    offline: bool,
) -> Result<(), b24sync::extract::client::ExtractError> {
    for name in names {
        bind_event(client, name, handler, offline).await?;
        println!("bound {name}{}", if offline { " (offline)" } else { "" });
    }
    Ok(())
}

async fn unbind_all(
    client: &Bitrix24Client,
    names: &[String],
    handler: Option<&str>,
    offline: bool,
) -> Result<(), b24sync::extract::client::ExtractError> {
    for name in names {
        let n = unbind_event(client, name, handler, offline).await?;
        println!("unbound {name}: {n} binding(s)");
    }
    Ok(())
}

async fn status(client: &Bitrix24Client) -> Result<(), b24sync::extract::client::ExtractError> {
    let bindings = bound_events(client).await?;
    if bindings.is_empty() {
        println!("no event bindings");
    }
    for b in bindings {
        let field = |k: &str| match b.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) if !v.is_null() => v.to_string(),
            _ => String::new(),
        };
        let offline = matches!(field("offline").as_str(), "1" | "true");
        println!(
            "{}\t{}",
            field("event"),
            if offline {
                "offline".to_string()
            } else {
                field("handler")
            }
        );
    }
    Ok(())
}
