//! `redrive` against moto's SQS and DynamoDB Local (run through scripts/with-services): Lambda's
//! destination records in a failure queue are replayed through the same handlers, deleted once
//! replayed, and kept when the replay fails.

use closeloop_core::contract;
use closeloop_core::ports::Store;
use closeloop_core::{ContactKey, Email};
use closeloop_lambdas::redrive::{self, FailureQueues, Redrive, RedriveError, RedriveRequest, RedriveSummary};
use closeloop_lambdas::{chunk_queue, launch_pipeline, s3_client, webhook_queue};
use serde_json::{json, Value};

mod support;
use support::{create_queue, sqs, world};

/// Lambda's on-failure destination record for an asynchronous invocation of `function`.
fn destination_record(function: &str, payload: Value) -> String {
    json!({
        "version": "1.0",
        "timestamp": "2026-12-01T10:00:05.000Z",
        "requestContext": {
            "requestId": "6b1c0a56-0000-4000-8000-000000000001",
            "functionArn": format!("arn:aws:lambda:eu-north-1:000000000000:function:closeloop-{function}-AbCdEf:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "Retryable", "errorMessage": "retryable: storage unavailable"}
    })
    .to_string()
}

/// SNS's event for SES's permanent bounce of `address`.
fn bounce(address: &str) -> Value {
    let message = json!({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": address}], "timestamp": "2026-12-01T10:00:00.000Z", "feedbackId": "f"},
        "mail": {"messageId": "m", "source": "karin@nordhavn.example", "destination": [address]}});
    json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:eu-north-1:000000000000:ses-feedback:1",
        "Sns": {"Type": "Notification", "MessageId": "n1", "TopicArn": "arn:aws:sns:eu-north-1:000000000000:ses-feedback",
                "Subject": null, "Message": message.to_string(), "Timestamp": "2026-12-01T10:00:01.000Z",
                "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x",
                "MessageAttributes": {}}}]})
}

/// S3's event for an upload of `key` to `bucket`.
fn upload(bucket: &str, key: &str) -> Value {
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-north-1",
        "eventTime": "2026-12-01T10:00:00.000Z", "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "launch", "bucket": {"name": bucket, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 1, "eTag": "e", "sequencer": "1"}}}]})
}

/// The redrive function's wiring over the test's table, with fresh failure queues.
async fn redrive_over(name: &str) -> anyhow::Result<(Redrive, closeloop_dynamodb::DynamoStore)> {
    let (services, store, table) = world(name).await;
    let config = support::config(&table);
    let queues = FailureQueues {
        schedule: Some(create_queue(&format!("{name}-schedule-failed")).await),
        mail_feedback: Some(create_queue(&format!("{name}-mail-feedback-failed")).await),
        launch_upload: Some(create_queue(&format!("{name}-launch-upload-failed")).await),
    };
    let redrive = Redrive {
        services,
        accounts: Default::default(),
        webhooks: webhook_queue(&config),
        chunks: chunk_queue(&config),
        s3: s3_client(&config),
        sqs: sqs(),
        queues,
    };
    Ok((redrive, store))
}

async fn put(queue: &str, body: String) -> anyhow::Result<()> {
    sqs().send_message().queue_url(queue).message_body(body).send().await?;
    Ok(())
}

/// Every message in the queue, visible or not.
async fn in_queue(queue: &str) -> anyhow::Result<usize> {
    let out = sqs()
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    Ok(out.attributes().map(|a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum()).unwrap_or(0))
}

fn request(queue: &str) -> RedriveRequest {
    serde_json::from_value(json!({ "queue": queue })).expect("a request with only the queue")
}

#[tokio::test]
async fn a_bounce_that_landed_in_its_failure_queue_is_replayed_once_and_its_message_deleted() -> anyhow::Result<()> {
    let (redrive, store) = redrive_over("redrive-bounce").await?;
    let queue = redrive.queues.mail_feedback.clone().expect("the mail feedback queue");
    let address = format!("gone.{}@example.se", std::process::id());
    put(&queue, destination_record("MailFeedbackFunction", bounce(&address))).await?;
    let key = ContactKey::email(&Email::parse(&address)?);
    assert!(!store.is_suppressed(std::slice::from_ref(&key)).await?);

    let first = redrive::handle(&redrive, request(&queue)).await?;
    assert_eq!(first, RedriveSummary { replayed: 1, failed: 0, left: 0 });
    assert!(store.is_suppressed(std::slice::from_ref(&key)).await?, "the bounced address is suppressed");
    let suppressions = store.suppressions(std::slice::from_ref(&key)).await?;
    assert_eq!(suppressions.len(), 1);
    assert_eq!(in_queue(&queue).await?, 0, "the replayed message is gone");

    let second = redrive::handle(&redrive, request(&queue)).await?;
    assert_eq!(second, RedriveSummary { replayed: 0, failed: 0, left: 0 }, "nothing is left to replay");
    assert_eq!(store.suppressions(std::slice::from_ref(&key)).await?, suppressions, "the suppression is the one stored first");
    Ok(())
}

#[tokio::test]
async fn a_record_whose_replay_fails_stays_in_its_queue_and_is_visible_again() -> anyhow::Result<()> {
    let (redrive, store) = redrive_over("redrive-fails").await?;
    let queue = redrive.queues.launch_upload.clone().expect("the launch upload queue");
    // The campaign exists, its upload's bucket does not: launch_upload returns the read's
    // error for a retry, as it did when the record landed here.
    let campaign = contract::campaign("redrive-upload");
    store.put_campaign(&campaign).await?;
    let bucket = format!("no-such-bucket-{}", std::process::id());
    put(&queue, destination_record("LaunchUploadFunction", upload(&bucket, &launch_pipeline::upload_key(&campaign.id)))).await?;
    // And one whose event is not an S3 event at all.
    put(&queue, destination_record("LaunchUploadFunction", json!({"Records": "not a list"}))).await?;

    let summary = redrive::handle(&redrive, request(&queue)).await?;
    assert_eq!(summary, RedriveSummary { replayed: 0, failed: 2, left: 2 });
    let again = redrive::handle(&redrive, request(&queue)).await?;
    assert_eq!(again, RedriveSummary { replayed: 0, failed: 2, left: 2 }, "the failed messages were visible again for the next run");
    Ok(())
}

#[tokio::test]
async fn a_run_stops_at_its_maximum_and_says_what_is_left() -> anyhow::Result<()> {
    let (redrive, store) = redrive_over("redrive-max").await?;
    let queue = redrive.queues.mail_feedback.clone().expect("the mail feedback queue");
    let addresses: Vec<String> = (0..3).map(|i| format!("max{i}.{}@example.se", std::process::id())).collect();
    for address in &addresses {
        put(&queue, destination_record("MailFeedbackFunction", bounce(address))).await?;
    }
    let summary = redrive::handle(&redrive, serde_json::from_value(json!({"queue": queue, "max": 2}))?).await?;
    assert_eq!(summary, RedriveSummary { replayed: 2, failed: 0, left: 1 });
    let rest = redrive::handle(&redrive, request(&queue)).await?;
    assert_eq!(rest, RedriveSummary { replayed: 1, failed: 0, left: 0 });
    for address in &addresses {
        assert!(store.is_suppressed(&[ContactKey::email(&Email::parse(address)?)]).await?, "{address}");
    }
    Ok(())
}

#[tokio::test]
async fn a_queue_that_is_not_a_known_failure_queue_is_refused() -> anyhow::Result<()> {
    let (redrive, _) = redrive_over("redrive-unknown").await?;
    let other = create_queue("redrive-unknown-other").await;
    let error = redrive::handle(&redrive, request(&other)).await.expect_err("not a failure queue");
    assert!(matches!(&error, RedriveError::UnknownQueue(q) if *q == other), "{error:?}");
    Ok(())
}
