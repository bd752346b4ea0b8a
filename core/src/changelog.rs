//! Who changed a campaign's settings, what, and when: one entry per save from the workspace.
//!
//! Entries are numbered per campaign (`revision`, from 1). A save names the revision it creates,
//! and a store writes it only if no other save took that number first, so two people editing at
//! once cannot overwrite each other unseen.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::campaign::{Campaign, CampaignId};
use crate::time::Timestamp;

/// A setting's value is shown up to this many characters in the log (the entry is one item).
pub const MAX_VALUE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ChangeKind {
    /// Made with the form.
    Created,
    /// Made from another campaign's settings.
    Duplicated { from: CampaignId },
    /// Made from a campaign file.
    Imported,
    Edited,
}

impl ChangeKind {
    /// Whether this save makes the campaign (so no campaign may have its id yet).
    pub fn creates(&self) -> bool {
        !matches!(self, ChangeKind::Edited)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingChange {
    /// The campaign file's key, e.g. `throttle_days` or `review_sites`.
    pub setting: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignChange {
    pub campaign: CampaignId,
    pub revision: u32,
    pub at: Timestamp,
    /// The account's name.
    pub by: String,
    #[serde(flatten)]
    pub kind: ChangeKind,
    pub settings: Vec<SettingChange>,
}

impl CampaignChange {
    /// The entry for saving `after` over `before` (None when the campaign is new).
    pub fn new(kind: ChangeKind, revision: u32, by: &str, at: Timestamp, before: Option<&Campaign>, after: &Campaign) -> Self {
        Self { campaign: after.id.clone(), revision, at, by: by.to_owned(), kind, settings: setting_changes(before, after) }
    }
}

/// The settings that differ, by the campaign file's top-level keys, in key order.
pub fn setting_changes(before: Option<&Campaign>, after: &Campaign) -> Vec<SettingChange> {
    let as_map = |c: &Campaign| match serde_json::to_value(c) {
        Ok(Value::Object(mut map)) => {
            // The log shows who changed a webhook, never its secret: the hint stands in, so a
            // rotated secret still shows as a change.
            let hinted: Vec<Value> = c
                .webhooks
                .iter()
                .map(|w| serde_json::json!({ "url": w.url.as_str(), "events": w.events, "secret": w.secret.hint() }))
                .collect();
            if !hinted.is_empty() {
                map.insert("webhooks".into(), Value::Array(hinted));
            }
            // A chat channel's URL is its secret: the host stands in.
            let chat: Vec<Value> = c.chat.iter().map(|ch| serde_json::json!({ "kind": ch.kind, "url": format!("{} #{}", ch.hint(), ch.key()), "owner": ch.owner, "events": ch.events })).collect();
            if !chat.is_empty() {
                map.insert("chat".into(), Value::Array(chat));
            }
            map
        }
        _ => serde_json::Map::new(),
    };
    let old = before.map(as_map).unwrap_or_default();
    let new = as_map(after);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| SettingChange { setting: k.clone(), before: old.get(k).map(shown), after: new.get(k).map(shown) })
        .collect()
}

fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Campaign {
        Campaign::from_toml(include_str!("../../demo/campaign.toml")).unwrap()
    }

    #[test]
    fn an_edit_lists_only_the_settings_it_changed_with_their_old_and_new_values() {
        let before = demo();
        let mut after = before.clone();
        after.throttle_days = 30;
        after.name = "Service visit, spring".into();
        let changes = setting_changes(Some(&before), &after);
        let names: Vec<&str> = changes.iter().map(|c| c.setting.as_str()).collect();
        assert_eq!(names, ["name", "throttle_days"]);
        assert_eq!(changes[1].before.as_deref(), Some("90"));
        assert_eq!(changes[1].after.as_deref(), Some("30"));
        assert!(setting_changes(Some(&before), &before).is_empty());
    }

    #[test]
    fn a_new_campaign_lists_every_setting_it_has_and_long_values_are_cut() {
        let mut c = demo();
        c.themes.insert("long".into(), (0..80).map(|i| format!("word{i}")).collect());
        let changes = setting_changes(None, &c);
        assert!(changes.iter().all(|s| s.before.is_none() && s.after.is_some()));
        let themes = changes.iter().find(|s| s.setting == "themes").unwrap();
        assert_eq!(themes.after.as_ref().unwrap().chars().count(), MAX_VALUE_CHARS);
        assert!(themes.after.as_ref().unwrap().ends_with('…'));
    }

    #[test]
    fn a_webhook_change_is_logged_with_its_secret_hidden() {
        let before = demo();
        let mut after = demo();
        after.webhooks.push(
            toml::from_str("url = \"https://crm.example/hooks\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nevents = [\"case.opened\"]").unwrap(),
        );
        let changes = setting_changes(Some(&before), &after);
        let webhooks = changes.iter().find(|c| c.setting == "webhooks").expect("the webhook is a change");
        let shown = webhooks.after.clone().unwrap();
        assert!(shown.contains("crm.example") && shown.contains("whsec_…LaSw"), "{shown}");
        assert!(!shown.contains("MfKQ9r8GKYqrTwjUPD8"), "{shown}");
    }

    #[test]
    fn an_entry_round_trips_through_json_with_its_kind() {
        let c = demo();
        let entry = CampaignChange::new(ChangeKind::Duplicated { from: CampaignId::parse("old").unwrap() }, 1, "Karin", Timestamp::from_millis(5), None, &c);
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains("\"kind\":\"duplicated\"") && json.contains("\"from\":\"old\""), "{json}");
        assert_eq!(serde_json::from_str::<CampaignChange>(&json).unwrap(), entry);
    }
}
