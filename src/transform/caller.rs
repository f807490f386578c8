//! Caller lookup keys: an incoming number, in any format, normalised the way stored phones
//! are.
//!
//! At load time every PHONE value is normalised (`transform::phones`) into
//! `b24sync_lead_phones` beside the contract tables. A lookup normalises the caller's
//! number the same way ([`CallerQuery::new`]) and a `store::CallerLookup` runs one indexed
//! query (see `docs/caller-lookup.md`):
//! - the caller's number normalises to E.164 → the phones with that E.164 (index seek);
//! - it does not ("3456789", an odd prefix) → the phones whose digits end with the caller's
//!   last N digits, an index prefix seek on the reversed digits.

use crate::model::caller::CallerQuery;
use crate::model::PHONE_TAIL_DIGITS;
use crate::transform::phone::{lookup_key, DefaultRegion};
use crate::transform::phones::reversed;

/// Digits compared by the fallback match unless `--tail-digits` says otherwise: a
/// national number in RU/KZ (without the trunk prefix or country code).
pub const DEFAULT_TAIL_DIGITS: usize = 10;
/// Fewer trailing digits identify nobody (a 7-digit city number without its area code is
/// the least that can); a shorter caller number does not fall back to a tail match.
pub const MIN_TAIL_DIGITS: usize = 7;
/// At most this many leads are returned, most recently modified first: a number shared by a
/// whole office should not flood the operator's screen.
pub const MAX_MATCHES: u32 = 20;

impl CallerQuery {
    /// Normalise the caller's number like the stored ones (`region` for numbers without a
    /// country code); `tail_digits` (clamped to 1..=15) for the fallback.
    pub fn new(number: &str, region: &DefaultRegion, tail_digits: usize) -> CallerQuery {
        let n = tail_digits.clamp(1, PHONE_TAIL_DIGITS);
        let key = lookup_key(number, region, n);
        let tail = match &key.e164 {
            Some(_) => None,
            None => key.tail.filter(|t| t.len() >= MIN_TAIL_DIGITS.min(n)),
        };
        CallerQuery {
            e164: key.e164,
            tail,
            limit: MAX_MATCHES,
        }
    }

    /// The parameters of the lookup query, the same for both databases: the E.164 form
    /// (`""` for none: no NULL parameter is ever sent) and the reversed tail (`""` for none).
    pub fn params(&self) -> (String, String) {
        (
            self.e164.clone().unwrap_or_default(),
            self.tail.as_deref().map(reversed).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_that_normalise_are_looked_up_by_e164_only() {
        let ru = DefaultRegion::default();
        let q = CallerQuery::new("8 (912) 345-67-89", &ru, 10);
        assert_eq!(q.e164.as_deref(), Some("+79123456789"));
        assert_eq!(q.tail, None);
        assert_eq!(q.params(), ("+79123456789".to_string(), String::new()));
    }

    #[test]
    fn other_callers_fall_back_to_their_last_digits() {
        let ru = DefaultRegion::default();
        let q = CallerQuery::new("+7 (000) 345-67-89", &ru, 10);
        assert_eq!(q.e164, None);
        assert_eq!(q.tail.as_deref(), Some("0003456789"));
        assert_eq!(q.params(), (String::new(), "9876543000".to_string()));
        let q = CallerQuery::new("345-67-89", &ru, 10);
        assert_eq!(q.tail.as_deref(), Some("3456789"));
        // Too few digits to identify anyone; no digits at all.
        assert!(CallerQuery::new("12-34", &ru, 10).is_empty());
        assert!(CallerQuery::new("anonymous", &ru, 10).is_empty());
        // The tail length is configurable, and capped at what is stored.
        assert_eq!(
            CallerQuery::new("+7 (000) 345-67-89", &ru, 7)
                .tail
                .as_deref(),
            Some("3456789")
        );
        assert_eq!(
            CallerQuery::new("+7 (000) 345-67-89", &ru, 99)
                .tail
                .as_deref(),
            Some("70003456789")
        );
    }
}
