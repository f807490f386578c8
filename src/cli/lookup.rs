//! `b24sync lookup <number>`: the caller lookup from the command line, the same query a
//! telephony system runs (see `docs/caller-lookup.md`): leads, contacts and companies, in
//! the order a telephony system takes the first row of.

use clap::Args;

use super::groups::{DbArgs, LoadArgs, SyncArgs};
use super::open::open_stores;
use super::settings::{FileSettings, Settings};
use super::{exit, fail, run_error_code};
use b24sync::model::caller::{CallerMatch, CallerQuery, EntityFilter};

/// The order of the matches, for `--help` (docs/caller-lookup.md says the same).
const ORDER_HELP: &str = "\
Matches come one per record, in the order a telephony system takes the first row of:
contacts and companies (known customers) before leads (prospects), then the most recently
modified, then the higher ID. A contact is shown with its company. At most 20 rows.
No match prints \"no lead, contact or company\" (exit code 0, as for a match; --json: an
empty \"matches\" list).";

#[derive(Debug, Args)]
#[command(after_help = ORDER_HELP)]
pub struct LookupArgs {
    /// The caller's number as the switch reports it or as a person writes it:
    /// 89123456789, +7 (912) 345-67-89, +375 29 123-45-67, ... A number without its
    /// country code is read as --phone-region's: a Belarusian 80291234567 needs
    /// --phone-region BY (with the default RU it matches nobody)
    #[arg(value_name = "NUMBER")]
    pub number: String,
    /// One JSON object: the keys used and the records found (each with its entity_type)
    #[arg(long)]
    pub json: bool,
    /// Only these entities, comma-separated: lead, contact, company (plurals accepted)
    /// [default: all three]
    #[arg(long, value_name = "TYPES", value_parser = parse_filter)]
    pub entity: Option<EntityFilter>,
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
    let filter = args.entity.clone().unwrap_or_default();
    let matches = if query.is_empty() {
        Vec::new()
    } else {
        let stores = match open_stores(&s).await {
            Ok(stores) => stores,
            Err(code) => return code,
        };
        match stores.lookup.lookup_caller_in(&query, &filter).await {
            Ok(m) => m,
            Err(e) => return run_error_code(&e.into()),
        }
    };
    if args.json {
        let out = serde_json::json!({
            "number": args.number,
            "e164": query.e164,
            "tail": query.tail,
            "entities": filter.names(),
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
        println!("{key}: no {}", either(filter.names()));
    } else {
        println!(
            "{key}: {} match(es), contacts and companies first, then leads, most recently modified first",
            matches.len()
        );
        for m in &matches {
            println!("{}", describe(m));
        }
    }
    exit::OK
}

fn parse_filter(text: &str) -> Result<EntityFilter, String> {
    EntityFilter::parse(text)
}

/// "lead, contact or company", "contact or company", "company".
fn either(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// One line per record: "contact 12 «Иван Петрович Петров» (ООО Ромашка), type CLIENT,
/// modified …; operator 5 Анна Смирнова, ext. 105; phone +7 912 345-67-89", and for a lead
/// "lead 17 «Title» Иван Петров (ООО Ромашка), status NEW, …".
fn describe(m: &CallerMatch) -> String {
    let join = |parts: &[&Option<String>]| -> String {
        parts
            .iter()
            .filter_map(|p| p.as_deref())
            .filter(|p| !p.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut line = format!("{} {}", m.entity_type, m.entity_id);
    if let Some(t) = m.title.as_deref().filter(|t| !t.is_empty()) {
        line.push_str(&format!(" «{t}»"));
    }
    // A contact's title is its name already; a company has no person.
    if m.entity_type == "lead" {
        let person = join(&[&m.name, &m.last_name]);
        if !person.is_empty() {
            line.push_str(&format!(" {person}"));
        }
    }
    if m.entity_type != "company" {
        if let Some(c) = m.company_title.as_deref().filter(|c| !c.is_empty()) {
            line.push_str(&format!(" ({c})"));
        }
    }
    if let Some(st) = m.status_or_type.as_deref().filter(|s| !s.is_empty()) {
        let what = if m.entity_type == "lead" {
            "status"
        } else {
            "type"
        };
        line.push_str(&format!(", {what} {st}"));
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
    if let Some(p) = &m.phone_value {
        line.push_str(&format!("; phone {p}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> CallerMatch {
        CallerMatch {
            entity_type: "lead".into(),
            entity_id: 17,
            title: Some("Окна".into()),
            name: Some("Иван".into()),
            last_name: Some("Петров".into()),
            company_id: None,
            company_title: None,
            status_or_type: Some("NEW".into()),
            date_modify: None,
            operator_id: Some("5".into()),
            operator_name: Some("Анна".into()),
            operator_last_name: None,
            operator_extension: Some("105".into()),
            phone_value: None,
        }
    }

    #[test]
    fn a_match_reads_as_one_line() {
        assert_eq!(
            describe(&lead()),
            "lead 17 «Окна» Иван Петров, status NEW; operator 5 Анна, ext. 105"
        );
        let contact = CallerMatch {
            entity_type: "contact".into(),
            entity_id: 8,
            title: Some("Иван Петрович Петров".into()),
            company_id: Some(3),
            company_title: Some("ООО Ромашка".into()),
            status_or_type: Some("CLIENT".into()),
            operator_id: None,
            phone_value: Some("+7 912 345-67-89".into()),
            ..lead()
        };
        assert_eq!(
            describe(&contact),
            "contact 8 «Иван Петрович Петров» (ООО Ромашка), type CLIENT; no operator; phone +7 912 345-67-89"
        );
        let company = CallerMatch {
            entity_type: "company".into(),
            entity_id: 3,
            title: Some("ООО Ромашка".into()),
            name: None,
            last_name: None,
            company_id: Some(3),
            company_title: Some("ООО Ромашка".into()),
            status_or_type: Some("CUSTOMER".into()),
            ..lead()
        };
        assert_eq!(
            describe(&company),
            "company 3 «ООО Ромашка», type CUSTOMER; operator 5 Анна, ext. 105"
        );
    }

    #[test]
    fn the_no_match_line_names_the_entities_searched() {
        assert_eq!(
            either(EntityFilter::all().names()),
            "lead, contact or company"
        );
        assert_eq!(
            either(EntityFilter::parse("contact,company").unwrap().names()),
            "contact or company"
        );
        assert_eq!(
            either(EntityFilter::parse("company").unwrap().names()),
            "company"
        );
    }
}
