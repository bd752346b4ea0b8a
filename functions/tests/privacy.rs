//! Finding one person for an export or an erasure: through the other key their invitations
//! carry, never into someone else's, and the same in one call or in several.

use closeloop_core::ports::Store;
use closeloop_core::privacy::Person;
use closeloop_core::{Campaign, ContactKey, Phone};
use closeloop_functions::{launch, privacy};

fn campaign(id: &str) -> Campaign {
    let mut campaign = Campaign::from_toml(&include_str!("../../demo/campaign.toml").replacen("id = \"demo-service-visit\"", &format!("id = \"{id}\""), 1)).unwrap();
    campaign.throttle_days = 0;
    campaign
}

#[tokio::test]
async fn an_erasure_in_several_calls_still_reaches_the_sms_invitation_found_through_the_phone() {
    let local = closeloop_testkit::local();
    let services = &local.services;
    launch::launch(services, &campaign("first"), b"email;phone;first_name\nasa@example.se;+46701234567;Asa\n").await.unwrap();
    local.clock.set(closeloop_testkit::T0.plus_hours(1));
    launch::launch(services, &campaign("second"), b"phone;first_name\n+46701234567;Asa\n").await.unwrap();
    let person = Person::parse(Some("asa@example.se"), None).unwrap();
    let (ids, _) = privacy::find(&local.store, &person).await.unwrap();
    assert_eq!(ids.len(), 2, "the SMS invitation comes through the phone");
    let first = privacy::erase_some(&local.store, &person, closeloop_testkit::T0, Some(1)).await.unwrap();
    assert_eq!((first.invitations_erased, first.remaining), (1, 1));
    let second = privacy::erase_some(&local.store, &person, closeloop_testkit::T0, Some(1)).await.unwrap();
    assert_eq!((second.invitations_erased, second.remaining, second.keys_suppressed), (1, 0, 2), "both keys, once everything is erased");
    for row in local.store.campaign_rows(&campaign("second").id).await.unwrap() {
        assert!(row.invitation.erased_at.is_some() && row.invitation.contact.phone.is_none(), "the SMS invitation is erased too");
    }
    assert!(local.store.is_suppressed(&[ContactKey::phone(&Phone::parse("+46701234567").unwrap())]).await.unwrap());
}

#[tokio::test]
async fn a_phone_shared_with_someone_else_brings_neither_their_data_nor_their_suppression() {
    let local = closeloop_testkit::local();
    let services = &local.services;
    let c = campaign("shared");
    launch::launch(services, &c, b"email;phone;first_name\nasa@example.se;+46701234567;Asa\n").await.unwrap();
    local.clock.set(closeloop_testkit::T0.plus_hours(1));
    launch::launch(services, &campaign("shared-later"), b"email;phone;first_name\nbo@example.se;+46701234567;Bo\n").await.unwrap();
    let asa = Person::parse(Some("asa@example.se"), None).unwrap();
    let export = privacy::export(&local.store, &asa, closeloop_testkit::T0).await.unwrap();
    let names: Vec<_> = export.invitations.iter().map(|r| r.contact.first_name.clone()).collect();
    assert_eq!(names, vec![Some("Asa".to_owned())], "Bo's invitation is not Åsa's to read");
    let report = privacy::erase(&local.store, &asa, closeloop_testkit::T0).await.unwrap();
    assert_eq!((report.invitations_erased, report.keys_suppressed), (1, 1), "her address only: the phone is Bo's too");
    let rows = local.store.campaign_rows(&campaign("shared-later").id).await.unwrap();
    assert!(rows.iter().any(|r| r.invitation.contact.first_name.as_deref() == Some("Bo") && r.invitation.erased_at.is_none()), "Bo is untouched");
    assert!(!local.store.is_suppressed(&[ContactKey::email(&closeloop_core::Email::parse("bo@example.se").unwrap()), ContactKey::phone(&Phone::parse("+46701234567").unwrap())]).await.unwrap(), "and not suppressed");
}
