//! The largest campaign and contact the campaign file and the CRM import allow: 50 CRM
//! properties, every named field, 5 drivers and 30 themes. Used to guard DynamoDB's limit of
//! 100 operations per transaction (unit test here, contract case in `contract`).

use crate::campaign::Campaign;
use crate::model::{Answer, Contact, Email, Invitation, InvitationId, Phone, Token, MAX_PROPERTIES};
use crate::nps::Score;
use crate::time::Timestamp;

pub fn largest_campaign(id: &str) -> Campaign {
    let mut toml = format!(
        "id = \"{id}\"\nname = \"Largest\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\ntouchpoint = \"purchase\"\n"
    );
    for d in 0..5 {
        toml.push_str(&format!("[[drivers]]\nkey = \"driver{d}\"\nlabel = \"Driver {d}\"\n"));
    }
    toml.push_str("[themes]\n");
    for t in 0..30 {
        toml.push_str(&format!("theme{t:02} = [\"word{t:02}\"]\n"));
    }
    Campaign::from_toml(&toml).expect("the largest campaign is valid")
}

/// A contact with every named field and the most CRM properties allowed.
pub fn largest_invitation(campaign: &Campaign, n: u32, at: Timestamp) -> Invitation {
    let contact = Contact {
        email: Some(Email::parse(&format!("largest{n}@{}.example", campaign.id)).expect("valid")),
        phone: Some(Phone::parse(&format!("+4673{:07}", n % 10_000_000)).expect("valid")),
        first_name: Some("Åsa".into()),
        last_name: Some("Öberg".into()),
        company: Some("Öberg AB".into()),
        segment: Some("retail".into()),
        store: Some("Malmö".into()),
        owner_email: Some(Email::parse("owner@acme.example").expect("valid")),
        touchpoint: Some("visit".into()),
        locale: None,
        properties: (0..MAX_PROPERTIES).map(|p| (format!("field{p:02}"), format!("value {p} of {n}"))).collect(),
    };
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    bytes[4..8].copy_from_slice(&(campaign.id.as_str().len() as u32).to_le_bytes());
    Invitation::new(InvitationId(format!("{}-largest-{n}", campaign.id)), Token::from_random_bytes(bytes), campaign, contact, at)
        .expect("valid invitation")
}

/// An answer with every driver rated and a comment in every theme.
pub fn answer_touching_everything(invitation: &Invitation, score: u8, version: u32, previous: Option<&Answer>, at: Timestamp) -> Answer {
    let comment = (0..30).map(|t| format!("word{t:02}")).collect::<Vec<_>>().join(" ");
    Answer {
        invitation_id: invitation.id.clone(),
        campaign_id: invitation.campaign_id.clone(),
        score: Score::new(score).expect("0..=10"),
        comment: Some(comment),
        contact_ok: true,
        ratings: (0..5).map(|d| (format!("driver{d}"), (d % 5 + 1) as u8)).collect(),
        version,
        first_answered_at: previous.map_or(at, |p| p.first_answered_at),
        answered_at: at,
    }
}
