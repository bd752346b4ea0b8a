//! SMS through SNS for real: Publish to a local SNS endpoint (moto's server), read back.

use closeloop_core::ports::{MessageKind, OutgoingSms, SmsSender};
use closeloop_sns::{client_for, SnsSms};

#[tokio::test]
async fn an_sms_invitation_is_published_to_the_phone_number() {
    let endpoint = std::env::var("SNS_ENDPOINT").expect("SNS_ENDPOINT: run through scripts/with-services, which starts moto's server");
    let credentials = aws_credential_types::Credentials::new("local", "local", None, None, "test");
    let sms = SnsSms::new(client_for(Some(&endpoint), "eu-north-1", credentials), Some("Nordhavn".into()));
    let marker = format!("{}", std::process::id());
    let message = OutgoingSms {
        kind: MessageKind::Invitation,
        to: "+46701234567".into(),
        text: format!("Nordhavn Cykler: hur troligt är det att du rekommenderar oss? Svara på 1 min: https://nps.example/s/{marker}"),
    };
    let id = sms.send_sms(&message).await.expect("SNS accepts the message");
    assert!(!id.is_empty());
    let data: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().json().await.unwrap();
    let sent: Vec<_> = data["sns"]["SMS"].as_array().unwrap().iter().filter(|m| m["message"].as_str().unwrap_or("").contains(&marker)).collect();
    assert_eq!(sent.len(), 1, "{data}");
    assert_eq!(sent[0]["phone_number"], "+46701234567");
    assert_eq!(sent[0]["message"], message.text.as_str(), "the text arrives unchanged, Scandinavian letters included");
    assert_eq!(sent[0]["message_id"], id.as_str());
}
