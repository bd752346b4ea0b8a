//! Whether a campaign sends: active, paused or ended, and who changed it when.
//!
//! A campaign without a stored status is active (campaigns made before there were states). A
//! paused campaign sends nothing new (invitations wait, reminders are put off) and still takes
//! answers, with their thank-yous and alerts; resuming sends what waited. An ended campaign
//! sends no invitation or reminder again.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Active,
    Paused,
    Ended,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Active => "active",
            CampaignState::Paused => "paused",
            CampaignState::Ended => "ended",
        }
    }
}

/// What a person can do to a campaign's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Pause,
    Resume,
    End,
}

impl Transition {
    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "pause" => Some(Transition::Pause),
            "resume" => Some(Transition::Resume),
            "end" => Some(Transition::End),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a campaign that is {from} cannot be {action}", from = from.as_str())]
pub struct BadTransition {
    pub from: CampaignState,
    pub action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignStatus {
    pub state: CampaignState,
    pub changed_at: Option<Timestamp>,
    /// The account that changed it; `None` for the implicit first state.
    pub changed_by: Option<String>,
}

impl Default for CampaignStatus {
    fn default() -> Self {
        Self { state: CampaignState::Active, changed_at: None, changed_by: None }
    }
}

impl CampaignStatus {
    /// Whether invitations and reminders go out now.
    pub fn sends(&self) -> bool {
        self.state == CampaignState::Active
    }

    /// The status after `transition`, or why it cannot happen.
    pub fn after(&self, transition: Transition, at: Timestamp, by: &str) -> Result<CampaignStatus, BadTransition> {
        let state = match (self.state, transition) {
            (CampaignState::Active, Transition::Pause) => CampaignState::Paused,
            (CampaignState::Paused, Transition::Resume) => CampaignState::Active,
            (CampaignState::Active | CampaignState::Paused, Transition::End) => CampaignState::Ended,
            (from, Transition::Pause) => return Err(BadTransition { from, action: "paused" }),
            (from, Transition::Resume) => return Err(BadTransition { from, action: "resumed" }),
            (from, Transition::End) => return Err(BadTransition { from, action: "ended" }),
        };
        Ok(CampaignStatus { state, changed_at: Some(at), changed_by: Some(by.to_owned()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_pauses_resumes_and_ends_and_an_ended_one_stays_ended() {
        let at = Timestamp::from_millis(1);
        let active = CampaignStatus::default();
        assert!(active.sends());
        let paused = active.after(Transition::Pause, at, "Karin").unwrap();
        assert_eq!((paused.state, paused.changed_by.as_deref()), (CampaignState::Paused, Some("Karin")));
        assert!(!paused.sends());
        assert_eq!(paused.after(Transition::Pause, at, "Karin"), Err(BadTransition { from: CampaignState::Paused, action: "paused" }));
        let resumed = paused.after(Transition::Resume, at, "Bo").unwrap();
        assert!(resumed.sends());
        let ended = resumed.after(Transition::End, at, "Bo").unwrap();
        assert!(!ended.sends());
        for t in [Transition::Pause, Transition::Resume, Transition::End] {
            assert!(ended.after(t, at, "Bo").is_err());
        }
        assert_eq!(
            ended.after(Transition::Resume, at, "Bo").unwrap_err().to_string(),
            "a campaign that is ended cannot be resumed"
        );
    }
}
