//! Mail through SES for real: SendRawEmail to a local SES endpoint, read back from its store.

use closeloop_core::ports::{Mailer, MessageKind, OutgoingMail};
use closeloop_ses::{client_for, SesMailer};

fn endpoint() -> String {
    std::env::var("SES_ENDPOINT").expect("SES_ENDPOINT: run through scripts/with-services, which starts aws-ses-v2-local")
}

#[tokio::test]
async fn a_mail_arrives_with_both_parts_encoded_headers_and_unsubscribe() {
    let credentials = aws_credential_types::Credentials::new("local", "local", None, None, "test");
    let mailer = SesMailer::new(client_for(Some(&endpoint()), "eu-north-1", credentials), Some("closeloop".into()));
    let marker = uuid_like();
    let mail = OutgoingMail {
        kind: MessageKind::Invitation,
        key: format!("invitation:{marker}"),
        from_name: "Karin Lund".into(),
        from_email: "karin@nordhavn.example".into(),
        to_name: Some("Åsa Ödegård".into()),
        to_email: format!("asa.{marker}@example.se"),
        subject: "Hur gick det? En fråga från Nordhavn Cykler".into(),
        text: "Hej Åsa!\n10: https://nps.example/s/AbC?score=10\n".into(),
        html: "<p>Hej Åsa!</p><a href=\"https://nps.example/s/AbC?score=10\">10</a>".into(),
        headers: vec![
            ("List-Unsubscribe".into(), "<https://nps.example/u/AbC>".into()),
            ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
        ],
    };
    let id = mailer.send_mail(&mail).await.expect("SES accepts the message");
    assert!(!id.is_empty());

    let store: serde_json::Value = reqwest::get(format!("{}/store", endpoint())).await.unwrap().json().await.unwrap();
    let email = store["emails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.to_string().contains(&marker))
        .unwrap_or_else(|| panic!("the mail is not in the store: {store}"));
    // The stand-in parses the MIME we built: every part must decode back to what was sent.
    // (Its store shows no custom headers; closeloop-mail's tests cover the list headers.)
    assert_eq!(email["subject"], mail.subject);
    assert_eq!(email["body"]["text"], mail.text);
    assert_eq!(email["body"]["html"], mail.html);
    assert_eq!(email["from"], "\"Karin Lund\" <karin@nordhavn.example>");
    assert_eq!(email["destination"]["to"][0], format!("\"Åsa Ödegård\" <asa.{marker}@example.se>"));
}

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}
