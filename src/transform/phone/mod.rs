//! Phone-number normalisation: Bitrix24 phone values as people typed them → E.164.
//!
//! Oktell identifies a caller by the number the switch reports ("79123456789",
//! "+79123456789", "89123456789", "9123456789"), while Bitrix24 keeps whatever the manager
//! typed ("8 (912) 345-67-89 доб. 12"). Both sides are brought to one canonical form here:
//! E.164 (`+79123456789`) with the extension kept apart, plus a "last N digits" tail for the
//! fallback match that telephony systems commonly use.
//!
//! Pure: no I/O, no globals besides the `phonenumber` crate's built-in metadata.
//!
//! How a value is read:
//! 1. `tel:` and RFC 3966 parameters (`;ext=12`) are taken off.
//! 2. A trailing extension is split off ("доб. 12", "добавочный 12", "ext. 5", "x5",
//!    "#12", ", 12", "(доб. 12)"), so it never disturbs the number itself.
//! 3. What is left may hold only digits, one leading `+` and separators (spaces, dashes,
//!    dots, slashes, brackets); any letter or other symbol means it is not a phone number.
//! 4. The digits are read as international (`+`, `00`, or `810` — the CIS "8, wait for the
//!    tone, 10" prefix) or as national in the default region, with the CIS habits handled
//!    explicitly (see `candidates`), and the result checked with the validity rule in
//!    `assess`.
//!
//! Only the `phonenumber` crate's *metadata* (libphonenumber's numbering plans: country
//! codes, trunk prefixes, number patterns) is used, not its parser. The parser (0.3.10)
//! takes the trunk prefix "8" off numbers that are already international, so every Russian
//! number whose area code starts with 8 is mangled: "+7 812 123 45 67" (St Petersburg)
//! becomes "+7 121 234 567", "+7 800 555 35 35" becomes "+7 005 553 535", and "+375 800…"
//! likewise (whisperfish/rust-phonenumber#76, open). It has also panicked on odd
//! punctuation (#43) and slices a `+`-number's first three digits unchecked. The readings
//! here are simple enough to do directly, and the metadata answers the question that
//! needs data: does this number exist in that country's plan.

use std::fmt;
use std::str::FromStr;
use std::sync::PoisonError;

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};

mod raw;
use raw::{ascii_digit, not_a_number, parse_raw, RawParts};

/// A number in a canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPhone {
    /// E.164 digits with a leading '+': "+79123456789".
    pub e164: String,
    /// The extension when one was written ("доб. 12", "ext. 5", "x5", ",12" after the
    /// number): "12".
    pub extension: Option<String>,
}

/// Why a value is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    /// The reason, in plain words, naming the value.
    #[error("not a phone number: {0}")]
    NotANumber(String),
}

/// Default region for numbers written without a country code ("RU", "BY", "UA", "KZ", any
/// ISO 3166 code the `phonenumber` crate has metadata for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DefaultRegion {
    /// The two-letter code, always one the metadata has a numbering plan for.
    code: &'static str,
}

impl DefaultRegion {
    /// The two-letter code: "RU".
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl Default for DefaultRegion {
    /// Russia: the tool's users are Russian-speaking call centres, and RU numbers written
    /// without a country code are by far the most common in their CRMs.
    fn default() -> Self {
        DefaultRegion { code: "RU" }
    }
}

impl fmt::Display for DefaultRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for DefaultRegion {
    type Err = String;

    /// A two-letter ISO 3166 code, any case: "RU", "by".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim().to_ascii_uppercase();
        // Only codes with a numbering plan in the metadata: a region without one could not
        // read a national number. (The metadata also has "001", the non-geographic codes,
        // which is no region.)
        match DATABASE.by_id(code.as_str()).map(|m| m.id()) {
            Some(known) if known.len() == 2 && known.bytes().all(|b| b.is_ascii_uppercase()) => {
                Ok(DefaultRegion { code: known })
            }
            _ => Err(format!(
                "unknown phone region {s:?}: use a two-letter ISO 3166 country code such as \
                 \"RU\", \"BY\", \"UA\" or \"KZ\""
            )),
        }
    }
}

/// The keys to look a caller up by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupKey {
    /// The E.164 form when the caller's number can be normalised.
    pub e164: Option<String>,
    /// The last `tail_digits` digits of the caller's digits (all of them when it has
    /// fewer), for the fallback match; `None` only when it has no digits or
    /// `tail_digits` is 0.
    pub tail: Option<String>,
}

/// Longest raw value considered. The longest real spelling ("+7 (912) 345-67-89
/// (добавочный 12345)") is under 50 characters; anything far longer is a note pasted into
/// the phone field, and refusing it early keeps the extension scan cheap.
const MAX_RAW_CHARS: usize = 128;
/// E.164 allows at most 15 digits including the country code.
const MAX_E164_DIGITS: usize = 15;
/// Shorter values are local numbers without an area code, short service codes or internal
/// extensions, none of which identify a caller. Only a few island territories have
/// shorter full numbers (Niue: +683 and 4 digits); a CRM here will not hold them.
const MIN_E164_DIGITS: usize = 8;
/// Digits a raw value may hold before its prefixes are taken off: 15 plus an
/// international prefix of up to three digits ("810").
const MAX_RAW_DIGITS: usize = MAX_E164_DIGITS + 3;
/// Fewer digits than this cannot make [`MIN_E164_DIGITS`] even with a 3-digit country
/// code added, so such values are refused with a plain "too few digits".
const MIN_RAW_DIGITS: usize = MIN_E164_DIGITS - 3;

/// Normalise one phone value as typed into Bitrix24.
pub fn normalize(raw: &str, region: &DefaultRegion) -> Result<NormalizedPhone, PhoneError> {
    let parsed = parse_raw(raw)?;
    let e164 = resolve(&parsed, region)?;
    Ok(NormalizedPhone {
        e164,
        extension: parsed.extension,
    })
}

/// The keys to look a caller up by: the E.164 form when the caller's number can be
/// normalised, and always the last `tail_digits` digits of its digits (fallback matching,
/// as telephony systems often do).
pub fn lookup_key(caller: &str, region: &DefaultRegion, tail_digits: usize) -> LookupKey {
    let parsed = parse_raw(caller);
    let e164 = match &parsed {
        Ok(p) => resolve(p, region).ok(),
        Err(_) => None,
    };
    // The tail is taken from the number's own digits when the value could be read (so an
    // extension's digits do not end up in it), and from every digit otherwise.
    let digits: String = match &parsed {
        Ok(p) => p.digits.clone(),
        Err(_) => caller.chars().filter_map(ascii_digit).collect(),
    };
    let tail = Some(last_digits(&digits, tail_digits)).filter(|t| !t.is_empty());
    LookupKey { e164, tail }
}

/// The last `n` digits of a normalised number (for the stored side of the fallback match).
///
/// A number with fewer digits gives all of them, the same rule [`lookup_key`] applies to
/// the caller, so the two sides stay comparable.
pub fn tail(e164: &str, n: usize) -> String {
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    last_digits(&digits, n)
}

fn last_digits(digits: &str, n: usize) -> String {
    // `digits` is ASCII, so byte offsets are character offsets.
    digits[digits.len().saturating_sub(n)..].to_string()
}

/// One way to read the digits: a country code and a national significant number.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    code: u16,
    nsn: String,
    /// How the digits were read, for error messages: "+70441234567" or
    /// "0441234567 as a number in RU".
    as_written: String,
}

impl Reading {
    fn e164(&self) -> String {
        format!("+{}{}", self.code, self.nsn)
    }
}

/// "+" and `digits`: the country code is the 1–3 digit prefix some country has (ITU
/// codes are prefix-free, so at most one fits).
fn international(digits: &str) -> Result<Reading, String> {
    if digits.len() < MIN_E164_DIGITS {
        return Err(format!(
            "+{digits} has only {} digits; a full international number has at least \
             {MIN_E164_DIGITS}",
            digits.len()
        ));
    }
    (1..=3)
        .filter_map(|len| {
            let code: u16 = digits.get(..len)?.parse().ok()?;
            DATABASE.by_code(&code)?;
            Some(Reading {
                code,
                nsn: digits[len..].to_string(),
                as_written: format!("+{digits}"),
            })
        })
        .next()
        .ok_or_else(|| format!("+{digits} starts with no country code in use"))
}

/// `nsn` as a national significant number of `region`; `digits` is what was written.
fn national(digits: &str, nsn: &str, region: &DefaultRegion) -> Result<Reading, String> {
    let code = DATABASE
        .by_id(region.code())
        .map(|m| m.country_code())
        .ok_or_else(|| format!("no numbering plan is known for region {region}"))?;
    Ok(Reading {
        code,
        nsn: nsn.to_string(),
        as_written: format!("{digits} as a number in {region}"),
    })
}

/// Turn the digits into E.164, trying the readings [`candidates`] lists, group by group.
///
/// Within a group the first reading the metadata calls valid wins; failing that, the first
/// plausible one (see [`assess`]). Only when a group has neither is the next group tried.
/// When nothing fits, the first reading's reason is reported: it is the one the writer
/// most likely meant.
fn resolve(parts: &RawParts, region: &DefaultRegion) -> Result<String, PhoneError> {
    let mut first_reason: Option<String> = None;
    for group in candidates(parts, region) {
        let mut plausible: Option<String> = None;
        for reading in group {
            match reading.and_then(|r| assess(&r)) {
                Ok(Verdict::Valid(e164)) => return Ok(e164),
                Ok(Verdict::Plausible(e164)) => {
                    plausible.get_or_insert(e164);
                }
                Err(why) => {
                    first_reason.get_or_insert(why);
                }
            }
        }
        if let Some(e164) = plausible {
            return Ok(e164);
        }
    }
    Err(not_a_number(first_reason.unwrap_or_else(|| {
        format!("{} fits no numbering plan", parts.digits)
    })))
}

/// International prefixes that mean "a country code follows". "00" is the one most of the
/// world uses (UA among them); "810" is RU/KZ/BY's ("8, wait for the tone, 10"), and no
/// national number there starts with "10", so it cannot be a trunk prefix + area code.
fn strip_idd<'a>(digits: &'a str, region: &DefaultRegion) -> Option<&'a str> {
    if let Some(rest) = digits.strip_prefix("00") {
        return Some(rest);
    }
    if matches!(region.code(), "RU" | "KZ" | "BY") {
        return digits.strip_prefix("810");
    }
    // Elsewhere, the region's own prefix when the metadata gives a plain one ("011" in
    // the US); prefixes with a wait ("8~10") or alternatives are left alone.
    let idd = DATABASE
        .by_id(region.code())
        .and_then(|m| m.preferred_international_prefix())
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?;
    digits.strip_prefix(idd)
}

type Candidate = Result<Reading, String>;

/// The readings of the digits worth trying, in groups, most likely first.
///
/// - `+…` and an international prefix ([`strip_idd`]) are international. The one other
///   reading: in RU/KZ, "+8 912…" (11 digits) is a common slip for "+7 912…" or "8 912…",
///   tried only when no country code fits ("+8 1…" could be Japan).
/// - First group, the CIS habits, spelled out rather than left to metadata because they
///   are what this tool mostly sees:
///   - RU/KZ: 11 digits starting 7 or 8 ("7 912…", "8 912…", "8 701…") and bare 10
///     digits ("912…") are +7 and the last 10 digits. Note "8 800…" and "8 812…": the
///     area code may itself start with 8, so only the first 8 is a trunk prefix.
///   - BY: "8 029…" (trunk "8", area code with its "0"), "8 29…", "029…" and 9 bare
///     digits are +375.
///   - UA: "044…" (trunk "0"), "8 044…" (the trunk prefix until 2009, still common in old
///     records) and 9 bare digits are +380.
/// - Second group: the region's trunk prefix from the metadata taken off, the digits as
///   they are, and the digits as international without the '+' ("375 29…" typed in a RU
///   CRM, "380 44…" in a UA one).
fn candidates(parts: &RawParts, region: &DefaultRegion) -> Vec<Vec<Candidate>> {
    let d = parts.digits.as_str();
    if parts.plus {
        let mut groups = vec![vec![international(d)]];
        if matches!(region.code(), "RU" | "KZ") && d.len() == 11 && d.starts_with('8') {
            groups.push(vec![national(d, &d[1..], region)]);
        }
        return groups;
    }
    if let Some(rest) = strip_idd(d, region) {
        return vec![vec![international(rest)]];
    }

    let cis_nsn: Option<&str> = match (region.code(), d.len()) {
        ("RU" | "KZ", 11) if d.starts_with('7') || d.starts_with('8') => Some(&d[1..]),
        ("RU" | "KZ", 10) => Some(d),
        ("BY", 11) => d.strip_prefix("80"),
        ("BY", 10) => d.strip_prefix('0').or_else(|| d.strip_prefix('8')),
        ("BY", 9) => Some(d),
        ("UA", 11) => d.strip_prefix("80"),
        ("UA", 10) => d.strip_prefix('0'),
        ("UA", 9) => Some(d),
        _ => None,
    };
    let mut groups = Vec::new();
    if let Some(nsn) = cis_nsn {
        groups.push(vec![national(d, nsn, region)]);
    }

    let mut generic = Vec::new();
    let trunk = DATABASE
        .by_id(region.code())
        .and_then(|m| m.national_prefix())
        .filter(|p| !p.is_empty());
    if let Some(nsn) = trunk.and_then(|t| d.strip_prefix(t)) {
        generic.push(national(d, nsn, region));
    }
    generic.push(national(d, d, region));
    generic.push(international(d));
    groups.push(generic);
    groups
}

/// How strongly a reading is supported.
enum Verdict {
    /// The number is in a range the metadata lists for its country.
    Valid(String),
    /// It fits its country's numbering plan, though the metadata lists no such range.
    Plausible(String),
}

/// Descriptors of the kinds of numbers a person can call from or be called on; the same
/// set the crate's `is_valid` checks (short codes and emergency numbers are left out).
fn subscriber_kinds(meta: &Metadata) -> [Option<&Descriptor>; 10] {
    let d = meta.descriptors();
    [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
}

/// Whether `nsn` is, in full, a number `desc` describes.
///
/// Not the crate's `Descriptor::is_match`: that only checks that the pattern matches at the
/// start, and the "general" descriptors carry no list of lengths to make up for it, so
/// "80291234567" (a BY number read as Russian) would "fit" Russia's `[347-9]\d{9}` by its
/// first ten digits. The pattern is anchored here instead, compiled once into the
/// metadata's own regex cache.
fn fits(desc: &Descriptor, nsn: &str) -> bool {
    let lengths = desc.possible_length();
    if !lengths.is_empty() && !lengths.iter().any(|&l| usize::from(l) == nsn.len()) {
        return false;
    }
    let anchored = format!("^(?:{})$", desc.national_number().as_str());
    let cache = DATABASE.cache();
    // A poisoned lock only means another thread panicked mid-lookup; the cache itself is
    // still a valid map of compiled patterns.
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    // The metadata's patterns are written across lines with spaces (libphonenumber's XML),
    // which the crate compiles with `ignore_whitespace`; so must this.
    cache
        .configure(&anchored, |b| b.ignore_whitespace(true))
        .map(|re| re.is_match(nsn))
        .unwrap_or(false)
}

/// The validity rule.
///
/// A reading is a phone number when its E.164 form has 8–15 digits, its country code
/// exists, and its national part fits that country's numbering plan as a whole (the
/// metadata's "general" description: lengths and leading digits; for Russia, 10 digits
/// starting 3, 4, 7, 8 or 9). It is *valid* when it also falls in a range the metadata
/// lists (what the crate's `is_valid` checks), and only *plausible* otherwise; valid
/// readings win over plausible ones (see [`resolve`]).
///
/// Why accept plausible numbers: `is_valid` checks the ranges assigned when the crate's
/// metadata was cut. CRMs hold numbers from ranges assigned since, test numbers and ported
/// numbers; refusing them would make a real caller unfindable, while keeping a number that
/// fits the plan but is unassigned costs nothing (nobody calls from it). Why not just a
/// length: "+7 012 345 67 89" or "+7 (000) 000-00-00" have the right length but cannot
/// exist; they are placeholders typed to get past a required field.
fn assess(reading: &Reading) -> Result<Verdict, String> {
    let e164 = reading.e164();
    let n = e164.len() - 1;
    let shown = if reading.as_written == e164 {
        e164.clone()
    } else {
        format!("{} ({e164})", reading.as_written)
    };
    if !(MIN_E164_DIGITS..=MAX_E164_DIGITS).contains(&n) {
        return Err(format!(
            "{shown} would have {n} digits; a full international number has \
             {MIN_E164_DIGITS} to {MAX_E164_DIGITS}"
        ));
    }
    let plans = DATABASE.by_code(&reading.code).unwrap_or_default();
    let nsn = reading.nsn.as_str();
    let fitting: Vec<&Metadata> = plans
        .into_iter()
        .filter(|m| fits(m.descriptors().general(), nsn))
        .collect();
    if fitting.is_empty() {
        return Err(format!(
            "{shown} does not fit the numbering plan of country code +{}",
            reading.code
        ));
    }
    let valid = fitting.iter().any(|m| {
        subscriber_kinds(m)
            .into_iter()
            .flatten()
            .any(|kind| fits(kind, nsn))
    });
    Ok(if valid {
        Verdict::Valid(e164)
    } else {
        Verdict::Plausible(e164)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn region(code: &str) -> DefaultRegion {
        code.parse().unwrap()
    }

    fn norm(raw: &str, r: &str) -> Result<NormalizedPhone, PhoneError> {
        normalize(raw, &region(r))
    }

    /// Every spelling must normalise to `e164` in `r`.
    fn check_all(r: &str, e164: &str, spellings: &[&str]) {
        let mut failures = Vec::new();
        for raw in spellings {
            match norm(raw, r) {
                Ok(n) if n.e164 == e164 => {}
                other => failures.push(format!("{raw:?} [{r}] → {other:?}, expected {e164}")),
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn russian_spellings() {
        check_all(
            "RU",
            "+79123456789",
            &[
                "+7 (912) 345-67-89",
                "+7 (912) 345-67-89 (доб. 12)",
                "8-912-345-67-89",
                "89123456789",
                "8 (912) 345 67 89",
                "+7 912 345 67 89 доб 12",
                "9123456789",
                "7 912 345 67 89",
                "79123456789",
                "+79123456789",
                "tel:+79123456789",
                "tel:+7-912-345-67-89;ext=12",
                "+7(912)345-67-89, доб. 123",
                "+7 912 345-67-89 ext. 5",
                "8 10 7 912 345 67 89",
                "00 7 912 345 67 89",
                "+7 912 345 67 89 x5",
                "(912) 345-67-89",
                "8.912.345.67.89",
                "8 912 3456789",
                " +7\u{a0}912\u{a0}345\u{a0}67\u{a0}89 ",
                "+7 912 345–67–89",
                "\u{200e}+7 912 345 67 89",
                "+7 (912) 345-67-89 добавочный 1234",
                "+7 (912) 345-67-89 (доб 12)",
                "+7 (912) 345-67-89 доб.12",
                "+7 (912) 345-67-89 ДОБ. 12",
                "+7 (912) 345-67-89 х12",
                "+7 (912) 345-67-89 #12",
                "+7 (912) 345-67-89, 12",
                "+7 (912) 345-67-89 ext (12)",
                "+7 (912) 345-67-89 доб. (12)",
                "++7 912 345 67 89",
                "+8 (912) 345-67-89",
                "+89123456789",
                "８９１２３４５６７８９",
            ],
        );
        // A Moscow landline too, not only mobiles.
        check_all(
            "RU",
            "+74951234567",
            &[
                "8 (495) 123-45-67",
                "+7 495 123 45 67",
                "4951234567",
                "74951234567",
            ],
        );
    }

    /// Area codes starting with 8 (St Petersburg 812, toll-free 800, most regions 8xx):
    /// the `phonenumber` 0.3.10 parser takes that 8 for a trunk prefix even after "+7",
    /// which is why this module reads the digits itself.
    #[test]
    fn area_codes_starting_with_8_keep_their_8() {
        check_all(
            "RU",
            "+78121234567",
            &[
                "+7 812 123-45-67",
                "+7 (812) 123-45-67",
                "8 (812) 123-45-67",
                "88121234567",
                "78121234567",
                "8121234567",
                "tel:+78121234567",
            ],
        );
        check_all(
            "RU",
            "+78005553535",
            &[
                "8 800 555 35 35",
                "+7 800 555-35-35",
                "88005553535",
                "8005553535",
                "+8 800 555 35 35",
            ],
        );
        check_all(
            "RU",
            "+78432123456",
            &["8 (843) 212-34-56", "+7 843 212 34 56"],
        );
        check_all(
            "KZ",
            "+78005553535",
            &["8 800 555 35 35", "+7 800 555 35 35"],
        );
        check_all("BY", "+375800111111", &["+375 800 111 111"]);
    }

    #[test]
    fn belarusian_spellings() {
        let spellings = [
            "+375 29 123-45-67",
            "+375291234567",
            "+375 (29) 123 45 67",
            "375 29 1234567",
            "375291234567",
            "00375291234567",
            "8 10 375 29 123 45 67",
            "810375291234567",
            "tel:+375-29-123-45-67",
            "+375 29 123-45-67 доб. 7",
            "+375 (29) 123-45-67, доб. 7",
        ];
        // Written internationally, the default region does not matter.
        for r in ["RU", "BY", "KZ"] {
            check_all(r, "+375291234567", &spellings);
        }
        // National spellings only make sense with region BY.
        check_all(
            "BY",
            "+375291234567",
            &[
                "8 029 123 45 67",
                "8029 123-45-67",
                "8 (029) 123-45-67",
                "80291234567",
                "029 123 45 67",
                "(029) 123-45-67",
                "29 123 45 67",
                "291234567",
                "8 029 123 45 67 доб 5",
            ],
        );
        // A Minsk landline.
        check_all(
            "BY",
            "+375171234567",
            &["8 017 123-45-67", "+375 17 123 45 67", "8017 1234567"],
        );
    }

    #[test]
    fn ukrainian_spellings() {
        let international = [
            "+380 44 123 4567",
            "+380441234567",
            "+38 (044) 123-45-67",
            "+38 044 123 45 67",
            "380 44 123 45 67",
            "380441234567",
            "00380441234567",
            "tel:+380-44-123-4567",
            "+380 44 123 4567 ext. 3",
        ];
        for r in ["UA", "RU"] {
            check_all(r, "+380441234567", &international);
        }
        check_all(
            "UA",
            "+380441234567",
            &[
                "044 123 4567",
                "044 123 45 67",
                "(044) 123-45-67",
                "0441234567",
                "8 044 123 45 67",
                "8 (044) 123-45-67",
                "80441234567",
                "44 123 45 67",
                "38 044 123 45 67",
                "044 123 4567 доб. 21",
            ],
        );
        check_all(
            "UA",
            "+380671234567",
            &["067 123 45 67", "+380 67 123 45 67", "8 067 123-45-67"],
        );
    }

    #[test]
    fn kazakh_spellings() {
        let spellings = [
            "+7 701 123 45 67",
            "+77011234567",
            "+7 (701) 123-45-67",
            "8 701 123 45 67",
            "8 (701) 123-45-67",
            "87011234567",
            "7 701 123 45 67",
            "77011234567",
            "7011234567",
            "701 123 45 67",
            "8 10 7 701 123 45 67",
            "tel:+77011234567",
            "+7 701 123 45 67 доб. 4",
        ];
        // KZ shares +7 with RU: the same spellings work with either default region.
        check_all("KZ", "+77011234567", &spellings);
        check_all("RU", "+77011234567", &spellings);
        // An Almaty landline.
        check_all(
            "KZ",
            "+77272123456",
            &["8 727 212 34 56", "+7 727 212-34-56", "87272123456"],
        );
    }

    #[test]
    fn extension_is_kept_apart() {
        let cases = [
            ("+7 (912) 345-67-89 (доб. 12)", Some("12")),
            ("+7 912 345 67 89 доб 12", Some("12")),
            ("+7(912)345-67-89, доб. 123", Some("123")),
            ("+7 912 345-67-89 ext. 5", Some("5")),
            ("+7 912 345-67-89 x5", Some("5")),
            ("+7 912 345-67-89 X 5", Some("5")),
            ("+7 912 345-67-89 Ext:5", Some("5")),
            ("+7 912 345-67-89 extension 55", Some("55")),
            ("+7 912 345-67-89,12", Some("12")),
            ("+7 912 345-67-89; 12", Some("12")),
            ("+7 912 345-67-89 #12", Some("12")),
            ("+7 912 345-67-89 добавочный 4321", Some("4321")),
            ("+7 912 345-67-89 доп. 7", Some("7")),
            ("+7 912 345-67-89 дополнительный 7", Some("7")),
            ("+7 912 345-67-89 вн. 305", Some("305")),
            ("+7 912 345-67-89, внутренний 305", Some("305")),
            ("+7 912 345-67-89 доб (12)", Some("12")),
            ("+7 912 345-67-89 (доб.12).", Some("12")),
            ("tel:+79123456789;ext=77", Some("77")),
            ("+7 912 345-67-89", None),
            ("8 912 345-67-89", None),
        ];
        for (raw, ext) in cases {
            let n = norm(raw, "RU").unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(n.e164, "+79123456789", "{raw:?}");
            assert_eq!(n.extension.as_deref(), ext, "{raw:?}");
        }
        // The extension does not prevent a caller match.
        let stored = norm("+7 (912) 345-67-89 (доб. 12)", "RU").unwrap();
        let key = lookup_key("89123456789", &DefaultRegion::default(), 10);
        assert_eq!(key.e164.as_deref(), Some(stored.e164.as_str()));
        assert_eq!(key.tail.as_deref(), Some(tail(&stored.e164, 10).as_str()));
    }

    #[test]
    fn a_long_group_after_a_comma_is_not_an_extension() {
        // Two numbers in one field are not silently turned into a number + extension.
        let err = norm("+7 912 345 67 89, 89123456780", "RU").unwrap_err();
        assert!(matches!(err, PhoneError::NotANumber(_)), "{err:?}");
        let err = norm("8 912 345 67 89, 8 495 123 45 67", "RU").unwrap_err();
        assert!(matches!(err, PhoneError::NotANumber(_)), "{err:?}");
    }

    #[test]
    fn callers_as_the_switch_reports_them_share_one_key() {
        let ru = DefaultRegion::default();
        let keys: Vec<LookupKey> = ["79123456789", "+79123456789", "89123456789", "9123456789"]
            .iter()
            .map(|c| lookup_key(c, &ru, 10))
            .collect();
        for k in &keys {
            assert_eq!(k.e164.as_deref(), Some("+79123456789"), "{keys:?}");
            assert_eq!(k.tail.as_deref(), Some("9123456789"), "{keys:?}");
        }
        assert_eq!(tail("+79123456789", 10), "9123456789");
    }

    #[test]
    fn lookup_key_falls_back_to_the_tail() {
        let ru = DefaultRegion::default();
        // Not normalisable, but the digits are still there to match on.
        let k = lookup_key("3456789", &ru, 10);
        assert_eq!(k.e164, None);
        assert_eq!(k.tail.as_deref(), Some("3456789"));
        let k = lookup_key("+7 (000) 345-67-89", &ru, 10);
        assert_eq!(k.e164, None);
        assert_eq!(k.tail.as_deref(), Some("0003456789"));
        // The extension's digits stay out of the tail.
        let k = lookup_key("+7 912 345 67 89 доб. 12", &ru, 10);
        assert_eq!(k.tail.as_deref(), Some("9123456789"));
        // No digits, or a zero-length tail: no tail.
        assert_eq!(lookup_key("anonymous", &ru, 10), LookupKey::default());
        assert_eq!(lookup_key("", &ru, 10), LookupKey::default());
        assert_eq!(
            lookup_key("89123456789", &ru, 0).tail,
            None,
            "a zero-digit tail is no key"
        );
    }

    #[test]
    fn tail_takes_the_last_digits() {
        assert_eq!(tail("+79123456789", 10), "9123456789");
        assert_eq!(tail("+375291234567", 10), "5291234567");
        assert_eq!(tail("+380441234567", 7), "1234567");
        assert_eq!(tail("+12345678", 10), "12345678");
        assert_eq!(tail("+79123456789", 0), "");
        assert_eq!(tail("", 10), "");
    }

    #[test]
    fn belarus_national_and_international_agree() {
        let national = norm("8 029 123 45 67", "BY").unwrap();
        let international = norm("+375 29 123-45-67", "RU").unwrap();
        assert_eq!(national.e164, international.e164);
        assert_eq!(national.e164, "+375291234567");
        let by = region("BY");
        assert_eq!(
            lookup_key("80291234567", &by, 10).e164,
            lookup_key("+375291234567", &DefaultRegion::default(), 10).e164
        );
    }

    #[test]
    fn non_numbers_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("не звонить", "contains"),
            ("#12345", "contains '#'"),
            ("123", "only 3 digits"),
            ("12345", "6 digits"),
            ("ivan@example.com", "contains"),
            ("ivan.petrov@mail.ru", "contains"),
            ("+7 (000) 000-00-00", "+7"),
            ("+7 012 345 67 89", "numbering plan"),
            ("+999 123 456 789", "country code"),
            ("-- / --", "no digits"),
            ("+7 912 345 67 89 звонить после 18", "contains"),
            ("8 912 345+67 89", "'+' in the middle"),
            ("1234567890123456789012", "more than one phone number"),
            ("+7 912 345 67 89 x", "contains"),
            ("https://t.me/ivan", "contains"),
            ("0441234567", "RU"),
            ("3456789", "does not fit the numbering plan"),
            // A BY number written nationally means nothing in RU: the first ten digits
            // fitting a Russian pattern is not enough.
            (
                "8 029 123 45 67",
                "does not fit the numbering plan of country code +7",
            ),
        ];
        for (raw, needle) in cases {
            match norm(raw, "RU") {
                Err(PhoneError::NotANumber(why)) => {
                    let shown = PhoneError::NotANumber(why.clone()).to_string();
                    assert!(
                        shown.starts_with("not a phone number: ") && shown.contains(needle),
                        "{raw:?}: reason {shown:?} should mention {needle:?}"
                    );
                }
                other => panic!("{raw:?} should not be a number, got {other:?}"),
            }
        }
        for empty in ["", "   ", "\u{200b}", "\t\n"] {
            assert_eq!(norm(empty, "RU"), Err(PhoneError::Empty), "{empty:?}");
        }
        assert_eq!(PhoneError::Empty.to_string(), "the phone number is empty");
    }

    #[test]
    fn lenient_on_ranges_the_crate_does_not_list() {
        // These fit their country's plan (for Russia: 10 digits, leading 3/4/7/8/9) but
        // are in no range the metadata lists: kept, because new and test ranges live in
        // CRMs and a plan-shaped number costs nothing if unassigned.
        for (digits, region_code) in [
            ("73001234567", "RU"),
            ("73400000000", "RU"),
            ("375290000000", "BY"),
        ] {
            let reading = international(digits).unwrap();
            assert!(
                matches!(assess(&reading), Ok(Verdict::Plausible(_))),
                "{digits} should be plausible but not listed"
            );
            let n = norm(&format!("+{digits}"), region_code).unwrap();
            assert_eq!(n.e164, format!("+{digits}"));
        }
        // Listed ranges are valid outright.
        for digits in ["79123456789", "78005553535", "77011234567", "380441234567"] {
            let reading = international(digits).unwrap();
            assert!(
                matches!(assess(&reading), Ok(Verdict::Valid(_))),
                "{digits}"
            );
        }
        // A listed reading beats a plausible one: "8 029…" in BY is +375 29… (listed),
        // not +375 8029… read literally.
        assert_eq!(norm("80291234567", "BY").unwrap().e164, "+375291234567");
        // Outside the plan's shape: refused, whatever the length.
        for digits in ["76001234567", "71001234567", "70000000000"] {
            let reading = international(digits).unwrap();
            assert!(assess(&reading).is_err(), "{digits}");
        }
    }

    #[test]
    fn other_regions_use_the_metadata() {
        check_all("DE", "+493012345678", &["030 12345678", "+49 30 12345678"]);
        check_all("US", "+12015550123", &["(201) 555-0123", "+1 201 555 0123"]);
        check_all(
            "GB",
            "+442079460958",
            &["020 7946 0958", "+44 20 7946 0958"],
        );
    }

    #[test]
    fn default_region_parses() {
        assert_eq!(DefaultRegion::default(), region("RU"));
        assert_eq!(region(" by ").to_string(), "BY");
        assert_eq!(region("ua").code(), "UA");
        assert_eq!(region("KZ").to_string(), "KZ");
        assert_eq!(region("de").to_string(), "DE");
        for bad in ["", "Russia", "RUS", "XX", "7", "ру"] {
            let err = bad.parse::<DefaultRegion>().unwrap_err();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("\"RU\""),
                "{err}"
            );
        }
    }

    /// Random strings, biased towards what phone fields hold, never panic; and whatever is
    /// accepted is sane E.164.
    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[char] = &[
            '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '+', '-', ' ', '(', ')', '.', ',',
            ';', '#', 'x', 'X', 'е', 'д', 'о', 'б', 'х', 'т', ':', '/', '\u{a0}', '\u{200b}', '😀',
            '👨', '\u{200d}', '\u{301}', 'é', '\0', '\n', '０', '９', '%', '*', 'Ӿ', '\u{ffff}',
        ];
        let mut rng = SmallRng::seed_from_u64(0x0b24);
        let regions: Vec<DefaultRegion> = ["RU", "BY", "UA", "KZ", "US", "DE", "IT", "NR"]
            .iter()
            .map(|r| region(r))
            .collect();
        let check = |s: &str, r: &DefaultRegion| {
            if let Ok(n) = normalize(s, r) {
                let digits = &n.e164[1..];
                assert!(n.e164.starts_with('+'), "{s:?} → {n:?}");
                assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{s:?} → {n:?}");
                assert!((8..=15).contains(&digits.len()), "{s:?} → {n:?}");
            }
            let _ = lookup_key(s, r, 10);
        };
        for i in 0..3000 {
            let len = match i % 10 {
                0 => rng.gen_range(100..1000),
                _ => rng.gen_range(0..30),
            };
            let s: String = (0..len)
                .map(|_| {
                    if rng.gen_bool(0.8) {
                        ALPHABET[rng.gen_range(0..ALPHABET.len())]
                    } else {
                        char::from_u32(rng.gen_range(0..0x11_0000)).unwrap_or('?')
                    }
                })
                .collect();
            check(&s, &regions[i % regions.len()]);
        }
        check(&"8".repeat(1000), &regions[0]);
        check(&"доб ".repeat(250), &regions[0]);
        check(&"1 x".repeat(300), &regions[0]);
        check(&"9".repeat(MAX_RAW_CHARS), &regions[0]);
    }

    /// The crate only ever sees digit strings; every region it knows, every short length,
    /// with and without '+', must be safe.
    #[test]
    fn digit_strings_in_every_region_never_panic() {
        let mut rng = SmallRng::seed_from_u64(7);
        let regions: Vec<DefaultRegion> = DATABASE
            .iter()
            .filter_map(|m| m.id().parse().ok())
            .collect();
        assert!(regions.len() > 200, "{}", regions.len());
        for r in &regions {
            for len in 0..=20 {
                let digits: String = (0..len)
                    .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
                    .collect();
                let _ = normalize(&digits, r);
                let _ = normalize(&format!("+{digits}"), r);
                let _ = normalize(&format!("00{digits}"), r);
            }
            for edge in [
                "+99",
                "+999",
                "+9999",
                "+0000",
                "+1",
                "00000000",
                "+70000000000",
            ] {
                let _ = normalize(edge, r);
            }
        }
    }
}
