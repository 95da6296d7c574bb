//! UTC calendar dates without a time-zone database: file-name stamps in the app, the date of
//! an `opossum tune` calibration.

use std::time::SystemTime;

/// Year, month (1..=12), day (1..=31) and seconds into the day (UTC) of `t`; times before
/// 1970 count as 1970-01-01.
pub fn utc_parts(t: SystemTime) -> (i64, i64, i64, u64) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), after Howard Hinnant's
    // `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest)
}

/// `YYYY-MM-DD` (UTC) of `t`.
pub fn utc_date(t: SystemTime) -> String {
    let (year, month, day, _) = utc_parts(t);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(utc_date(at(0)), "1970-01-01");
        assert_eq!(utc_date(at(951_782_400)), "2000-02-29");
        assert_eq!(utc_parts(at(1_798_761_599)), (2026, 12, 31, 86_399));
    }
}
