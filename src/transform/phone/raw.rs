//! Reading a raw value: what people type around a number (a `tel:` URI, separators, an
//! extension such as "доб. 12") is taken apart here, before any numbering-plan question.

use super::{
    PhoneError, MAX_E164_DIGITS, MAX_RAW_CHARS, MAX_RAW_DIGITS, MIN_E164_DIGITS, MIN_RAW_DIGITS,
};

/// A raw value taken apart: what was written, before any region is applied.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawParts {
    /// The number's digits, in order, without the extension.
    pub(super) digits: String,
    /// Whether the number was written with a leading '+'.
    pub(super) plus: bool,
    pub(super) extension: Option<String>,
}

/// Quote a value for an error message, cut so a pasted paragraph does not flood the log.
pub(super) fn shown(raw: &str) -> String {
    const SHOWN_CHARS: usize = 40;
    if raw.chars().count() > SHOWN_CHARS {
        let cut: String = raw.chars().take(SHOWN_CHARS).collect();
        format!("{cut:?}…")
    } else {
        format!("{raw:?}")
    }
}

pub(super) fn not_a_number(why: String) -> PhoneError {
    PhoneError::NotANumber(why)
}

/// Take `tel:`, the extension and the separators off; refuse anything with other symbols.
pub(super) fn parse_raw(raw: &str) -> Result<RawParts, PhoneError> {
    let trimmed = raw.trim_matches(is_ignorable);
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    if trimmed.chars().count() > MAX_RAW_CHARS {
        return Err(not_a_number(format!(
            "{} is {} characters long; a phone number is far shorter",
            shown(trimmed),
            trimmed.chars().count()
        )));
    }

    let (body, mut extension) = strip_tel_uri(trimmed);
    let (number, ext) = split_extension(body);
    if extension.is_none() {
        extension = ext;
    }

    let mut digits = String::new();
    let mut plus = false;
    for c in number.chars() {
        if let Some(d) = ascii_digit(c) {
            digits.push(d);
        } else if c == '+' {
            // A '+' after digits would join two numbers or be a typo inside one;
            // repeated leading '+' ("++7") is a harmless slip.
            if !digits.is_empty() {
                return Err(not_a_number(format!(
                    "{} has a '+' in the middle of the digits",
                    shown(trimmed)
                )));
            }
            plus = true;
        } else if !is_separator(c) {
            return Err(not_a_number(format!(
                "{} contains {c:?}, which a phone number does not have",
                shown(trimmed)
            )));
        }
    }

    if digits.is_empty() {
        return Err(not_a_number(format!("{} has no digits", shown(trimmed))));
    }
    if digits.len() < MIN_RAW_DIGITS {
        return Err(not_a_number(format!(
            "{} has only {} digit{}; a phone number with its area code has at least {MIN_E164_DIGITS}",
            shown(trimmed),
            digits.len(),
            if digits.len() == 1 { "" } else { "s" }
        )));
    }
    if digits.len() > MAX_RAW_DIGITS {
        return Err(not_a_number(format!(
            "{} has {} digits, more than one phone number can have ({MAX_E164_DIGITS})",
            shown(trimmed),
            digits.len()
        )));
    }
    Ok(RawParts {
        digits,
        plus,
        extension,
    })
}

/// An ASCII digit, also from the full-width forms some input methods produce.
pub(super) fn ascii_digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '\u{FF10}'..='\u{FF19}' => char::from_u32(c as u32 - 0xFF10 + u32::from(b'0')),
        _ => None,
    }
}

/// Characters people put between digits: spaces of all kinds, dashes, dots, slashes,
/// brackets, and the invisible marks that come along with copy-paste.
pub(super) fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '‐'
                | '‑'
                | '‒'
                | '–'
                | '—'
                | '―'
                | '−'
                | '.'
                | '/'
                | '('
                | ')'
                | '['
                | ']'
                | '_'
        )
        || is_ignorable(c)
}

/// Whitespace and zero-width / direction marks (copy-paste from messengers and web pages).
pub(super) fn is_ignorable(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}')
}

/// `tel:+7-912-345-67-89;ext=12;phone-context=...` → the number and the `ext` parameter.
pub(super) fn strip_tel_uri(s: &str) -> (&str, Option<String>) {
    let Some(rest) = strip_prefix_ci(s, "tel:") else {
        return (s, None);
    };
    let mut parts = rest.split(';');
    let number = parts.next().unwrap_or("");
    let ext = parts
        .filter_map(|p| strip_prefix_ci(p.trim(), "ext="))
        .map(|e| e.trim())
        .find(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string);
    (number.trim(), ext)
}

pub(super) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// What may introduce an extension, and how many digits it may have. Word markers say
/// plainly that an extension follows, so they take up to 10 digits; a bare ',', ';' or '#'
/// is also how two numbers get separated in one field, so only a short group (up to 6
/// digits, longer than any PBX extension plan in use) after one is taken as an extension.
/// Longer words come first so "добавочный" is not read as "доб" + "авочный".
pub(super) const EXTENSION_MARKERS: &[(&str, usize)] = &[
    ("добавочный", 10),
    ("дополнительный", 10),
    ("доп", 10),
    ("внутренний", 10),
    ("вн", 10),
    ("доб", 10),
    ("extension", 10),
    ("ext", 10),
    ("x", 10),
    // Cyrillic 'х', typed on a Russian keyboard layout for "x".
    ("х", 10),
    ("#", 6),
    (",", 6),
    (";", 6),
];

/// Split a trailing extension off: "+7 912 345-67-89 (доб. 12)" → ("+7 912 345-67-89", "12").
///
/// The marker must come after some digits (so "#12345" alone is not an extension of
/// nothing) and must be followed only by the extension's digits, optionally bracketed,
/// to the end of the value.
pub(super) fn split_extension(s: &str) -> (&str, Option<String>) {
    let mut seen_digit = false;
    for (i, c) in s.char_indices() {
        if ascii_digit(c).is_some() {
            seen_digit = true;
            continue;
        }
        if !seen_digit {
            continue;
        }
        let before_is_letter = s[..i].chars().next_back().is_some_and(char::is_alphabetic);
        for &(marker, max_digits) in EXTENSION_MARKERS {
            let Some(after) = strip_marker(&s[i..], marker) else {
                continue;
            };
            let word = marker.chars().all(char::is_alphabetic);
            // A letter marker inside a word ("fax", "extra") is not a marker.
            if word && (before_is_letter || after.chars().next().is_some_and(char::is_alphabetic)) {
                continue;
            }
            if let Some(ext) = extension_digits(after, max_digits) {
                let number = s[..i].trim_end_matches(|c: char| {
                    is_ignorable(c) || matches!(c, ',' | ';' | '(' | '[' | '-' | '.' | '/')
                });
                return (number, Some(ext));
            }
        }
    }
    (s, None)
}

/// `s` after `marker` (matched ignoring case), if `s` starts with it.
pub(super) fn strip_marker<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    let mut rest = s.chars();
    for m in marker.chars() {
        let c = rest.next()?;
        if !c.to_lowercase().eq(m.to_lowercase()) {
            return None;
        }
    }
    Some(rest.as_str())
}

/// The extension's digits when `s` is exactly `[.:=№ ]* (? digits )? [. ]*`.
pub(super) fn extension_digits(s: &str, max_digits: usize) -> Option<String> {
    let s = s.trim_start_matches(|c: char| is_ignorable(c) || matches!(c, '.' | ':' | '=' | '№'));
    let (s, bracketed) = match s.strip_prefix('(') {
        Some(inner) => (inner.trim_start_matches(is_ignorable), true),
        None => (s, false),
    };
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    if digits.is_empty() || digits.len() > max_digits {
        return None;
    }
    let mut rest = rest.trim_start_matches(is_ignorable);
    if bracketed {
        rest = rest.strip_prefix(')')?;
    }
    // One more ')' may close a bracket opened before the marker: "(доб. 12)".
    let rest = rest.trim_start_matches(|c: char| is_ignorable(c) || c == '.');
    let rest = rest.strip_prefix(')').unwrap_or(rest);
    rest.trim_matches(|c: char| is_ignorable(c) || c == '.')
        .is_empty()
        .then(|| digits.to_string())
}
