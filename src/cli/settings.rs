//! Settings: flags win over environment variables (clap reads both), which win over the
//! TOML file. Defaults are applied last, here, so a file value is not masked by a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::groups::{LoadArgs, PortalArgs, ReadArgs, SyncArgs, ToSyncArgs};
use super::open::DbOpen;
use b24sync::extract::paging::{Paging, DEFAULT_MAX_CHAINS};
use b24sync::model::PHONE_TAIL_DIGITS;
use b24sync::run::{DeletionPolicy, SyncMode, SyncOptions};
use b24sync::schema::{Entity, ENTITIES};
use b24sync::transform::caller::{DEFAULT_TAIL_DIGITS, MIN_TAIL_DIGITS};
use b24sync::transform::phone::DefaultRegion;
use b24sync::transform::TimePolicy;

/// The TOML file. Unknown keys are an error naming the key (a typo must not be ignored).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub webhook: Option<String>,
    /// OAuth mode: the application's client_id (its secret and tokens live in bitrix_oauth).
    pub client_id: Option<String>,
    pub oauth_server: Option<String>,
    pub db: Option<String>,
    pub pool_size: Option<u32>,
    pub solution_field: Option<String>,
    pub time_zone: Option<String>,
    pub paging: Option<String>,
    pub max_chains: Option<i64>,
    /// The CRM entities to sync: `["lead", "contact", "company"]`.
    pub entities: Option<Vec<String>>,
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    pub batch_size: Option<usize>,
    pub lock_wait: Option<u64>,
    pub overlap: Option<String>,
    pub deletion_check_runs: Option<u32>,
    pub deletion_check_every: Option<String>,
    pub max_delete_share: Option<f64>,
    /// Stop retrying an unanswering portal after this long in total ("2m").
    pub give_up_after: Option<String>,
    /// Country of phone numbers written without a country code ("RU", "BY", ...).
    pub phone_region: Option<String>,
    /// Digits compared by the caller lookup's "last N digits" fallback.
    pub tail_digits: Option<usize>,
    /// `serve` (src/cli/serve.rs): the listening address, the events' application token,
    /// the reconcile interval, the offline poll, attempts before the error table, the
    /// OAuth keep-alive.
    pub listen: Option<String>,
    pub application_token: Option<String>,
    pub reconcile_every: Option<String>,
    pub offline_poll: Option<String>,
    pub max_attempts: Option<u32>,
    pub keep_token_fresh: Option<bool>,
}

/// Everything a command needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub webhook: Option<String>,
    /// OAuth mode (exclusive with `webhook`).
    pub client_id: Option<String>,
    pub oauth_server: Option<String>,
    pub db: String,
    pub pool_size: u32,
    pub solution_field: Option<String>,
    pub time_policy: TimePolicy,
    pub paging: Paging,
    /// The most keyset chains an export runs at once (`--max-chains`).
    pub max_chains: usize,
    /// The CRM entities to sync (`--entities`), in order.
    pub entities: Vec<Entity>,
    pub rate: f64,
    pub burst: u32,
    pub batch_size: usize,
    pub lock_wait: Duration,
    pub mode: SyncMode,
    pub overlap: Duration,
    pub deletion: DeletionPolicy,
    pub dry_run: bool,
    pub phone_region: DefaultRegion,
    /// The caller lookup's fallback: match the last this many digits.
    pub tail_digits: usize,
    /// Whether the command may create the embedded database (only the ones that fill it).
    pub db_open: DbOpen,
    /// `sync --rebind-portal`: accept a database synced from another portal.
    pub rebind_portal: bool,
    /// `sync --verify`: ignore the stored fingerprints (compare every lead with the tables).
    pub verify: bool,
    /// How long the client keeps retrying a portal that does not answer, in total
    /// (`None`: the client's default).
    pub give_up_after: Option<Duration>,
}

const DEFAULT_FILE: &str = "b24sync.toml";

/// Read the settings file: the one named, else `./b24sync.toml` if present, else none.
pub fn load_file(named: Option<&Path>) -> anyhow::Result<FileSettings> {
    let path: PathBuf = match named {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(FileSettings::default()),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    parse_file(&text).with_context(|| format!("in the settings file {}", path.display()))
}

pub fn parse_file(text: &str) -> anyhow::Result<FileSettings> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))
}

impl Settings {
    pub fn resolve<A: ToSyncArgs + ?Sized>(
        args: &A,
        file: &FileSettings,
    ) -> anyhow::Result<Settings> {
        let args = &args.to_sync_args();
        let (portal, load, read) = (&args.portal, &args.load, &args.read);
        let time_policy: TimePolicy = parsed(
            "--time-zone / B24SYNC_TIME_ZONE",
            load.time_zone.as_ref(),
            file.time_zone.as_ref(),
            "portal",
        )?;
        let paging: Paging = parsed(
            "--paging / B24SYNC_PAGING",
            read.paging.as_ref(),
            file.paging.as_ref(),
            "batch",
        )?;
        let max_chains = max_chains(read.max_chains.or(file.max_chains))?;
        let entities = entities(read.entities.as_deref(), file.entities.as_deref())?;
        let (rate, burst) = pace(portal, file)?;
        let batch_size = load.batch_size.or(file.batch_size).unwrap_or(2500);
        if batch_size == 0 {
            bail!("--batch-size / B24SYNC_BATCH_SIZE must be at least 1 lead");
        }
        let solution_field = solution_field(load, file)?;
        let (webhook, client_id) = credentials(portal, file)?;
        let (phone_region, tail_digits) = phone(args, file)?;
        let give_up_after = give_up_after(portal, file)?;
        Ok(Settings {
            db_open: DbOpen::MustExist,
            rebind_portal: args.rebind_portal,
            verify: args.verify,
            give_up_after,
            phone_region,
            tail_digits,
            webhook,
            client_id,
            oauth_server: portal
                .oauth_server
                .clone()
                .or_else(|| file.oauth_server.clone())
                .filter(|o| !o.trim().is_empty()),
            db: args
                .db
                .db
                .clone()
                .or_else(|| file.db.clone())
                .unwrap_or_else(|| "b24sync.db".into()),
            pool_size: args.db.pool_size.or(file.pool_size).unwrap_or(4).max(1),
            solution_field,
            time_policy,
            paging,
            max_chains,
            entities,
            rate,
            burst,
            batch_size,
            lock_wait: Duration::from_secs(load.lock_wait.or(file.lock_wait).unwrap_or(60)),
            dry_run: args.dry_run,
            mode: mode(args)?,
            overlap: duration_setting(
                "--overlap / B24SYNC_OVERLAP",
                read.overlap.as_ref().or(file.overlap.as_ref()),
                300,
            )?,
            deletion: deletion(load, read, file)?,
        })
    }

    /// The same settings for a command that may create the embedded database.
    pub fn creating_db(self) -> Settings {
        Settings {
            db_open: DbOpen::Create,
            ..self
        }
    }

    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            paging: self.paging,
            max_chains: self.max_chains,
            time_policy: self.time_policy.clone(),
            solution_field: self.solution_field.clone(),
            batch_leads: self.batch_size,
            lock_wait: self.lock_wait,
            mode: self.mode.clone(),
            overlap: self.overlap,
            deletion: self.deletion.clone(),
            dry_run: self.dry_run,
            progress: None,
            phone_region: self.phone_region,
            rebind_portal: self.rebind_portal,
            verify: self.verify,
            entities: self.entities.clone(),
        }
    }
}

/// `--entities lead,contact,company` (flag or environment: one comma-separated text; the
/// file: a list), each named once; default every entity b24sync knows.
fn entities(given: Option<&str>, file: Option<&[String]>) -> anyhow::Result<Vec<Entity>> {
    let names: Vec<String> = match (given, file) {
        (Some(text), _) => text.split(',').map(str::to_string).collect(),
        (None, Some(list)) => list.to_vec(),
        (None, None) => return Ok(ENTITIES.to_vec()),
    };
    let known = || {
        ENTITIES
            .iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out: Vec<Entity> = Vec::new();
    for name in names.iter().filter(|n| !n.trim().is_empty()) {
        let entity = Entity::by_name(name).ok_or_else(|| {
            anyhow::anyhow!(
                "--entities / B24SYNC_ENTITIES: unknown entity {:?}; use one or more of {}, \
                 comma-separated",
                name.trim(),
                known()
            )
        })?;
        if !out.contains(&entity) {
            out.push(entity);
        }
    }
    if out.is_empty() {
        bail!(
            "--entities / B24SYNC_ENTITIES names no entity; use one or more of {}",
            known()
        );
    }
    Ok(out)
}

/// A setting read from text (flag or environment, else the file, else `default`); a value
/// that does not parse is reported under `name`.
fn parsed<T: std::str::FromStr<Err = String>>(
    name: &str,
    given: Option<&String>,
    file: Option<&String>,
    default: &str,
) -> anyhow::Result<T> {
    given
        .or(file)
        .map_or(default, String::as_str)
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{name}: {e}"))
}

/// Most parallel chains worth asking for: each needs its own share of the leaky bucket's
/// burst (50 on most plans), so beyond this the chains only wait for each other.
const MAX_CHAINS_CAP: i64 = 16;

/// `--max-chains`: how many keyset chains an export may run at once.
fn max_chains(given: Option<i64>) -> anyhow::Result<usize> {
    let n = given.unwrap_or(DEFAULT_MAX_CHAINS as i64);
    if !(1..=MAX_CHAINS_CAP).contains(&n) {
        bail!(
            "--max-chains / B24SYNC_MAX_CHAINS must be a whole number from 1 (one chain at a \
             time) to {MAX_CHAINS_CAP}; got {n}"
        );
    }
    Ok(usize::try_from(n).unwrap_or(1))
}

/// The request rate and burst the portal allows.
fn pace(portal: &PortalArgs, file: &FileSettings) -> anyhow::Result<(f64, u32)> {
    let rate = portal.rate.or(file.rate).unwrap_or(2.0);
    if !(rate > 0.0 && rate <= 1000.0) {
        bail!("--rate / B24SYNC_RATE must be a number of requests per second above 0 and at most 1000 (2 for most plans, 5 for Enterprise); got {rate}");
    }
    let burst = portal.burst.or(file.burst).unwrap_or(50);
    if burst == 0 {
        bail!("--burst / B24SYNC_BURST must be at least 1 (50 for most plans, 250 for Enterprise)");
    }
    Ok((rate, burst))
}

fn solution_field(load: &LoadArgs, file: &FileSettings) -> anyhow::Result<Option<String>> {
    let solution_field = load
        .solution_field
        .clone()
        .or_else(|| file.solution_field.clone())
        .filter(|f| !f.trim().is_empty());
    if let Some(f) = &solution_field {
        if !f.starts_with("UF_") {
            bail!("--solution-field / B24SYNC_SOLUTION_FIELD must be a lead user field code like UF_CRM_1712345678; got {f:?}");
        }
    }
    Ok(solution_field)
}

/// The webhook, or the OAuth application's client_id: at most one of them.
fn credentials(
    portal: &PortalArgs,
    file: &FileSettings,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let webhook = portal
        .webhook
        .clone()
        .or_else(|| file.webhook.clone())
        .filter(|w| !w.trim().is_empty());
    let client_id = portal
        .client_id
        .clone()
        .or_else(|| file.client_id.clone())
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if webhook.is_some() && client_id.is_some() {
        bail!("both a webhook (--webhook / B24SYNC_WEBHOOK / webhook) and an OAuth application (--client-id / B24SYNC_CLIENT_ID / client_id) are set: keep exactly one");
    }
    Ok((webhook, client_id))
}

/// How numbers without a country code are read, and the lookup's fallback tail length.
fn phone(args: &SyncArgs, file: &FileSettings) -> anyhow::Result<(DefaultRegion, usize)> {
    let phone_region: DefaultRegion = parsed(
        "--phone-region / B24SYNC_PHONE_REGION",
        args.load.phone_region.as_ref(),
        file.phone_region.as_ref(),
        "RU",
    )?;
    let tail_digits = args
        .tail_digits
        .or(file.tail_digits)
        .unwrap_or(DEFAULT_TAIL_DIGITS);
    if !(MIN_TAIL_DIGITS..=PHONE_TAIL_DIGITS).contains(&tail_digits) {
        bail!(
            "--tail-digits / B24SYNC_TAIL_DIGITS must be between {MIN_TAIL_DIGITS} and \
             {PHONE_TAIL_DIGITS} (10 matches a national number in RU and KZ); got {tail_digits}"
        );
    }
    Ok((phone_region, tail_digits))
}

fn give_up_after(portal: &PortalArgs, file: &FileSettings) -> anyhow::Result<Option<Duration>> {
    let give_up_after = match portal
        .give_up_after
        .as_ref()
        .or(file.give_up_after.as_ref())
    {
        None => None,
        Some(v) => {
            let d = parse_duration(v)
                .map_err(|e| anyhow::anyhow!("--give-up-after / B24SYNC_GIVE_UP_AFTER: {e}"))?;
            if d.is_zero() {
                bail!("--give-up-after / B24SYNC_GIVE_UP_AFTER must be longer than 0 (e.g. 2m); got {v:?}");
            }
            Some(d)
        }
    };
    Ok(give_up_after)
}

fn mode(args: &SyncArgs) -> anyhow::Result<SyncMode> {
    Ok(match (args.full, &args.since) {
        (true, Some(_)) => bail!("--full and --since exclude each other: --full reads every lead, --since only recent ones"),
        (true, None) => SyncMode::Full,
        (false, Some(since)) => SyncMode::Since(since.clone()),
        (false, None) => SyncMode::Auto,
    })
}

/// When the deletion check runs, and how much it may delete.
fn deletion(
    load: &LoadArgs,
    read: &ReadArgs,
    file: &FileSettings,
) -> anyhow::Result<DeletionPolicy> {
    let max_share = load
        .max_delete_share
        .or(file.max_delete_share)
        .unwrap_or(0.2);
    if !(0.0..=1.0).contains(&max_share) {
        bail!("--max-delete-share / B24SYNC_MAX_DELETE_SHARE must be between 0 and 1 (0.2 = at most 20% of the leads in one check); got {max_share}");
    }
    Ok(DeletionPolicy {
        every_runs: read
            .deletion_check_runs
            .or(file.deletion_check_runs)
            .unwrap_or(12),
        every: duration_setting(
            "--deletion-check-every / B24SYNC_DELETION_CHECK_EVERY",
            read.deletion_check_every
                .as_ref()
                .or(file.deletion_check_every.as_ref()),
            3600,
        )?,
        max_share,
    })
}

fn duration_setting(
    name: &str,
    value: Option<&String>,
    default_secs: u64,
) -> anyhow::Result<Duration> {
    match value {
        None => Ok(Duration::from_secs(default_secs)),
        Some(v) => parse_duration(v).map_err(|e| anyhow::anyhow!("{name}: {e}")),
    }
}

/// `90`, `90s`, `5m`, `1h`, `1d`: a number of seconds, minutes, hours or days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 90s, 5m, 1h or 1d"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("not a duration"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse_file("webhook = \"https://x/rest/1/s/\"\nsolution_feild = \"UF_CRM_1\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("solution_feild"), "{e}");
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_come_last() {
        let file = parse_file("db = \"from-file.db\"\nrate = 5.0\nburst = 250\n").unwrap();
        let mut args = SyncArgs::default();
        args.db.db = Some("from-flag.db".into());
        let s = Settings::resolve(&args, &file).unwrap();
        assert_eq!(s.db, "from-flag.db");
        assert_eq!((s.rate, s.burst), (5.0, 250));
        assert_eq!(s.batch_size, 2500);
        assert_eq!(s.time_policy, TimePolicy::Portal);
    }

    #[test]
    fn webhook_and_client_id_together_are_refused() {
        let mut args = SyncArgs::default();
        args.portal.client_id = Some("local.abc".into());
        let file = parse_file("webhook = \"https://x/rest/1/s/\"\n").unwrap();
        let e = Settings::resolve(&args, &file).unwrap_err().to_string();
        assert!(e.contains("--webhook") && e.contains("--client-id"), "{e}");
        assert!(!e.contains("https://x/rest/1/s/"), "{e}");
        let s = Settings::resolve(&args, &FileSettings::default()).unwrap();
        assert_eq!(s.client_id.as_deref(), Some("local.abc"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut args = SyncArgs::default();
        args.load.time_zone = Some("Mars/Olympus".into());
        let e = Settings::resolve(&args, &FileSettings::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--time-zone") && e.contains("Mars/Olympus"),
            "{e}"
        );
        let mut args = SyncArgs::default();
        args.load.solution_field = Some("SOLUTION".into());
        let e = Settings::resolve(&args, &FileSettings::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("UF_CRM_"), "{e}");
    }

    #[test]
    fn phone_settings_resolve_and_are_checked() {
        let s = Settings::resolve(&SyncArgs::default(), &FileSettings::default()).unwrap();
        assert_eq!((s.phone_region.code(), s.tail_digits), ("RU", 10));
        let file = parse_file("phone_region = \"by\"\ntail_digits = 9\n").unwrap();
        let s = Settings::resolve(&SyncArgs::default(), &file).unwrap();
        assert_eq!((s.phone_region.code(), s.tail_digits), ("BY", 9));
        assert_eq!(s.sync_options().phone_region.code(), "BY");
        let mut args = SyncArgs::default();
        args.load.phone_region = Some("Russia".into());
        let e = Settings::resolve(&args, &file).unwrap_err().to_string();
        assert!(e.contains("--phone-region") && e.contains("Russia"), "{e}");
        let args = SyncArgs {
            tail_digits: Some(3),
            ..Default::default()
        };
        let e = Settings::resolve(&args, &file).unwrap_err().to_string();
        assert!(e.contains("--tail-digits"), "{e}");
    }

    #[test]
    fn give_up_after_reads_like_the_other_durations() {
        let s = Settings::resolve(&SyncArgs::default(), &FileSettings::default()).unwrap();
        assert_eq!(s.give_up_after, None, "the client's default");
        let file = parse_file("give_up_after = \"90s\"\n").unwrap();
        let s = Settings::resolve(&SyncArgs::default(), &file).unwrap();
        assert_eq!(s.give_up_after, Some(Duration::from_secs(90)));
        let mut args = SyncArgs::default();
        args.portal.give_up_after = Some("2m".into());
        let s = Settings::resolve(&args, &file).unwrap();
        assert_eq!(
            s.give_up_after,
            Some(Duration::from_secs(120)),
            "the flag wins"
        );
        args.portal.give_up_after = Some("0".into());
        let e = Settings::resolve(&args, &file).unwrap_err().to_string();
        assert!(
            e.contains("--give-up-after") && e.contains("longer than 0"),
            "{e}"
        );
        args.portal.give_up_after = Some("soon".into());
        let e = Settings::resolve(&args, &file).unwrap_err().to_string();
        assert!(e.contains("--give-up-after") && e.contains("soon"), "{e}");
    }

    #[test]
    fn verify_is_carried_to_the_run_and_implies_nothing_else() {
        let plain = Settings::resolve(&SyncArgs::default(), &FileSettings::default()).unwrap();
        assert!(!plain.verify && !plain.sync_options().verify);
        let args = SyncArgs {
            verify: true,
            ..Default::default()
        };
        let s = Settings::resolve(&args, &FileSettings::default()).unwrap();
        assert!(s.sync_options().verify);
        assert_eq!(
            s.mode,
            SyncMode::Auto,
            "--verify does not make the run full"
        );
        assert!(!s.dry_run);
    }

    #[test]
    fn rebind_portal_is_carried_and_only_sync_creates_databases() {
        let args = SyncArgs {
            rebind_portal: true,
            ..Default::default()
        };
        let s = Settings::resolve(&args, &FileSettings::default()).unwrap();
        assert!(s.rebind_portal);
        assert_eq!(
            s.db_open,
            DbOpen::MustExist,
            "resolved settings never create"
        );
        assert_eq!(s.creating_db().db_open, DbOpen::Create);
    }
}
