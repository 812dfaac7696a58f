//! The AVR `timestamp` field: UTC without a zone, `YYYY-MM-DDTHH:MM:SS[.ffffff]`.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// Seconds since the Unix epoch of an AVR timestamp (the fraction is dropped), or `None` if the
/// text is not in the IAS format or names an impossible date.
pub(crate) fn parse_avr_timestamp(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if b.len() > 19 {
        // A fraction of one to nine digits.
        let frac = &b[20..];
        if b[19] != b'.' || frac.is_empty() || frac.len() > 9 || digits(frac).is_none() {
            return None;
        }
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(secs).ok()
}

/// The AVR timestamp text of a Unix time (microsecond fraction zero, as IAS prints six digits).
pub(crate) fn format_avr_timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vector_timestamps() {
        // Values from vectors/lcp/lcp-expected.derived.json.
        assert_eq!(
            parse_avr_timestamp("2024-06-15T14:54:05.076187"),
            Some(1_718_463_245)
        );
        assert_eq!(
            parse_avr_timestamp("2024-06-20T14:49:49.761000"),
            Some(1_718_894_989)
        );
        assert_eq!(parse_avr_timestamp("1970-01-01T00:00:00"), Some(0));
    }

    #[test]
    fn refuses_malformed_timestamps() {
        for bad in [
            "",
            "2024-06-15",
            "2024-06-15 14:54:05",
            "2024-13-15T14:54:05",
            "2023-02-29T00:00:00",
            "2024-06-15T24:00:00",
            "2024-06-15T14:54:05.",
            "2024-06-15T14:54:05.0761870000",
            "2024-06-15T14:54:05Z",
            "+024-06-15T14:54:05",
            "1969-12-31T23:59:59",
        ] {
            assert_eq!(parse_avr_timestamp(bad), None, "{bad}");
        }
        assert_eq!(
            parse_avr_timestamp("2024-02-29T00:00:00"),
            Some(1_709_164_800)
        );
    }

    #[test]
    fn format_and_parse_round_trip() {
        for t in [
            0u64,
            1_718_463_245,
            1_709_164_800,
            4_102_444_799,
            253_402_300_799,
        ] {
            let text = format_avr_timestamp(t);
            assert_eq!(parse_avr_timestamp(&text), Some(t), "{text}");
        }
    }
}
