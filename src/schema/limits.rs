//! What a column can hold, as rules: text sizes counted the way SQL Server counts them, and
//! the range of `datetime`. `transform` applies them where it reads a value (so a message
//! can quote what Bitrix24 sent) and `prepare` applies them to every row of a batch, with
//! the same wording.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// Length as SQL Server's nvarchar counts it: UTF-16 code units (an emoji counts 2).
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The longest prefix of `s` that fits in `max` UTF-16 code units, never splitting a character.
pub fn truncate_utf16(s: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > max {
            return &s[..i];
        }
    }
    s
}

/// `5123` → `"5,123"`: sizes in messages read like the DBA's own numbers.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A text value cut to its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// What was kept (at most `max` units, whole characters).
    pub kept: String,
    /// The value's length, in UTF-16 units.
    pub len: usize,
    /// The column's size.
    pub max: usize,
}

impl Cut {
    /// "5,120 characters; the column holds 4,000: stored the first 4,000".
    pub fn describe(&self) -> String {
        format!(
            "{} characters; the column holds {}: stored the first {}",
            thousands(self.len),
            thousands(self.max),
            thousands(utf16_len(&self.kept)),
        )
    }
}

/// `None` when `s` fits in `max` UTF-16 units, else the cut.
pub fn cut(s: &str, max: usize) -> Option<Cut> {
    // A char takes at least as many UTF-8 bytes as UTF-16 units: text of at most `max`
    // bytes fits without counting.
    if s.len() <= max {
        return None;
    }
    let len = utf16_len(s);
    (len > max).then(|| Cut {
        kept: truncate_utf16(s, max).to_string(),
        len,
        max,
    })
}

/// The first value SQL Server's `datetime` holds: 1753-01-01 00:00:00.
pub fn datetime_min() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1753, 1, 1)
        .unwrap_or(NaiveDate::MIN)
        .and_time(NaiveTime::MIN)
}

/// The last value SQL Server's `datetime` holds: 9999-12-31 23:59:59.997.
pub fn datetime_max() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 997))
        .unwrap_or(NaiveDateTime::MAX)
}

/// Why a value cannot be stored in a `datetime` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRange {
    Before,
    After,
    /// The value left chrono's range on the way (a time-zone conversion at its edge).
    Outside,
}

impl OutOfRange {
    /// The reason, after `shown` (the value as the message shows it).
    pub fn describe(&self, shown: &str) -> String {
        match self {
            OutOfRange::Before => format!(
                "{shown} is before 1753-01-01, the earliest date SQL Server's datetime holds"
            ),
            OutOfRange::After => {
                format!("{shown} is after 9999-12-31, the latest date SQL Server's datetime holds")
            }
            OutOfRange::Outside => {
                format!("{shown} is outside the range SQL Server's datetime holds")
            }
        }
    }
}

/// Whether a `datetime` column holds `value` (None: the value could not be computed).
/// SQLite would hold any value, but both backends keep the same rows, so both use this.
pub fn datetime_range(value: Option<NaiveDateTime>) -> Result<(), OutOfRange> {
    match value {
        Some(d) if d < datetime_min() => Err(OutOfRange::Before),
        Some(d) if d > datetime_max() => Err(OutOfRange::After),
        Some(_) => Ok(()),
        None => Err(OutOfRange::Outside),
    }
}
