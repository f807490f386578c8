//! The typed rows of a caller lookup: the keys computed from the caller's number
//! (`CallerQuery::new` and `CallerQuery::params`, in `lookup`, normalise it the way
//! `transform` normalises stored phones), which entities to search, and the records found.

use chrono::NaiveDateTime;

use crate::schema::{Entity, ENTITIES};

/// The keys of one lookup, computed from the caller's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerQuery {
    /// The caller's E.164 form, when the number normalises.
    pub e164: Option<String>,
    /// Else the caller's last N digits (the fallback), when there are at least
    /// `lookup::MIN_TAIL_DIGITS` of them.
    pub tail: Option<String>,
    pub limit: u32,
}

impl CallerQuery {
    /// Whether there is anything to look for.
    pub fn is_empty(&self) -> bool {
        self.e164.is_none() && self.tail.is_none()
    }
}

/// Which entities a lookup returns (`b24sync lookup --entity contact,company`): every one
/// by default. Sent to both databases as three entity names (`lead`, `contact`,
/// `company`; a shorter list is padded by repeating its last name), so no NULL and no SQL
/// text is ever built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityFilter {
    names: Vec<&'static str>,
}

impl Default for EntityFilter {
    fn default() -> Self {
        EntityFilter::all()
    }
}

impl EntityFilter {
    /// Leads, contacts and companies.
    pub fn all() -> Self {
        EntityFilter {
            names: ENTITIES.iter().map(|e| e.name).collect(),
        }
    }

    /// Only these entities (at least one; repeats are kept once).
    pub fn only(entities: &[Entity]) -> Self {
        let mut names: Vec<&'static str> = Vec::new();
        for e in entities {
            if !names.contains(&e.name) {
                names.push(e.name);
            }
        }
        if names.is_empty() {
            return EntityFilter::all();
        }
        EntityFilter { names }
    }

    /// A comma-separated list of entity names, singular or plural, any case:
    /// `contact,company`, `leads`. The error names the bad word and the choices.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entities = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match Entity::by_name(word) {
                Some(e) => entities.push(e),
                None => {
                    return Err(format!(
                        "{word:?} is not an entity the lookup knows: use {} (comma-separated)",
                        ENTITIES
                            .iter()
                            .map(|e| e.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
        if entities.is_empty() {
            return Err(format!(
                "no entity named in {text:?}: use {} (comma-separated)",
                ENTITIES
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(EntityFilter::only(&entities))
    }

    /// The entity names allowed, in `ENTITIES` order of first mention.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Whether every entity is allowed.
    pub fn is_all(&self) -> bool {
        ENTITIES.iter().all(|e| self.names.contains(&e.name))
    }

    /// The three names the lookup queries bind (`entity_type IN (?, ?, ?)`).
    pub fn params(&self) -> [String; 3] {
        let last = self.names.last().copied().unwrap_or("lead");
        let at = |i: usize| self.names.get(i).copied().unwrap_or(last).to_string();
        [at(0), at(1), at(2)]
    }
}

/// One record found for a caller: a lead, a contact or a company, one row per record (the
/// same columns as `b24sync_lookup_caller` on SQL Server and the embedded database's
/// `b24sync_caller_phones`). Returned contacts and companies (known customers) first, then
/// leads (prospects); within each, most recently modified first, then the higher ID.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallerMatch {
    /// `lead`, `contact` or `company` (`Entity::name`).
    pub entity_type: String,
    /// The record's Bitrix24 ID (`sql_ID` of its table).
    pub entity_id: i64,
    /// What names the record: a lead's TITLE; a contact's NAME SECOND_NAME LAST_NAME; a
    /// company's TITLE.
    pub title: Option<String>,
    /// The person's first name (a lead's or a contact's NAME; none for a company).
    pub name: Option<String>,
    /// The person's last name (LAST_NAME; none for a company).
    pub last_name: Option<String>,
    /// The company: a contact's primary company (`COMPANY_ID`, when that company is
    /// synced), a company itself, a lead's linked company.
    pub company_id: Option<i64>,
    /// A lead's COMPANY_TITLE (as typed); the TITLE of a contact's company; a company's own
    /// TITLE.
    pub company_title: Option<String>,
    /// A lead's STATUS_ID, a contact's TYPE_ID, a company's COMPANY_TYPE.
    pub status_or_type: Option<String>,
    pub date_modify: Option<NaiveDateTime>,
    /// The record's `ASSIGNED_BY_ID`, known even when the operator's details are not.
    pub operator_id: Option<String>,
    pub operator_name: Option<String>,
    pub operator_last_name: Option<String>,
    /// The operator's internal phone extension (`UF_PHONE_INNER`).
    pub operator_extension: Option<String>,
    /// The record's phone value that matched, as typed in Bitrix24 (the first stored one
    /// when several match).
    pub phone_value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{COMPANY, CONTACT, LEAD};

    #[test]
    fn a_filter_names_what_it_keeps_and_pads_its_parameters() {
        assert!(EntityFilter::all().is_all());
        assert_eq!(EntityFilter::all().params(), ["lead", "contact", "company"]);
        let f = EntityFilter::parse("Contact, companies").unwrap();
        assert_eq!(f, EntityFilter::only(&[CONTACT, COMPANY]));
        assert_eq!(f.params(), ["contact", "company", "company"]);
        assert!(!f.is_all());
        assert_eq!(
            EntityFilter::parse("lead,lead").unwrap().params(),
            ["lead", "lead", "lead"]
        );
        assert_eq!(EntityFilter::only(&[]), EntityFilter::all());
        assert_eq!(
            EntityFilter::only(&[COMPANY, LEAD, CONTACT]).params(),
            ["company", "lead", "contact"]
        );
        let e = EntityFilter::parse("contact,deal").unwrap_err();
        assert!(
            e.contains("\"deal\"") && e.contains("lead, contact, company"),
            "{e}"
        );
        assert!(EntityFilter::parse(" , ").is_err());
    }
}
