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
#[error("{input:?} is not a date and time such as \"2026-12-02T09:00\"")]
pub struct LocalTimeError {
    input: String,
    #[source]
    source: jiff::Error,
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

/// When a campaign may send invitations, reminders and SMS: hours of the day and weekdays, on
/// the campaign's clock ("09:00" to "19:00", Monday to Friday). What falls outside waits until
/// it next opens. `from` is inclusive, `to` exclusive; a window does not run past midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SendWindowFile", into = "SendWindowFile")]
pub struct SendWindow {
    from: jiff::civil::Time,
    to: jiff::civil::Time,
    /// Monday = 1 … Sunday = 7, ascending, at least one.
    days: Vec<u8>,
}

/// The window as the campaign file writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendWindowFile {
    from: String,
    to: String,
    #[serde(default = "every_day")]
    days: Vec<String>,
}

fn every_day() -> Vec<String> {
    DAY_NAMES.iter().map(|d| d.to_string()).collect()
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAY_NAMES: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

#[derive(Debug, thiserror::Error)]
pub enum SendWindowError {
    #[error("send_window: {0:?} is not a time of day such as \"09:00\"")]
    Time(String),
    #[error("send_window: {0:?} is not a weekday (mon, tue, wed, thu, fri, sat, sun)")]
    Day(String),
    #[error("send_window: `from` ({from}) must come before `to` ({to}) on the same day")]
    Order { from: String, to: String },
    #[error("send_window: `days` names no day")]
    NoDays,
}

fn time_of_day(input: &str) -> Result<jiff::civil::Time, SendWindowError> {
    let bad = || SendWindowError::Time(input.chars().take(20).collect());
    let (h, m) = input.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h == 24 && m == 0 {
        // "24:00": the end of the day.
        return Ok(jiff::civil::Time::MAX);
    }
    jiff::civil::Time::new(h, m, 0, 0).map_err(|_| bad())
}

impl TryFrom<SendWindowFile> for SendWindow {
    type Error = SendWindowError;
    fn try_from(file: SendWindowFile) -> Result<Self, Self::Error> {
        let (from, to) = (time_of_day(&file.from)?, time_of_day(&file.to)?);
        if from >= to {
            return Err(SendWindowError::Order { from: file.from, to: file.to });
        }
        let mut days = Vec::new();
        for day in &file.days {
            let name = day.trim().to_ascii_lowercase();
            let number = (0..7)
                .find(|&i| name == DAY_NAMES[i] || name == FULL_DAY_NAMES[i])
                .ok_or_else(|| SendWindowError::Day(day.chars().take(20).collect()))?;
            days.push(number as u8 + 1);
        }
        days.sort_unstable();
        days.dedup();
        if days.is_empty() {
            return Err(SendWindowError::NoDays);
        }
        Ok(Self { from, to, days })
    }
}

impl From<SendWindow> for SendWindowFile {
    fn from(window: SendWindow) -> Self {
        let hm = |t: jiff::civil::Time| if t == jiff::civil::Time::MAX { "24:00".to_owned() } else { format!("{:02}:{:02}", t.hour(), t.minute()) };
        Self { from: hm(window.from), to: hm(window.to), days: window.days.iter().map(|d| DAY_NAMES[*d as usize - 1].to_owned()).collect() }
    }
}

impl SendWindow {
    /// A window from its opening and closing times ("09:00", "19:00") and its weekdays
    /// ("mon" or "monday"), by the file's rules.
    pub fn parse(from: &str, to: &str, days: &[&str]) -> Result<Self, SendWindowError> {
        Self::try_from(SendWindowFile { from: from.to_owned(), to: to.to_owned(), days: days.iter().map(|d| (*d).to_owned()).collect() })
    }

    /// The window as the file writes it: opening time, closing time, and its days' short names.
    pub fn parts(&self) -> (String, String, Vec<&'static str>) {
        let file = SendWindowFile::from(self.clone());
        (file.from, file.to, self.days.iter().map(|d| DAY_NAMES[*d as usize - 1]).collect())
    }

    /// The short names of the weekdays, Monday first.
    pub const DAYS: [&'static str; 7] = DAY_NAMES;

    /// Whether the window is open at `at` on the zone's clock.
    pub fn is_open(&self, at: Timestamp, zone: &Zone) -> bool {
        let Some(zoned) = at.zoned(zone) else { return true };
        let day = zoned.weekday().to_monday_one_offset() as u8;
        let time = zoned.time();
        self.days.contains(&day) && time >= self.from && time < self.to
    }

    /// `at` if the window is open then, else the moment it next opens (a week ahead at most).
    pub fn next_open(&self, at: Timestamp, zone: &Zone) -> Timestamp {
        if self.is_open(at, zone) {
            return at;
        }
        let Some(zoned) = at.zoned(zone) else { return at };
        for ahead in 0..8 {
            let Ok(date) = zoned.date().checked_add(jiff::Span::new().days(ahead)) else { break };
            if !self.days.contains(&(date.weekday().to_monday_one_offset() as u8)) {
                continue;
            }
            // A clock change that skips the opening hour opens at the first time after it.
            let Ok(opens) = date.to_datetime(self.from).to_zoned(zone.tz.clone()) else { continue };
            let opens = Timestamp(opens.timestamp().as_millisecond());
            if opens > at {
                return opens;
            }
        }
        // Unreachable with at least one day; an hour on keeps a caller's loop moving anyway.
        at.plus_hours(1)
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

    /// "2026-12-02": the date on the zone's clock, for a mail that names a day.
    pub fn display_date_in(self, zone: &Zone) -> String {
        match self.zoned(zone) {
            Some(zoned) => zoned.strftime("%Y-%m-%d").to_string(),
            None => self.to_display(),
        }
    }

    /// A wall-clock time on the zone's clock, as a browser's `datetime-local` input sends it
    /// ("2026-12-02T09:00"). A time a clock change skips is taken as the first one after it.
    pub fn from_local(input: &str, zone: &Zone) -> Result<Self, LocalTimeError> {
        let bad = |source| LocalTimeError { input: input.chars().take(40).collect(), source };
        let civil: jiff::civil::DateTime = input.trim().parse().map_err(bad)?;
        let zoned = civil.to_zoned(zone.tz.clone()).map_err(bad)?;
        Ok(Self::from_millis(zoned.timestamp().as_millisecond()))
    }

    /// The time as a `datetime-local` input's value on the zone's clock ("2026-12-02T09:00").
    pub fn to_local_input(self, zone: &Zone) -> String {
        match self.zoned(zone) {
            Some(zoned) => zoned.strftime("%Y-%m-%dT%H:%M").to_string(),
            None => String::new(),
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

    /// The ISO week ("2026-W48"), Monday (1) to Sunday (7) and hour on the zone's clock.
    pub fn week_day_hour_in(self, zone: &Zone) -> (String, u8, u8) {
        match self.zoned(zone) {
            Some(zoned) => {
                let iso = zoned.date().iso_week_date();
                (format!("{}-W{:02}", iso.year(), iso.week()), zoned.weekday().to_monday_one_offset() as u8, zoned.hour() as u8)
            }
            None => (self.iso_week(), self.weekday_number(), self.hour()),
        }
    }

    /// Monday is 1, Sunday 7 (UTC).
    pub fn weekday_number(self) -> u8 {
        self.datetime().weekday().number_from_monday()
    }

    pub fn hour(self) -> u8 {
        self.datetime().hour()
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
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

    /// The same moment `months` calendar months earlier on the UTC calendar (31 March less a
    /// month is 28 or 29 February), for retention periods.
    pub fn minus_months(self, months: u32) -> Self {
        let Ok(at) = jiff::Timestamp::from_millisecond(self.0) else { return self };
        let zoned = at.to_zoned(jiff::tz::TimeZone::UTC);
        match zoned.checked_sub(jiff::Span::new().months(i64::from(months))) {
            Ok(earlier) => Self(earlier.timestamp().as_millisecond()),
            // Before the calendar's start: nothing is that old.
            Err(_) => Self(i64::MIN / 2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_counted_on_the_calendar() {
        let march_31 = Timestamp::parse_rfc3339("2026-03-31T12:00:00Z").unwrap();
        assert_eq!(march_31.minus_months(1).to_rfc3339(), "2026-02-28T12:00:00Z");
        assert_eq!(march_31.minus_months(24).to_rfc3339(), "2024-03-31T12:00:00Z");
    }

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

    fn window(toml_from: &str, toml_to: &str, days: &[&str]) -> Result<SendWindow, SendWindowError> {
        SendWindow::try_from(SendWindowFile { from: toml_from.into(), to: toml_to.into(), days: days.iter().map(|d| d.to_string()).collect() })
    }

    #[test]
    fn a_send_window_opens_on_its_days_and_hours_on_the_campaigns_clock() {
        let stockholm = Zone::parse("Europe/Stockholm").unwrap();
        let weekdays = window("09:00", "19:00", &["mon", "tue", "wed", "thu", "fri"]).unwrap();
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        // Friday 2026-11-27, 18:30 Stockholm (17:30 UTC): open; at 19:00 it closes.
        assert!(weekdays.is_open(at("2026-11-27T17:30:00Z"), &stockholm));
        assert!(!weekdays.is_open(at("2026-11-27T18:00:00Z"), &stockholm));
        // Closed over the weekend: next open Monday 09:00 Stockholm = 08:00 UTC.
        assert_eq!(weekdays.next_open(at("2026-11-27T18:00:00Z"), &stockholm), at("2026-11-30T08:00:00Z"));
        assert_eq!(weekdays.next_open(at("2026-11-28T12:00:00Z"), &stockholm), at("2026-11-30T08:00:00Z"));
        // Early on a weekday: later the same day. Open: now.
        assert_eq!(weekdays.next_open(at("2026-11-30T05:00:00Z"), &stockholm), at("2026-11-30T08:00:00Z"));
        assert_eq!(weekdays.next_open(at("2026-11-30T10:00:00Z"), &stockholm), at("2026-11-30T10:00:00Z"));
        // In summer time the same window is an hour earlier in UTC.
        assert_eq!(weekdays.next_open(at("2026-07-04T12:00:00Z"), &stockholm), at("2026-07-06T07:00:00Z"));
        let all_day = window("00:00", "24:00", &["sun"]).unwrap();
        assert!(all_day.is_open(at("2026-11-29T22:59:00Z"), &stockholm), "Sunday 23:59 Stockholm");
        assert!(!all_day.is_open(at("2026-11-29T23:00:00Z"), &stockholm), "Monday 00:00 Stockholm");
    }

    #[test]
    fn a_send_window_that_cannot_open_is_refused_with_a_reason() {
        assert!(matches!(window("19:00", "09:00", &["mon"]), Err(SendWindowError::Order { .. })));
        assert!(matches!(window("9", "17:00", &["mon"]), Err(SendWindowError::Time(_))));
        assert!(matches!(window("09:00", "25:00", &["mon"]), Err(SendWindowError::Time(_))));
        assert!(matches!(window("09:00", "17:00", &["funday"]), Err(SendWindowError::Day(_))));
        assert!(matches!(window("09:00", "17:00", &[]), Err(SendWindowError::NoDays)));
        let w = window("09:00", "17:30", &["Monday", "fri", "mon"]).unwrap();
        let file: SendWindowFile = w.clone().into();
        assert_eq!((file.from.as_str(), file.to.as_str(), file.days.clone()), ("09:00", "17:30", vec!["mon".to_owned(), "fri".to_owned()]));
        assert_eq!(SendWindow::try_from(file).unwrap(), w);
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
