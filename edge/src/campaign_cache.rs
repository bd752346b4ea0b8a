//! Campaigns kept for a short while per process (per isolate on the Worker), so a survey page
//! after the token lookup needs one more read at most: its answer, or the campaign and the
//! answer together in one BatchGetItem. A campaign edit reaches survey pages within `TTL_MS`.

use std::collections::HashMap;
use std::sync::Mutex;

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::lifecycle::CampaignStatus;
use closeloop_core::Timestamp;

pub const TTL_MS: i64 = 60_000;
/// Enough for every live campaign of a programme; beyond it the cache starts afresh.
const MAX_CAMPAIGNS: usize = 256;

/// A campaign as read at `at`, with its stored state when that was read too (`Some(None)`: no
/// state stored, so active).
type Entry = (Timestamp, Campaign, Option<Option<CampaignStatus>>);

#[derive(Default)]
pub struct CampaignCache(Mutex<HashMap<CampaignId, Entry>>);

impl CampaignCache {
    fn fresh(&self, id: &CampaignId, now: Timestamp) -> Option<Entry> {
        let cached = self.0.lock().ok()?;
        cached.get(id).filter(|(at, _, _)| now.millis() - at.millis() < TTL_MS).cloned()
    }

    pub fn get(&self, id: &CampaignId, now: Timestamp) -> Option<Campaign> {
        self.fresh(id, now).map(|(_, c, _)| c)
    }

    /// The campaign and its state, if both were read within `TTL_MS`.
    pub fn get_with_status(&self, id: &CampaignId, now: Timestamp) -> Option<(Campaign, Option<CampaignStatus>)> {
        self.fresh(id, now).and_then(|(_, c, status)| status.map(|s| (c, s)))
    }

    pub fn put(&self, campaign: &Campaign, now: Timestamp) {
        self.insert(campaign, None, now);
    }

    pub fn put_with_status(&self, campaign: &Campaign, status: Option<&CampaignStatus>, now: Timestamp) {
        self.insert(campaign, Some(status.cloned()), now);
    }

    fn insert(&self, campaign: &Campaign, status: Option<Option<CampaignStatus>>, now: Timestamp) {
        if let Ok(mut cached) = self.0.lock() {
            if cached.len() >= MAX_CAMPAIGNS {
                cached.clear();
            }
            cached.insert(campaign.id.clone(), (now, campaign.clone(), status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_campaign_is_read_again_after_its_lifetime() {
        let cache = CampaignCache::default();
        let c = Campaign::from_toml("id = \"c\"\nname = \"n\"\ncompany = \"A\"\nsender_name = \"s\"\nsender_email = \"s@a.example\"\n").unwrap();
        cache.put(&c, Timestamp::from_millis(1_000));
        assert_eq!(cache.get(&c.id, Timestamp::from_millis(1_000 + TTL_MS - 1)), Some(c.clone()));
        assert_eq!(cache.get(&c.id, Timestamp::from_millis(1_000 + TTL_MS)), None);
        assert_eq!(cache.get_with_status(&c.id, Timestamp::from_millis(1_000)), None, "its state was not read");
        cache.put_with_status(&c, None, Timestamp::from_millis(2_000));
        assert_eq!(cache.get_with_status(&c.id, Timestamp::from_millis(2_000)), Some((c.clone(), None)));
    }
}
