//! Date and date-time values: Bitrix24 sends `2024-05-01T12:34:56+03:00` (the portal's
//! offset) and `""` for "no date"; the Oktell columns are `datetime` without an offset.

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use serde_json::Value;

use super::text::{describe, quote};
use super::TimePolicy;
use crate::model::{Problem, ProblemKind};
use crate::schema::limits;

const EXPECTED: &str = "expected YYYY-MM-DDThh:mm:ss+hh:mm";

/// A date-time as received: the wall clock as written and its offset, if it had one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedDateTime {
    pub wall: NaiveDateTime,
    pub offset: Option<FixedOffset>,
}

/// Parse `YYYY-MM-DD[T| ]hh:mm[:ss[.fraction]][Z|±hh:mm|±hhmm|±hh]`, or a bare
/// `YYYY-MM-DD` (midnight). `Err` says why, for the problem's detail.
pub fn parse_datetime(s: &str) -> Result<ParsedDateTime, String> {
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    let shape = || format!("{} is not a date-time ({EXPECTED})", quote(s));

    let date = parse_date_part(&mut c).ok_or_else(shape)?;
    let date = date.map_err(|d| {
        format!(
            "{} is not a date-time: {d} is not a calendar date",
            quote(s)
        )
    })?;
    if c.done() {
        return Ok(ParsedDateTime {
            wall: date.and_time(NaiveTime::MIN),
            offset: None,
        });
    }
    if !matches!(c.next(), Some(b'T' | b't' | b' ')) {
        return Err(shape());
    }
    let h = c.digits(2).ok_or_else(shape)?;
    c.eat(b':').then_some(()).ok_or_else(shape)?;
    let m = c.digits(2).ok_or_else(shape)?;
    let mut sec = 0;
    let mut nanos = 0;
    if c.eat(b':') {
        sec = c.digits(2).ok_or_else(shape)?;
        if c.eat(b'.') || c.eat(b',') {
            let start = c.i;
            while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.i += 1;
            }
            let frac = &s[start..c.i];
            if frac.is_empty() {
                return Err(shape());
            }
            // Digits beyond nanoseconds carry nothing a `datetime` could hold.
            let mut padded: String = frac.chars().take(9).collect();
            while padded.len() < 9 {
                padded.push('0');
            }
            nanos = padded.parse().map_err(|_| shape())?;
        }
    }
    let time = NaiveTime::from_hms_nano_opt(h, m, sec, nanos)
        .filter(|_| sec < 60)
        .ok_or_else(|| {
            format!(
                "{} is not a date-time: {h:02}:{m:02}:{sec:02} is not a time of day",
                quote(s)
            )
        })?;
    while c.eat(b' ') {}
    let offset = if c.done() {
        None
    } else if c.eat(b'Z') || c.eat(b'z') {
        Some(FixedOffset::east_opt(0).ok_or_else(shape)?)
    } else {
        let sign = match c.next() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(shape()),
        };
        let oh = c.digits(2).ok_or_else(shape)?;
        let om = if c.done() {
            0
        } else {
            c.eat(b':');
            c.digits(2).ok_or_else(shape)?
        };
        if oh > 23 || om > 59 {
            return Err(format!(
                "{} is not a date-time: the offset is out of range",
                quote(s)
            ));
        }
        Some(FixedOffset::east_opt(sign * (oh * 3600 + om * 60) as i32).ok_or_else(shape)?)
    };
    if !c.done() {
        return Err(shape());
    }
    Ok(ParsedDateTime {
        wall: date.and_time(time),
        offset,
    })
}

/// `YYYY-MM-DD` at the cursor. None = not that shape; `Some(Err(text))` = that shape but
/// no such day (`2020-02-30`, `0000-00-00`).
fn parse_date_part(c: &mut Cursor) -> Option<Result<NaiveDate, String>> {
    let y = c.digits(4)?;
    c.eat(b'-').then_some(())?;
    let m = c.digits(2)?;
    c.eat(b'-').then_some(())?;
    let d = c.digits(2)?;
    Some(NaiveDate::from_ymd_opt(y as i32, m, d).ok_or_else(|| format!("{y:04}-{m:02}-{d:02}")))
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let part = self.s.get(self.i..self.i + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(part.iter().fold(0, |acc, b| acc * 10 + u32::from(b - b'0')))
    }
}

/// The wall clock a parsed value is stored as under `policy`. A value without an offset
/// is already the portal's wall clock and, lacking an instant, is stored as written.
/// None only when the conversion leaves chrono's range.
pub fn apply_policy(p: ParsedDateTime, policy: &TimePolicy) -> Option<NaiveDateTime> {
    let Some(offset) = p.offset else {
        return Some(p.wall);
    };
    match policy {
        TimePolicy::Portal => Some(p.wall),
        TimePolicy::Utc => offset
            .from_local_datetime(&p.wall)
            .single()
            .map(|d| d.naive_utc()),
        TimePolicy::Zone(tz) => offset
            .from_local_datetime(&p.wall)
            .single()
            .map(|d| d.with_timezone(tz).naive_local()),
    }
}

/// The range rule is `schema::limits::datetime_range`; here it is applied where the value
/// as Bitrix24 sent it can be quoted.
fn out_of_range(shown: &str, stored: Option<NaiveDateTime>) -> Option<String> {
    limits::datetime_range(stored)
        .err()
        .map(|why| why.describe(shown))
}

fn problem(field: &str, kind: ProblemKind, detail: String, problems: &mut Vec<Problem>) {
    problems.push(Problem {
        field: field.to_string(),
        kind,
        detail,
    });
}

/// A `datetime` column (DATE_CREATE, ...): None = NULL.
pub(crate) fn datetime_cell(
    v: Option<&Value>,
    policy: &TimePolicy,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<NaiveDateTime> {
    let s = match v? {
        Value::Null => return None,
        Value::String(s) if s.is_empty() => return None,
        Value::String(s) => s,
        Value::Number(n) => {
            let detail = format!("{n} is not a date-time ({EXPECTED})");
            problem(field, ProblemKind::Unparseable, detail, problems);
            return None;
        }
        other => {
            let detail = format!("expected a date-time, got {}", describe(other));
            problem(field, ProblemKind::WrongType, detail, problems);
            return None;
        }
    };
    let parsed = match parse_datetime(s) {
        Ok(p) => p,
        Err(detail) => {
            problem(field, ProblemKind::Unparseable, detail, problems);
            return None;
        }
    };
    let stored = apply_policy(parsed, policy);
    if let Some(detail) = out_of_range(&quote(s), stored) {
        problem(field, ProblemKind::Unparseable, detail, problems);
        return None;
    }
    stored
}

/// The date a date-time names when it is exactly midnight UTC with an offset, which is how
/// Bitrix24 encodes `date` fields (`CRestUtil::ConvertDate`: local midnight + the offset).
fn midnight_utc_date(s: &str) -> Option<NaiveDate> {
    let p = parse_datetime(s).ok()?;
    let utc = p.offset?.from_local_datetime(&p.wall).single()?.naive_utc();
    (utc.time() == NaiveTime::MIN).then_some(utc.date())
}

/// A `date` column (BIRTHDATE): a calendar date, never moved by the time policy, stored at
/// 00:00:00. Bitrix24 sends it as midnight UTC in the portal's offset
/// (`2001-11-11T02:00:00+02:00`): that instant's UTC date is the date; any other value is
/// read from its first 10 characters (`2001-11-11T00:00:00-05:00`, `2001-11-11`). None = NULL.
pub(crate) fn date_cell(
    v: Option<&Value>,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<NaiveDateTime> {
    let s = match v? {
        Value::Null => return None,
        Value::String(s) if s.is_empty() => return None,
        Value::String(s) => s,
        Value::Number(n) => {
            let detail = format!("{n} is not a date (expected YYYY-MM-DD)");
            problem(field, ProblemKind::Unparseable, detail, problems);
            return None;
        }
        other => {
            let detail = format!("expected a date, got {}", describe(other));
            problem(field, ProblemKind::WrongType, detail, problems);
            return None;
        }
    };
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    // After the date only a time part may follow; "2001-11-11abc" is not a date.
    let parsed = parse_date_part(&mut c)
        .filter(|_| c.done() || matches!(c.peek(), Some(b'T' | b't' | b' ')));
    let date = match (parsed, midnight_utc_date(s)) {
        // West of UTC, midnight UTC reads as the evening before
        // ("2001-11-10T19:00:00-05:00" is the 11th): the first 10 characters would be a day early.
        (Some(Ok(_)), Some(d)) => d,
        (Some(Ok(d)), None) => d,
        (Some(Err(day)), _) => {
            let detail = format!("{} is not a date: {day} is not a calendar date", quote(s));
            problem(field, ProblemKind::Unparseable, detail, problems);
            return None;
        }
        (None, _) => {
            let detail = format!("{} is not a date (expected YYYY-MM-DD)", quote(s));
            problem(field, ProblemKind::Unparseable, detail, problems);
            return None;
        }
    };
    let stored = date.and_time(NaiveTime::MIN);
    if let Some(detail) = out_of_range(&quote(s), Some(stored)) {
        problem(field, ProblemKind::Unparseable, detail, problems);
        return None;
    }
    Some(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn zone(name: &str) -> TimePolicy {
        TimePolicy::Zone(name.parse().unwrap())
    }

    #[test]
    fn datetimes_under_each_policy() {
        let portal = TimePolicy::Portal;
        let utc = TimePolicy::Utc;
        let cases: Vec<(&str, &TimePolicy, &str)> = vec![
            ("2024-05-01T12:34:56+03:00", &portal, "2024-05-01 12:34:56"),
            ("2024-05-01T12:34:56+03:00", &utc, "2024-05-01 09:34:56"),
            ("2024-05-01T01:00:00+03:00", &utc, "2024-04-30 22:00:00"),
            ("2024-05-01T12:34:56-05:00", &utc, "2024-05-01 17:34:56"),
            ("2024-05-01T12:34:56Z", &portal, "2024-05-01 12:34:56"),
            ("2024-05-01T12:34:56Z", &utc, "2024-05-01 12:34:56"),
            (
                "2024-05-01T12:34:56.250+03:00",
                &portal,
                "2024-05-01 12:34:56.250",
            ),
            (
                "2024-05-01T12:34:56.1234567891+00:00",
                &portal,
                "2024-05-01 12:34:56.123456789",
            ),
            ("2024-05-01 12:34:56+03:00", &utc, "2024-05-01 09:34:56"),
            ("2024-05-01T12:34:56 +03:00", &utc, "2024-05-01 09:34:56"),
            ("2024-05-01T12:34:56+0300", &utc, "2024-05-01 09:34:56"),
            ("2024-05-01T12:34:56+03", &utc, "2024-05-01 09:34:56"),
            ("2024-05-01T12:34+03:00", &utc, "2024-05-01 09:34:00"),
            ("2024-05-01", &utc, "2024-05-01 00:00:00"),
            // No offset: already the portal's wall clock, stored as written.
            ("2024-05-01T12:34:56", &portal, "2024-05-01 12:34:56"),
            ("2024-05-01T12:34:56", &utc, "2024-05-01 12:34:56"),
        ];
        for (input, policy, want) in cases {
            let mut p = Vec::new();
            let got = datetime_cell(Some(&json!(input)), policy, "DATE_CREATE", &mut p);
            assert_eq!(got, Some(dt(want)), "{input} under {policy:?}");
            assert!(p.is_empty(), "{input}: {p:?}");
        }
    }

    #[test]
    fn datetimes_converted_to_a_named_zone() {
        let cases = [
            // Moscow +03:00 → Yekaterinburg +05:00.
            (
                "Asia/Yekaterinburg",
                "2024-05-01T12:34:56+03:00",
                "2024-05-01 14:34:56",
            ),
            (
                "Asia/Yekaterinburg",
                "2024-05-01T23:00:00+03:00",
                "2024-05-02 01:00:00",
            ),
            (
                "Asia/Yekaterinburg",
                "2024-05-01T12:34:56Z",
                "2024-05-01 17:34:56",
            ),
            // Berlin follows DST: +02:00 in summer, +01:00 in winter.
            (
                "Europe/Berlin",
                "2024-07-01T12:00:00+03:00",
                "2024-07-01 11:00:00",
            ),
            (
                "Europe/Berlin",
                "2024-01-01T12:00:00+03:00",
                "2024-01-01 10:00:00",
            ),
        ];
        for (tz, input, want) in cases {
            let mut p = Vec::new();
            let got = datetime_cell(Some(&json!(input)), &zone(tz), "DATE_MODIFY", &mut p);
            assert_eq!(got, Some(dt(want)), "{input} in {tz}");
            assert!(p.is_empty());
        }
    }

    #[test]
    fn empty_datetimes_are_null_without_a_problem() {
        for v in [json!(""), json!(null)] {
            let mut p = Vec::new();
            assert_eq!(
                datetime_cell(Some(&v), &TimePolicy::Portal, "DATE_CLOSED", &mut p),
                None
            );
            assert!(p.is_empty());
        }
        let mut p = Vec::new();
        assert_eq!(
            datetime_cell(None, &TimePolicy::Portal, "DATE_CLOSED", &mut p),
            None
        );
        assert!(p.is_empty());
    }

    #[test]
    fn bad_datetimes_are_null_with_a_problem() {
        let cases: Vec<(Value, ProblemKind, &str)> = vec![
            (
                json!("31.02.2020"),
                ProblemKind::Unparseable,
                "\"31.02.2020\" is not a date-time (expected YYYY-MM-DDThh:mm:ss+hh:mm)",
            ),
            (
                json!("2020-02-30T10:00:00+03:00"),
                ProblemKind::Unparseable,
                "\"2020-02-30T10:00:00+03:00\" is not a date-time: 2020-02-30 is not a calendar date",
            ),
            (
                json!("0000-00-00 00:00:00"),
                ProblemKind::Unparseable,
                "\"0000-00-00 00:00:00\" is not a date-time: 0000-00-00 is not a calendar date",
            ),
            (
                json!("2020-01-01T25:00:00+03:00"),
                ProblemKind::Unparseable,
                "\"2020-01-01T25:00:00+03:00\" is not a date-time: 25:00:00 is not a time of day",
            ),
            (
                json!("2020-01-01T10:00:00+25:00"),
                ProblemKind::Unparseable,
                "\"2020-01-01T10:00:00+25:00\" is not a date-time: the offset is out of range",
            ),
            (
                json!("2020-01-01T10:00:00+03:00 extra"),
                ProblemKind::Unparseable,
                "\"2020-01-01T10:00:00+03:00 extra\" is not a date-time (expected YYYY-MM-DDThh:mm:ss+hh:mm)",
            ),
            (json!("2020-01-01T"), ProblemKind::Unparseable, "\"2020-01-01T\" is not a date-time (expected YYYY-MM-DDThh:mm:ss+hh:mm)"),
            (json!("2020-01-01T10:00:00."), ProblemKind::Unparseable, "\"2020-01-01T10:00:00.\" is not a date-time (expected YYYY-MM-DDThh:mm:ss+hh:mm)"),
            (json!("２０２０-01-01"), ProblemKind::Unparseable, "\"２０２０-01-01\" is not a date-time (expected YYYY-MM-DDThh:mm:ss+hh:mm)"),
            (
                json!(1714556096),
                ProblemKind::Unparseable,
                "1714556096 is not a date-time (expected YYYY-MM-DDThh:mm:ss+hh:mm)",
            ),
            (json!(true), ProblemKind::WrongType, "expected a date-time, got a boolean (true)"),
            (json!({}), ProblemKind::WrongType, "expected a date-time, got an object"),
            (
                json!("1700-06-01T10:00:00+03:00"),
                ProblemKind::Unparseable,
                "\"1700-06-01T10:00:00+03:00\" is before 1753-01-01, the earliest date SQL Server's datetime holds",
            ),
            (
                json!("0001-01-01T00:00:00+00:00"),
                ProblemKind::Unparseable,
                "\"0001-01-01T00:00:00+00:00\" is before 1753-01-01, the earliest date SQL Server's datetime holds",
            ),
        ];
        for (v, kind, detail) in cases {
            let mut p = Vec::new();
            assert_eq!(
                datetime_cell(Some(&v), &TimePolicy::Portal, "DATE_CREATE", &mut p),
                None,
                "{v}"
            );
            assert_eq!(p.len(), 1, "{v}");
            assert_eq!(p[0].kind, kind, "{v}");
            assert_eq!(p[0].detail, detail);
            assert_eq!(p[0].field, "DATE_CREATE");
        }
    }

    #[test]
    fn the_range_is_checked_after_conversion() {
        // 1753-01-01 01:00 at +03:00 is 1752-12-31 22:00 UTC: fine as written, too early in UTC.
        let v = json!("1753-01-01T01:00:00+03:00");
        let mut p = Vec::new();
        assert!(datetime_cell(Some(&v), &TimePolicy::Portal, "DATE_CREATE", &mut p).is_some());
        assert_eq!(
            datetime_cell(Some(&v), &TimePolicy::Utc, "DATE_CREATE", &mut p),
            None
        );
        assert_eq!(p.len(), 1);
        let v = json!("9999-12-31T23:00:00-03:00");
        assert!(datetime_cell(Some(&v), &TimePolicy::Portal, "DATE_CREATE", &mut p).is_some());
        assert_eq!(
            datetime_cell(Some(&v), &TimePolicy::Utc, "DATE_CREATE", &mut p),
            None
        );
        assert!(
            p[1].detail.contains("is after 9999-12-31"),
            "{}",
            p[1].detail
        );
    }

    #[test]
    fn dates_take_the_first_ten_characters_and_never_shift() {
        let cases = [
            ("2001-11-11T02:00:00+02:00", "2001-11-11"),
            ("2001-11-11T00:00:00+03:00", "2001-11-11"),
            // Midnight UTC at -05:00 reads as the evening before; the date is still the 11th.
            ("2001-11-10T19:00:00-05:00", "2001-11-11"),
            ("2001-11-10T20:30:00-03:30", "2001-11-11"),
            // Not the midnight-UTC encoding: the written date, never moved by the offset.
            ("2001-11-11T00:00:00-05:00", "2001-11-11"),
            ("2001-11-11T12:00:00-05:00", "2001-11-11"),
            ("2001-11-11T00:00:00+03:00", "2001-11-11"),
            ("2001-11-11T00:00:00Z", "2001-11-11"),
            ("2001-11-11T23:59:59+14:00", "2001-11-11"),
            ("2001-11-11", "2001-11-11"),
            ("2001-11-11 00:00:00", "2001-11-11"),
            ("1753-01-01", "1753-01-01"),
            ("2024-02-29T00:00:00+00:00", "2024-02-29"),
        ];
        for (input, want) in cases {
            let mut p = Vec::new();
            let got = date_cell(Some(&json!(input)), "BIRTHDATE", &mut p);
            assert_eq!(got, Some(dt(&format!("{want} 00:00:00"))), "{input}");
            assert!(p.is_empty(), "{input}: {p:?}");
        }
    }

    #[test]
    fn bad_dates_are_null_with_a_problem() {
        let cases: Vec<(Value, ProblemKind, &str)> = vec![
            (json!("11.11.2001"), ProblemKind::Unparseable, "\"11.11.2001\" is not a date (expected YYYY-MM-DD)"),
            (json!("2001-11-1"), ProblemKind::Unparseable, "\"2001-11-1\" is not a date (expected YYYY-MM-DD)"),
            (json!("2001-11-11abc"), ProblemKind::Unparseable, "\"2001-11-11abc\" is not a date (expected YYYY-MM-DD)"),
            (
                json!("2023-02-29T00:00:00+03:00"),
                ProblemKind::Unparseable,
                "\"2023-02-29T00:00:00+03:00\" is not a date: 2023-02-29 is not a calendar date",
            ),
            (
                json!("0000-00-00 00:00:00"),
                ProblemKind::Unparseable,
                "\"0000-00-00 00:00:00\" is not a date: 0000-00-00 is not a calendar date",
            ),
            (
                json!("1752-12-31T02:00:00+02:00"),
                ProblemKind::Unparseable,
                "\"1752-12-31T02:00:00+02:00\" is before 1753-01-01, the earliest date SQL Server's datetime holds",
            ),
            (json!(20011111), ProblemKind::Unparseable, "20011111 is not a date (expected YYYY-MM-DD)"),
            (json!(["2001-11-11"]), ProblemKind::WrongType, "expected a date, got an array"),
        ];
        for (v, kind, detail) in cases {
            let mut p = Vec::new();
            assert_eq!(date_cell(Some(&v), "BIRTHDATE", &mut p), None, "{v}");
            assert_eq!(p.len(), 1, "{v}");
            assert_eq!((p[0].kind, p[0].detail.as_str()), (kind, detail));
        }
        for v in [json!(""), json!(null)] {
            let mut p = Vec::new();
            assert_eq!(date_cell(Some(&v), "BIRTHDATE", &mut p), None);
            assert!(p.is_empty());
        }
    }
}
