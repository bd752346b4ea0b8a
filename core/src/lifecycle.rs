//! Whether a campaign sends: draft, scheduled, active, paused or ended, and who changed it when.
//!
//! A campaign without a stored status is active (campaigns made before there were states). A
//! paused campaign sends nothing new (invitations wait, reminders are put off) and still takes
//! answers, with their thank-yous and alerts; resuming sends what waited. An ended campaign
//! sends no invitation or reminder again.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// An ended campaign's page still takes answers this long (people open mail late), then says the
/// survey has closed.
pub const CLOSED_AFTER_DAYS: u32 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Made in the workspace and not started: contacts may be uploaded, nothing goes out.
    Draft,
    /// Starts by itself at `starts_at`; until then like a draft.
    Scheduled,
    Active,
    Paused,
    Ended,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Scheduled => "scheduled",
            CampaignState::Active => "active",
            CampaignState::Paused => "paused",
            CampaignState::Ended => "ended",
        }
    }

    /// Whether its invitations wait (held) rather than never going out.
    pub fn holds(self) -> bool {
        matches!(self, CampaignState::Draft | CampaignState::Scheduled | CampaignState::Paused)
    }

}

/// What a person can do to a campaign's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Start at this time (a draft, or a scheduled campaign moved).
    Schedule(Timestamp),
    /// Start now.
    Start,
    /// Back from scheduled to draft.
    Unschedule,
    Pause,
    Resume,
    End,
}

impl Transition {
    /// A form's action; `schedule` needs its start time.
    pub fn parse(input: &str, starts_at: Option<Timestamp>) -> Option<Self> {
        match input {
            "schedule" => starts_at.map(Transition::Schedule),
            "start" => Some(Transition::Start),
            "unschedule" => Some(Transition::Unschedule),
            "pause" => Some(Transition::Pause),
            "resume" => Some(Transition::Resume),
            "end" => Some(Transition::End),
            _ => None,
        }
    }

    fn done(self) -> &'static str {
        match self {
            Transition::Schedule(_) => "scheduled",
            Transition::Start => "started",
            Transition::Unschedule => "put back to draft",
            Transition::Pause => "paused",
            Transition::Resume => "resumed",
            Transition::End => "ended",
        }
    }

}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadTransition {
    #[error("a campaign that is {from} cannot be {action}", from = from.as_str())]
    From { from: CampaignState, action: &'static str },
    #[error("the start time has passed: choose a time ahead, or start now")]
    StartPassed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignStatus {
    pub state: CampaignState,
    pub changed_at: Option<Timestamp>,
    /// The account that changed it; `None` for the implicit first state.
    pub changed_by: Option<String>,
    /// When a scheduled campaign starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
}

impl Default for CampaignStatus {
    fn default() -> Self {
        Self { state: CampaignState::Active, changed_at: None, changed_by: None, starts_at: None }
    }

}

impl CampaignStatus {
    /// A campaign just made in the workspace.
    pub fn draft(at: Timestamp, by: &str) -> Self {
        Self { state: CampaignState::Draft, changed_at: Some(at), changed_by: Some(by.to_owned()), starts_at: None }
    }

    /// The state at `now`: a scheduled campaign whose start has come is active, without anyone
    /// having to store that.
    pub fn state_at(&self, now: Timestamp) -> CampaignState {
        match (self.state, self.starts_at) {
            (CampaignState::Scheduled, Some(start)) if start <= now => CampaignState::Active,
            (state, _) => state,
        }
    }

    /// The status as it stands at `now` (a scheduled campaign whose start has come shown active),
    /// for pages; stores keep what was stored.
    pub fn at(&self, now: Timestamp) -> CampaignStatus {
        CampaignStatus { state: self.state_at(now), ..self.clone() }
    }

    /// Whether the survey page has closed at `now`: ended, and the grace period over.
    pub fn closed_at(&self, now: Timestamp) -> bool {
        self.state == CampaignState::Ended && self.changed_at.is_some_and(|ended| ended.plus_days(CLOSED_AFTER_DAYS) <= now)
    }

    /// Whether invitations and reminders go out at `now`.
    pub fn sends_at(&self, now: Timestamp) -> bool {
        self.state_at(now) == CampaignState::Active
    }

    /// The status after `transition` at `at`, or why it cannot happen.
    pub fn after(&self, transition: Transition, at: Timestamp, by: &str) -> Result<CampaignStatus, BadTransition> {
        use CampaignState::*;
        let from = self.state_at(at);
        let (state, starts_at) = match (from, transition) {
            (Draft | Scheduled, Transition::Schedule(start)) if start <= at => return Err(BadTransition::StartPassed),
            (Draft | Scheduled, Transition::Schedule(start)) => (Scheduled, Some(start)),
            (Draft | Scheduled, Transition::Start) => (Active, None),
            (Scheduled, Transition::Unschedule) => (Draft, None),
            (Active, Transition::Pause) => (Paused, None),
            (Paused, Transition::Resume) => (Active, None),
            (Draft | Scheduled | Active | Paused, Transition::End) => (Ended, None),
            (from, t) => return Err(BadTransition::From { from, action: t.done() }),
        };
        Ok(CampaignStatus { state, changed_at: Some(at), changed_by: Some(by.to_owned()), starts_at })
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_pauses_resumes_and_ends_and_an_ended_one_stays_ended() {
        let at = Timestamp::from_millis(1);
        let active = CampaignStatus::default();
        assert!(active.sends_at(at));
        let paused = active.after(Transition::Pause, at, "Karin").unwrap();
        assert_eq!((paused.state, paused.changed_by.as_deref()), (CampaignState::Paused, Some("Karin")));
        assert!(!paused.sends_at(at));
        assert_eq!(paused.after(Transition::Pause, at, "Karin"), Err(BadTransition::From { from: CampaignState::Paused, action: "paused" }));
        let resumed = paused.after(Transition::Resume, at, "Bo").unwrap();
        assert!(resumed.sends_at(at));
        let ended = resumed.after(Transition::End, at, "Bo").unwrap();
        assert!(!ended.sends_at(at));
        for t in [Transition::Pause, Transition::Resume, Transition::End] {
            assert!(ended.after(t, at, "Bo").is_err());
        }
        assert_eq!(
            ended.after(Transition::Resume, at, "Bo").unwrap_err().to_string(),
            "a campaign that is ended cannot be resumed"
        );
    }

    #[test]
    fn a_draft_is_scheduled_and_starts_by_itself_at_its_time() {
        let made = Timestamp::from_millis(1_000);
        let start = made.plus_hours(24);
        let draft = CampaignStatus::draft(made, "Eda");
        assert!(!draft.sends_at(made) && draft.state.holds());
        assert_eq!(draft.after(Transition::Pause, made, "Eda").unwrap_err().to_string(), "a campaign that is draft cannot be paused");
        assert_eq!(draft.after(Transition::Schedule(made), made, "Eda"), Err(BadTransition::StartPassed));
        let scheduled = draft.after(Transition::Schedule(start), made, "Eda").unwrap();
        assert_eq!((scheduled.state, scheduled.starts_at), (CampaignState::Scheduled, Some(start)));
        assert!(!scheduled.sends_at(Timestamp::from_millis(start.millis() - 1)), "waits until its start");
        assert!(scheduled.sends_at(start), "active from its start, with nobody storing it");
        assert_eq!(scheduled.state_at(start), CampaignState::Active);
        let paused = scheduled.after(Transition::Pause, start.plus_hours(1), "Bo").unwrap();
        assert_eq!(paused.state, CampaignState::Paused, "once started it pauses like any active campaign");
        let back = scheduled.after(Transition::Unschedule, made, "Eda").unwrap();
        assert_eq!((back.state, back.starts_at), (CampaignState::Draft, None));
        let now = draft.after(Transition::Start, made, "Eda").unwrap();
        assert!(now.sends_at(made));
        assert_eq!(Transition::parse("schedule", None), None, "a schedule needs its time");
        let json = serde_json::to_string(&scheduled).unwrap();
        assert_eq!(serde_json::from_str::<CampaignStatus>(&json).unwrap(), scheduled);
        let old: CampaignStatus = serde_json::from_str("{\"state\":\"paused\",\"changed_at\":5,\"changed_by\":\"K\"}").unwrap();
        assert_eq!(old.starts_at, None, "a status stored before schedules reads as it was");
    }
}
