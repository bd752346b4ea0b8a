//! Every change that has consequences, computed once: its event and what it adds to its
//! campaign's counters. The stores only apply a `Change`: SQLite adds the deltas inside the
//! change's own transaction; DynamoDB writes them on the event item, and the stream consumer
//! folds a batch of events into the counter items (see ARCHITECTURE.md, "Counters"), so no
//! respondent's request ever touches a campaign's counter items.

use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, CampaignId};
use crate::counters::{self, CounterDeltas, OPENED, REVIEW_CLICKERS, TOTAL};
use crate::model::{Answer, Event, EventKind, Invitation, InvitationId, SuppressionReason};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub event: Event,
    pub campaign: CampaignId,
    pub deltas: CounterDeltas,
}

impl Change {
    pub fn invitation_created(invitation: &Invitation) -> Self {
        Self {
            event: Event {
                id: format!("invitation-{}", invitation.id),
                at: invitation.created_at,
                kind: EventKind::InvitationCreated { invitation_id: invitation.id.clone() },
            },
            campaign: invitation.campaign_id.clone(),
            deltas: counters::invitation_deltas(invitation),
        }
    }

    /// `answer` replaces `previous` (version − 1), if there is one.
    pub fn answer_recorded(campaign: &Campaign, invitation: &Invitation, previous: Option<&Answer>, answer: &Answer) -> Self {
        Self {
            event: Event {
                id: format!("answer-{}-{}", invitation.id, answer.version),
                at: answer.answered_at,
                kind: EventKind::AnswerRecorded {
                    invitation_id: invitation.id.clone(),
                    version: answer.version,
                    previous_score: previous.map(|p| p.score),
                    score: answer.score,
                },
            },
            campaign: campaign.id.clone(),
            deltas: counters::answer_deltas(campaign, invitation, previous, answer),
        }
    }

    /// The first load of the invitation's page; a store applies it only the first time.
    pub fn page_opened(invitation: &InvitationId, campaign: &CampaignId, at: Timestamp) -> Self {
        Self {
            event: Event { id: format!("opened-{invitation}"), at, kind: EventKind::PageOpened { invitation_id: invitation.clone() } },
            campaign: campaign.clone(),
            deltas: CounterDeltas::single(TOTAL, OPENED, 1),
        }
    }

    /// The first review click of the invitation; later clicks are recorded without a change.
    pub fn first_review_click(invitation: &InvitationId, campaign: &CampaignId, site: &str, at: Timestamp) -> Self {
        Self {
            event: Event {
                id: format!("review-click-{invitation}"),
                at,
                kind: EventKind::ReviewClicked { invitation_id: invitation.clone(), site: site.to_owned() },
            },
            campaign: campaign.clone(),
            deltas: CounterDeltas::single(TOTAL, REVIEW_CLICKERS, 1),
        }
    }

    /// One invitation marked suppressed, the first time only (under its first reason).
    pub fn invitation_suppressed(invitation: &InvitationId, campaign: &CampaignId, reason: SuppressionReason, at: Timestamp) -> Self {
        Self {
            event: Event {
                id: format!("suppressed-{invitation}"),
                at,
                kind: EventKind::InvitationSuppressed { invitation_id: invitation.clone(), reason },
            },
            campaign: campaign.clone(),
            deltas: CounterDeltas::single(TOTAL, counters::suppression_field(reason), 1),
        }
    }

    /// How many counter items applying these changes touches: one per (campaign, bucket).
    pub fn touched_buckets<'a>(changes: impl IntoIterator<Item = &'a Change>) -> usize {
        let mut seen = std::collections::BTreeSet::new();
        for change in changes {
            for (bucket, _) in change.deltas.buckets() {
                seen.insert((change.campaign.as_str(), bucket));
            }
        }
        seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    #[test]
    fn the_largest_change_the_campaign_file_allows_fits_one_transaction() {
        let campaign = largest_campaign("largest");
        let invitation = largest_invitation(&campaign, 1, Timestamp::from_millis(0));
        let created = Change::invitation_created(&invitation);
        let first = answer_touching_everything(&invitation, 9, 1, None, Timestamp::from_millis(1));
        let edit = answer_touching_everything(&invitation, 0, 2, Some(&first), Timestamp::from_millis(2));
        let edited = Change::answer_recorded(&campaign, &invitation, Some(&first), &edit);
        // One event marker plus one ADD per counter item: DynamoDB allows 100 per transaction.
        for change in [&created, &edited] {
            let operations = 1 + Change::touched_buckets([change]);
            assert!(operations <= 100, "{} needs {operations} operations", change.event.id);
        }
        assert!(Change::touched_buckets([&edited]) > 80, "the edit really touches every bucket");
    }
}
