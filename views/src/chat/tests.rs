use closeloop_core::campaign::CampaignId;
use closeloop_core::model::{Contact, Email, InvitationId, Token};
use closeloop_core::nps::Score;

use super::*;

fn campaign() -> Campaign {
    let mut c = Campaign::from_toml(
        "id = \"visit\"\nname = \"Service visit\"\ncompany = \"Nordhavn\"\nsender_name = \"Karin\"\nsender_email = \"karin@nordhavn.example\"\ntime_zone = \"Europe/Stockholm\"\n",
    )
    .unwrap();
    c.locales = vec![closeloop_core::Locale::En];
    c
}

fn invitation(c: &Campaign) -> Invitation {
    let contact = Contact {
        email: Some(Email::parse("asa@example.se").unwrap()),
        first_name: Some("Åsa <b>&".into()),
        last_name: Some("Lind".into()),
        store: Some("Malmö".into()),
        ..Contact::default()
    };
    Invitation::new(InvitationId("i1".into()), Token::from_random_bytes([3; 16]), c, contact, Timestamp::from_millis(0)).unwrap()
}

fn answer(score: u8, contact_ok: bool) -> Answer {
    Answer {
        invitation_id: InvitationId("i1".into()),
        campaign_id: CampaignId::parse("visit").unwrap(),
        score: Score::new(score).unwrap(),
        comment: Some("Slow <script> & rude".into()),
        contact_ok,
        ratings: Default::default(),
        version: 1,
        first_answered_at: Timestamp::from_millis(0),
        answered_at: Timestamp::from_millis(0),
    }
}

const DUE: Timestamp = Timestamp::from_millis(1_790_000_000_000);
const CASE_URL: &str = "https://nps.example/admin/c/visit/cases?status=all#case-i1";

fn digest() -> DigestSummary {
    DigestSummary {
        week: "2026-W40".into(),
        nps: Some(32),
        margin_95: Some(9),
        answered: 41,
        promoters: 22,
        passives: 11,
        detractors: 8,
        new_detractors: 3,
        open_cases: 4,
        overdue_cases: 1,
        dashboard_url: "https://nps.example/admin/c/visit".into(),
    }
}

/// Golden files in the documented formats; `UPDATE_FIXTURES=1` rewrites them.
fn matches_fixture(name: &str, value: &Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/chat/fixtures").join(name);
    let pretty = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(pretty, expected, "{name} differs from its fixture");
}

/// What Block Kit allows, from its reference: the block types we use, their text objects, limits.
fn assert_block_kit(message: &Value) {
    assert!(message["text"].as_str().is_some_and(|t| !t.is_empty()), "a fallback text for notifications");
    let blocks = message["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(block["text"]["type"], "plain_text");
                assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 150);
            }
            "section" => {
                if let Some(fields) = block["fields"].as_array() {
                    assert!(fields.len() <= 10);
                    for f in fields {
                        assert_eq!(f["type"], "mrkdwn");
                        assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
                    }
                } else {
                    assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 3000);
                }
            }
            "actions" => {
                for e in block["elements"].as_array().unwrap() {
                    assert_eq!(e["type"], "button");
                    assert!(e["url"].as_str().unwrap().starts_with("https://"));
                }
            }
            other => panic!("block type {other} is not one we send"),
        }
    }
    let text = message.to_string();
    assert!(!text.contains("<script>") && !text.contains("<b>"), "data never reaches Slack as markup: {text}");
}

/// The Adaptive Card shape Teams' Workflows webhook takes: one attachment, card 1.4, known elements.
fn assert_adaptive_card(message: &Value) {
    assert_eq!(message["type"], "message");
    let attachments = message["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    for element in card["body"].as_array().unwrap() {
        match element["type"].as_str().unwrap() {
            "TextBlock" => assert!(element["text"].is_string() && element["wrap"] == true),
            "FactSet" => assert!(element["facts"].as_array().unwrap().iter().all(|f| f["title"].is_string() && f["value"].is_string())),
            other => panic!("element {other} is not one we send"),
        }
    }
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
}

#[test]
fn a_detractor_alert_in_block_kit_and_as_an_adaptive_card_matches_its_fixture_and_the_formats() {
    let c = campaign();
    let slack = slack_alert(&c, &invitation(&c), &answer(2, false), DUE, CASE_URL);
    assert_block_kit(&slack);
    matches_fixture("slack_alert.json", &slack);
    let teams = teams_alert(&c, &invitation(&c), &answer(2, false), DUE, CASE_URL);
    assert_adaptive_card(&teams);
    matches_fixture("teams_alert.json", &teams);
    assert!(slack.to_string().contains("Slow &lt;script&gt; &amp; rude"));
    assert!(slack.to_string().contains("2026-09-21 16:13 CEST"), "the deadline on the campaign's clock");
    let mut linked = invitation(&c);
    linked.contact.first_name = Some("[click](https://evil.example)".into());
    let card = teams_alert(&c, &linked, &answer(2, false), DUE, CASE_URL).to_string();
    assert!(card.contains(r"\\[click\\]\\(https://evil.example\\)"), "a Markdown link from data stays text: {card}");
}

#[test]
fn a_contact_request_reads_as_one_in_chat_too() {
    let c = campaign();
    let slack = slack_alert(&c, &invitation(&c), &answer(9, true), DUE, CASE_URL);
    assert!(slack["text"].as_str().unwrap().starts_with("Contact request by"), "{slack}");
    let teams = teams_alert(&c, &invitation(&c), &answer(9, true), DUE, CASE_URL);
    assert!(teams.to_string().contains("Contact request by"));
}

#[test]
fn the_weekly_digest_in_chat_has_figures_and_no_names_or_comments() {
    let c = campaign();
    let slack = slack_digest(&c, &digest());
    assert_block_kit(&slack);
    matches_fixture("slack_digest.json", &slack);
    let teams = teams_digest(&c, &digest());
    assert_adaptive_card(&teams);
    matches_fixture("teams_digest.json", &teams);
    assert!(slack.to_string().contains("+32"));
}
