//! `b24sync lookup <number>`: the caller lookup from the command line, the same query a
//! telephony system runs (see `docs/caller-lookup.md`).

use clap::Args;

use super::groups::{DbArgs, LoadArgs, SyncArgs};
use super::open::open_stores;
use super::settings::{FileSettings, Settings};
use super::{exit, fail, run_error_code};
use b24sync::model::caller::{CallerMatch, CallerQuery};

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The caller's number as the switch reports it or as a person writes it:
    /// 89123456789, +7 (912) 345-67-89, +375 29 123-45-67, ... A number without its
    /// country code is read as --phone-region's: a Belarusian 80291234567 needs
    /// --phone-region BY (with the default RU it matches nobody)
    #[arg(value_name = "NUMBER")]
    pub number: String,
    /// One JSON object: the keys used and the leads found
    #[arg(long)]
    pub json: bool,
    /// Country of a number written without a country code (RU, BY, UA, KZ, ...) [default: RU]
    #[arg(long, env = "B24SYNC_PHONE_REGION", value_name = "CODE")]
    pub phone_region: Option<String>,
    /// When the number cannot be normalised, match leads on its last N digits (7 to 15) [default: 10]
    #[arg(long, env = "B24SYNC_TAIL_DIGITS", value_name = "N")]
    pub tail_digits: Option<usize>,
    // Last: its help heading would also cover the flags after it.
    #[command(flatten)]
    pub db: DbArgs,
}

pub async fn lookup_command(args: &LookupArgs, file: &FileSettings) -> u8 {
    let s = match Settings::resolve(
        &SyncArgs {
            db: args.db.clone(),
            load: LoadArgs {
                phone_region: args.phone_region.clone(),
                ..LoadArgs::default()
            },
            tail_digits: args.tail_digits,
            ..Default::default()
        },
        file,
    ) {
        Ok(s) => s,
        Err(e) => return fail(exit::CONFIG, &e),
    };
    let query = CallerQuery::new(&args.number, &s.phone_region, s.tail_digits);
    let matches = if query.is_empty() {
        Vec::new()
    } else {
        let stores = match open_stores(&s).await {
            Ok(stores) => stores,
            Err(code) => return code,
        };
        match stores.lookup.lookup_caller(&query).await {
            Ok(m) => m,
            Err(e) => return run_error_code(&e.into()),
        }
    };
    if args.json {
        let out = serde_json::json!({
            "number": args.number,
            "e164": query.e164,
            "tail": query.tail,
            "matches": matches,
        });
        println!("{out}");
        return exit::OK;
    }
    let key = match (&query.e164, &query.tail) {
        (Some(e), _) => e.clone(),
        (None, Some(t)) => format!(
            "…{t} (not a full number: matched on its last {} digits)",
            t.len()
        ),
        (None, None) => {
            eprintln!(
                "{:?} has too few digits to look up (at least {} are needed)",
                args.number,
                b24sync::transform::caller::MIN_TAIL_DIGITS
            );
            return exit::OK;
        }
    };
    if matches.is_empty() {
        println!("{key}: no lead");
    } else {
        println!(
            "{key}: {} lead(s), most recently modified first",
            matches.len()
        );
        for m in &matches {
            println!("{}", describe(m));
        }
    }
    exit::OK
}

/// One line per lead: "lead 17 «Title» Иван Петров (ООО Ромашка), status NEW, modified …;
/// operator 5 Анна Смирнова, ext. 105".
fn describe(m: &CallerMatch) -> String {
    let join = |parts: &[&Option<String>]| -> String {
        parts
            .iter()
            .filter_map(|p| p.as_deref())
            .filter(|p| !p.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut line = format!("lead {}", m.lead_id);
    if let Some(t) = m.title.as_deref().filter(|t| !t.is_empty()) {
        line.push_str(&format!(" «{t}»"));
    }
    let person = join(&[&m.name, &m.last_name]);
    if !person.is_empty() {
        line.push_str(&format!(" {person}"));
    }
    if let Some(c) = m.company_title.as_deref().filter(|c| !c.is_empty()) {
        line.push_str(&format!(" ({c})"));
    }
    if let Some(st) = &m.status_id {
        line.push_str(&format!(", status {st}"));
    }
    if let Some(d) = &m.date_modify {
        line.push_str(&format!(", modified {d}"));
    }
    match &m.operator_id {
        Some(id) => {
            line.push_str(&format!("; operator {id}"));
            let name = join(&[&m.operator_name, &m.operator_last_name]);
            if !name.is_empty() {
                line.push_str(&format!(" {name}"));
            }
            if let Some(ext) = &m.operator_extension {
                line.push_str(&format!(", ext. {ext}"));
            }
        }
        None => line.push_str("; no operator"),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_reads_as_one_line() {
        let m = CallerMatch {
            lead_id: 17,
            title: Some("Окна".into()),
            name: Some("Иван".into()),
            last_name: Some("Петров".into()),
            company_title: None,
            status_id: Some("NEW".into()),
            date_modify: None,
            operator_id: Some("5".into()),
            operator_name: Some("Анна".into()),
            operator_last_name: None,
            operator_extension: Some("105".into()),
        };
        assert_eq!(
            describe(&m),
            "lead 17 «Окна» Иван Петров, status NEW; operator 5 Анна, ext. 105"
        );
    }
}
