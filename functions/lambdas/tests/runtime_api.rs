//! The real binaries, invoked through the Lambda runtime API as `cargo lambda watch` emulates it,
//! against DynamoDB Local and the local SES endpoint: a schedule event, an SNS bounce, a stream
//! batch read from the table's stream (twice), a function-URL request to the API, and a webhook
//! queue message.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use closeloop_core::ports::Store;
use closeloop_dynamodb::stream::{local_streams_client, read_all};
use serde_json::{json, Value};

mod support;
use support::{create_queue, lambda_batch_json, receive_all, sent_to, sqs_event, world};

const API_TOKEN: &str = "runtime-api-token-0123456789";

fn api_token_parameter() -> String {
    format!("/closeloop-runtime-{}/api-token", std::process::id())
}

/// Puts the API token into moto's SSM (beside SNS at `SNS_ENDPOINT`), where the binaries read it.
async fn put_api_token() {
    closeloop_lambdas::config::ssm_client(
        Some(&std::env::var("SNS_ENDPOINT").unwrap()),
        "eu-north-1",
        aws_credential_types::Credentials::new("local", "local", None, None, "test"),
    )
    .put_parameter()
    .name(api_token_parameter())
    .value(API_TOKEN)
    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
    .overwrite(true)
    .send()
    .await
    .unwrap();
}

/// `cargo lambda watch`, stopped through its own process group when dropped.
struct Watch {
    child: Child,
    base: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        if group > 1 {
            // SAFETY: signals only the process group this test created.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

fn start_watch(table: &str, queue_url: &str) -> Watch {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let vars = [
        format!("TABLE_NAME={table}"),
        "AWS_REGION=eu-north-1".into(),
        format!(
            "DYNAMODB_ENDPOINT={}",
            std::env::var("DYNAMODB_ENDPOINT").unwrap()
        ),
        format!("SES_ENDPOINT={}", std::env::var("SES_ENDPOINT").unwrap()),
        "SES_CONFIGURATION_SET=closeloop".into(),
        format!("SNS_ENDPOINT={}", std::env::var("SNS_ENDPOINT").unwrap()),
        "PUBLIC_URL=https://nps.example".into(),
        "AWS_ACCESS_KEY_ID=local".into(),
        "AWS_SECRET_ACCESS_KEY=local".into(),
        // The token as the template gives it: a parameter's name, its value in moto's SSM.
        format!("API_TOKEN_PARAMETER={}", api_token_parameter()),
        format!("SSM_ENDPOINT={}", std::env::var("SNS_ENDPOINT").unwrap()),
        format!("SQS_ENDPOINT={}", std::env::var("SQS_ENDPOINT").unwrap()),
        format!("S3_ENDPOINT={}", std::env::var("S3_ENDPOINT").unwrap()),
        format!("LAUNCH_QUEUE_URL={queue_url}"),
    ];
    let mut cmd = Command::new("cargo");
    cmd.args([
        "lambda",
        "watch",
        "--package",
        "closeloop-lambdas",
        "--invoke-address",
        "127.0.0.1",
        "--invoke-port",
        &port.to_string(),
    ])
    .args(["--ignore-changes", "--offline", "--quiet"])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    for v in &vars {
        cmd.args(["--env-var", v]);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .spawn()
        .expect("cargo lambda is installed by scripts/setup-tests");
    let watch = Watch {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    watch
}

async fn invoke(http: &reqwest::Client, watch: &Watch, function: &str, payload: &Value) -> Value {
    let response = http
        .post(format!(
            "{}/2015-03-31/functions/{function}/invocations",
            watch.base
        ))
        .json(payload)
        .timeout(Duration::from_secs(240))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "{function}: {status} {body}");
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

#[tokio::test]
async fn the_binaries_handle_real_events_through_the_runtime_api() {
    let (services, store, table) = world("runtime").await;
    let queue_url = create_queue("runtime-chunks").await;
    put_api_token().await;
    let watch = tokio::task::spawn_blocking({
        let (table, queue_url) = (table.clone(), queue_url.clone());
        move || start_watch(&table, &queue_url)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let marker = format!("rt{}", std::process::id());

    // Function URL requests to the launch function: the campaign file, a CSV launch, the CRM API.
    let campaign_file = include_str!("../../../demo/campaign.toml");
    let campaign = closeloop_core::Campaign::from_toml(campaign_file).unwrap();
    let put = http
        .put(format!("{}/lambda-url/launch/api/v1/campaigns/{}", watch.base, campaign.id))
        .bearer_auth(API_TOKEN)
        .body(campaign_file)
        .timeout(Duration::from_secs(240))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let csv = format!("email;first_name;owner_email\npia.{marker}@example.se;Pia;owner.{marker}@example.se\nbroken;Bad;\n");
    let launched = http
        .post(format!("{}/lambda-url/launch/api/v1/campaigns/{}/launch", watch.base, campaign.id))
        .bearer_auth(API_TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(launched.status(), 200);
    let summary: Value = launched.json().await.unwrap();
    assert_eq!(summary["invited"], 1, "{summary}");
    assert_eq!(summary["bad_rows"][0]["line"], 3, "{summary}");
    let api = http
        .post(format!("{}/lambda-url/launch/api/v1/invitations", watch.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({"campaign_id": campaign.id.as_str(), "contact": {"email": format!("lo.{marker}@example.se"), "first_name": "Lo"}}))
        .timeout(Duration::from_secs(240))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 201, "{}", api.text().await.unwrap());

    // A queued launch: the launch function puts its chunk on SQS, the launch_chunk binary
    // writes it; delivered twice, nobody is invited twice.
    let queued_csv = format!("email;first_name\nula.{marker}@example.se;Ula\nolle.{marker}@example.se;Olle\n");
    let queued = http
        .post(format!("{}/lambda-url/launch/api/v1/campaigns/{}/launches", watch.base, campaign.id))
        .bearer_auth(API_TOKEN)
        .header("content-type", "text/csv")
        .body(queued_csv)
        .timeout(Duration::from_secs(240))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202, "{}", queued.text().await.unwrap());
    let job: Value = queued.json().await.unwrap();
    let messages = receive_all(&queue_url).await;
    assert_eq!(messages.len(), 1, "one chunk");
    for _ in 0..2 {
        let written = invoke(&http, &watch, "launch_chunk", &sqs_event(&messages)).await;
        assert_eq!(written["batchItemFailures"], json!([]), "{written}");
    }
    let status: Value = http
        .get(format!("{}/lambda-url/launch/api/v1/launches/{}", watch.base, job["id"].as_str().unwrap()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((status["state"].as_str(), status["invited"].as_u64(), status["chunks_done"].as_u64()), (Some("done"), Some(2), Some(1)), "{status}");

    // Pia answers.
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    let names: Vec<_> = rows.iter().map(|r| r.invitation.contact.full_name()).collect();
    let pia = rows
        .iter()
        .find(|r| r.invitation.contact.first_name.as_deref() == Some("Pia"))
        .unwrap_or_else(|| panic!("Pia was not invited: {names:?} ({summary})"));
    let (answer, event, counters) =
        closeloop_core::contract::answer(&pia.invitation, 2, 1, services.clock.now());
    store.record_answer(&answer, &event, &counters).await.unwrap();

    // The on-answer function gets the stream batch; delivered twice, nobody gets a second mail.
    let batch = lambda_batch_json(
        &read_all(&store, &local_streams_client().unwrap())
            .await
            .unwrap(),
    );
    let first = invoke(&http, &watch, "on_answer", &batch).await;
    assert_eq!(first["batchItemFailures"], json!([]), "{first}");
    let mails = sent_to(&marker).await;
    // Lo's, Pia's, Ula's and Olle's invitations, Pia's thank-you and the owner's alert.
    assert_eq!(mails.len(), 6, "{mails:#?}");
    let again = invoke(&http, &watch, "on_answer", &batch).await;
    assert_eq!(again["batchItemFailures"], json!([]));
    assert_eq!(
        sent_to(&marker).await.len(),
        6,
        "the redelivered batch sent nothing"
    );

    // SES says Lo's address bounced: suppressed everywhere.
    let message = json!({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent",
        "bouncedRecipients": [{"emailAddress": format!("lo.{marker}@example.se")}]}, "mail": {"messageId": "m"}});
    let sns = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:eu-north-1:0:t:1",
        "Sns": {"Type": "Notification", "MessageId": "n", "TopicArn": "arn:aws:sns:eu-north-1:0:t", "Message": message.to_string(),
                "Timestamp": "2026-11-22T10:00:01.000Z", "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x",
                "UnsubscribeUrl": "https://x", "MessageAttributes": {}}}]});
    let feedback = invoke(&http, &watch, "mail_feedback", &sns).await;
    assert_eq!(feedback["suppressed"], 1, "{feedback}");

    // The schedule runs: nothing is due yet (invited just now), and it says so.
    let scheduled = json!({"version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events", "account": "0",
        "time": "2026-11-22T09:00:00Z", "region": "eu-north-1", "resources": [], "detail": {}});
    let summary = invoke(&http, &watch, "schedule", &scheduled).await;
    assert_eq!(summary["reminders_sent"], 0, "{summary}");

    // The webhook function gets a queue message for a delivery aimed at this machine: on AWS
    // nothing private or loopback is called, so the attempt is refused and kept in the log.
    let mut hooked = store.campaign(&campaign.id).await.unwrap().unwrap();
    hooked.webhooks.push(closeloop_core::webhooks::WebhookEndpoint {
        url: closeloop_core::webhooks::WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap(),
        secret: closeloop_core::webhooks::WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
        events: [closeloop_core::webhooks::WebhookEvent::ResponseCreated].into_iter().collect(),
    });
    store.put_campaign(&hooked).await.unwrap();
    let delivery = closeloop_core::webhooks::WebhookDelivery::new(
        &hooked.id,
        &hooked.webhooks[0],
        closeloop_core::webhooks::WebhookEvent::ResponseCreated,
        &event.id,
        &pia.invitation.id,
        1,
        services.clock.now(),
    );
    store.enqueue_webhooks(std::slice::from_ref(&delivery)).await.unwrap();
    let message = json!({"campaign_id": hooked.id.as_str(), "id": delivery.id}).to_string();
    let sqs = sqs_event(&[("m-webhook".to_owned(), message)]);
    let posted = invoke(&http, &watch, "deliver_webhooks", &sqs).await;
    assert_eq!(posted["batchItemFailures"], json!([]), "{posted}");
    let logged = store.webhook(&hooked.id, &delivery.id).await.unwrap().unwrap();
    assert_eq!(logged.attempts, 1);
    let error = logged.last.and_then(|l| l.error).unwrap_or_default();
    assert!(error.starts_with("refused"), "loopback is refused on AWS: {error}");
    drop(watch);
}
