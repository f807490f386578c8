//! The seeded generator: what a Russian-speaking call centre's portal looks like.
//!
//! A generated lead is never stored as JSON. Only its ID and two timestamps are kept
//! (see `data.rs`); everything else is re-derived on demand from `(seed, id)` with a
//! private RNG stream, so a million leads cost a few dozen MB and the same seed always
//! renders the same lead. The traps a loader must survive are sprinkled in on purpose:
//! quotes and backslashes, emoji, 40,000-character comments, 4,000+-character titles,
//! odd-but-valid birthdays, phones in every format people type, leads without contacts,
//! and batches of leads sharing one DATE_MODIFY second.
//!
//! Here: the RNG streams, the timestamps and their rendering, and the portal's users;
//! `gen/lead.rs` renders a lead, `gen/words.rs` holds the names, places and words it
//! draws from.

mod crm;
mod lead;
mod words;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

pub use crm::{generate_company, generate_contact, link_lead, Links};
pub use lead::generate_lead;
use words::USER_NAMES;

/// Number of generated users (`user.get`); leads' *_BY_ID point at them.
pub const USERS: u32 = 20;

/// Generated leads are modified no later than this instant (fixed so data is
/// deterministic; 2026-11-01T00:00:00Z). Anything changed through `Portal` is later.
pub const DATA_END_UNIX: i64 = 1_793_491_200;
/// Generated leads span three years before `DATA_END_UNIX`.
pub const DATA_SPAN_SECS: i64 = 3 * 365 * 86_400;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// An independent RNG stream per (seed, lead, purpose).
pub fn rng_for(seed: u64, id: i64, stream: u64) -> SmallRng {
    SmallRng::seed_from_u64(splitmix(seed ^ splitmix(id as u64 ^ splitmix(stream))))
}

/// (DATE_CREATE, DATE_MODIFY) as unix seconds for the `index`-th of `n` generated leads.
/// IDs grow with creation time, as on a real portal.
pub fn lead_times(seed: u64, id: i64, index: usize, n: usize) -> (i64, i64) {
    record_times(seed, id, index, n, 1)
}

/// The same for any entity, from its own RNG stream (contacts and companies use others).
pub fn record_times(seed: u64, id: i64, index: usize, n: usize, stream: u64) -> (i64, i64) {
    let mut rng = rng_for(seed, id, stream);
    let start = DATA_END_UNIX - DATA_SPAN_SECS;
    let n = n.max(1) as i64;
    let gap = (DATA_SPAN_SECS / n).max(1);
    let create = start + DATA_SPAN_SECS * index as i64 / n + rng.gen_range(0..gap);
    let roll: f64 = rng.gen();
    let modify = if roll < 0.4 {
        create
    } else if roll < 0.46 {
        // A mass update (import, robot): every lead touched in the same week shares one
        // second. Watermark logic that uses `>` instead of `>=` loses some of these.
        let week = 7 * 86_400;
        (create / week + 1) * week + 10 * 3600
    } else {
        create + rng.gen_range(60..180 * 86_400)
    };
    (create, modify.min(DATA_END_UNIX))
}

pub fn fmt_dt(unix: i64, offset: FixedOffset) -> String {
    match Utc.timestamp_opt(unix, 0).single() {
        Some(t) => t
            .with_timezone(&offset)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        None => String::new(),
    }
}

/// A `date` field as Bitrix24 sends it: midnight UTC shown in the portal's offset.
fn fmt_date(d: NaiveDate, offset: FixedOffset) -> String {
    let t: DateTime<Utc> = Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
    t.with_timezone(&offset)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The portal's users (`user.get`).
pub fn users() -> Vec<Value> {
    (1..=USERS)
        .map(|i| {
            let (name, last) = USER_NAMES[(i as usize - 1) % USER_NAMES.len()];
            json!({
                "ID": i.to_string(),
                "ACTIVE": true,
                "NAME": name,
                "LAST_NAME": last,
                "EMAIL": format!("user{i}@callcenter.example.ru"),
                "UF_PHONE_INNER": (100 + i).to_string(),
            })
        })
        .collect()
}
