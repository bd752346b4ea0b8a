//! Instants as milliseconds since the Unix epoch: cheap to store, to compare and to index.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

#[derive(Debug, thiserror::Error)]
#[error("{input:?} is not an RFC 3339 time such as 2026-11-22T09:30:00Z")]
pub struct TimestampError {
    input: String,
}

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        let parsed = OffsetDateTime::parse(input.trim(), &Rfc3339)
            .map_err(|_| TimestampError { input: input.chars().take(40).collect() })?;
        Ok(Self((parsed.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    pub fn to_rfc3339(self) -> String {
        self.datetime()
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.0.to_string())
    }

    /// "2026-11-22 09:30 UTC": for people, in mails and pages.
    pub fn to_display(self) -> String {
        let dt = self.datetime();
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute()
        )
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn plus_hours(self, hours: u32) -> Self {
        Self(self.0 + hours as i64 * HOUR_MS)
    }

    pub fn plus_days(self, days: u32) -> Self {
        Self(self.0 + days as i64 * DAY_MS)
    }

    pub fn minus_days(self, days: u32) -> Self {
        Self(self.0 - days as i64 * DAY_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_to_the_millisecond() {
        let t = Timestamp::parse_rfc3339("2026-11-22T09:30:00.250Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T09:30:00.25Z");
        assert_eq!(t.to_display(), "2026-11-22 09:30 UTC");
        let offset = Timestamp::parse_rfc3339("2026-11-22T10:30:00.250+01:00").unwrap();
        assert_eq!(offset, t);
    }

    #[test]
    fn garbage_is_refused_with_the_input_in_the_message() {
        let err = Timestamp::parse_rfc3339("next tuesday").unwrap_err();
        assert!(err.to_string().contains("next tuesday"));
    }
}
