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

/// An IANA time zone ("Europe/Stockholm"): the zone a campaign's times are shown in, with its
/// daylight saving time. The database is bundled (jiff's copy of it), so the Worker and the
/// Lambdas, which have none of their own, know every zone.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: jiff::tz::TimeZone,
}

#[derive(Debug, thiserror::Error)]
#[error("{input:?} is not an IANA time zone such as \"Europe/Stockholm\" or \"UTC\"")]
pub struct ZoneError {
    input: String,
    #[source]
    source: jiff::Error,
}

impl Zone {
    pub fn parse(input: &str) -> Result<Self, ZoneError> {
        let name = input.trim();
        let tz = jiff::tz::db().get(name).map_err(|source| ZoneError { input: input.chars().take(60).collect(), source })?;
        Ok(Self { name: name.to_owned(), tz })
    }

    pub fn utc() -> Self {
        Self { name: "UTC".to_owned(), tz: jiff::tz::TimeZone::UTC }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Zone::parse(&name).map_err(serde::de::Error::custom)
    }
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

    /// "2026-11-22 10:30 CET": for people, in mails and pages, in the campaign's zone.
    pub fn display_in(self, zone: &Zone) -> String {
        match self.zoned(zone) {
            Some(zoned) => zoned.strftime("%Y-%m-%d %H:%M %Z").to_string(),
            None => self.to_display(),
        }
    }

    /// "2026-11-22T10:30:00+01:00": RFC 3339 with the zone's offset, for exports people open
    /// in a spreadsheet.
    pub fn rfc3339_in(self, zone: &Zone) -> String {
        match self.zoned(zone) {
            Some(zoned) => zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            None => self.to_rfc3339(),
        }
    }

    fn zoned(self, zone: &Zone) -> Option<jiff::Zoned> {
        jiff::Timestamp::from_millisecond(self.0).ok().map(|t| t.to_zoned(zone.tz.clone()))
    }

    /// "2026-11-22 09:30 UTC": where no campaign says which zone (logs, the local outbox).
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

    /// ISO 8601 week, as "2026-W48": a week's key for once-a-week work.
    pub fn iso_week(self) -> String {
        let (year, week, _) = self.datetime().to_iso_week_date();
        format!("{year}-W{week:02}")
    }

    /// Monday is 1, Sunday 7 (UTC).
    pub fn weekday_number(self) -> u8 {
        self.datetime().weekday().number_from_monday()
    }

    pub fn hour(self) -> u8 {
        self.datetime().hour()
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
    fn times_are_shown_in_the_zone_with_its_daylight_saving_time() {
        let stockholm = Zone::parse("Europe/Stockholm").unwrap();
        let winter = Timestamp::parse_rfc3339("2026-11-22T09:30:00Z").unwrap();
        assert_eq!(winter.display_in(&stockholm), "2026-11-22 10:30 CET");
        let summer = Timestamp::parse_rfc3339("2026-07-01T09:30:00Z").unwrap();
        assert_eq!(summer.display_in(&stockholm), "2026-07-01 11:30 CEST");
        assert_eq!(summer.rfc3339_in(&stockholm), "2026-07-01T11:30:00+02:00");
        assert_eq!(winter.display_in(&Zone::utc()), "2026-11-22 09:30 UTC");
        assert_eq!(Timestamp::parse_rfc3339(&summer.rfc3339_in(&stockholm)).unwrap(), summer, "the export's times parse back");
    }

    #[test]
    fn an_unknown_zone_is_refused_by_name() {
        let e = Zone::parse("Europe/Stokholm").unwrap_err();
        assert!(e.to_string().contains("Europe/Stokholm"), "{e}");
        assert!(Zone::parse("").is_err());
        assert_eq!(Zone::parse(" Europe/Copenhagen ").unwrap().name(), "Europe/Copenhagen");
        let zone: Zone = serde_json::from_str("\"America/New_York\"").unwrap();
        assert_eq!(serde_json::to_string(&zone).unwrap(), "\"America/New_York\"");
    }

    #[test]
    fn iso_weeks_and_weekdays() {
        let monday = Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap();
        assert_eq!(monday.weekday_number(), 1);
        assert_eq!(monday.iso_week(), "2026-W48");
        assert_eq!(monday.minus_days(1).iso_week(), "2026-W47");
        assert_eq!(monday.hour(), 8);
    }

    #[test]
    fn garbage_is_refused_with_the_input_in_the_message() {
        let err = Timestamp::parse_rfc3339("next tuesday").unwrap_err();
        assert!(err.to_string().contains("next tuesday"));
    }
}
