//! Helpers shared by the handler tests and the runtime-API test.
#![allow(dead_code)]

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::Event as StreamBatch;
use aws_sdk_dynamodb::types::AttributeValue;
use closeloop_dynamodb::{create_table, DynamoStore, TableSettings};
use closeloop_functions::Services;
use closeloop_lambdas::{services, LambdaConfig};
use serde_json::json;

pub fn config(table: &str) -> LambdaConfig {
    LambdaConfig {
        table: table.to_owned(),
        region: "eu-north-1".into(),
        dynamodb_endpoint: Some(
            std::env::var("DYNAMODB_ENDPOINT")
                .expect("DYNAMODB_ENDPOINT: run through scripts/with-services"),
        ),
        ses_endpoint: Some(
            std::env::var("SES_ENDPOINT").expect("SES_ENDPOINT: run through scripts/with-services"),
        ),
        ses_configuration_set: Some("closeloop".into()),
        sns_endpoint: Some(std::env::var("SNS_ENDPOINT").expect("SNS_ENDPOINT: run through scripts/with-services")),
        sms_sender_id: Some("Nordhavn".into()),
        public_url: "https://nps.example".into(),
        api_token: None,
        people_api_token: None,
        accounts: Default::default(),
        session_secret: None,
        credentials: aws_credential_types::Credentials::new("local", "local", None, None, "test"),
        launch_queue_url: None,
        upload_bucket: None,
        sqs_endpoint: Some(std::env::var("SQS_ENDPOINT").expect("SQS_ENDPOINT: run through scripts/with-services")),
        webhook_queue_url: None,
        s3_endpoint: Some(std::env::var("S3_ENDPOINT").expect("S3_ENDPOINT: run through scripts/with-services")),
        ses_max_send_rate: None,
        ses_sending_instances: 1,
    }
}

pub async fn world(name: &str) -> (Services, DynamoStore, String) {
    let table = format!("closeloop-lambda-{name}-{}", std::process::id());
    let config = config(&table);
    let client = closeloop_dynamodb::client_for(
        config.dynamodb_endpoint.as_deref(),
        &config.region,
        config.credentials.clone(),
    );
    create_table(
        &client,
        &TableSettings {
            name: table.clone(),
        },
    )
    .await
    .unwrap();
    (
        services(&config),
        DynamoStore::new(client, table.clone()),
        table,
    )
}

/// Mail the local SES endpoint holds for addresses containing `marker`.
pub async fn sent_to(marker: &str) -> Vec<serde_json::Value> {
    let store: serde_json::Value =
        reqwest::get(format!("{}/store", std::env::var("SES_ENDPOINT").unwrap()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    store["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["destination"].to_string().contains(marker))
        .cloned()
        .collect()
}

/// The stream's records as the Lambda service delivers them (DynamoDB JSON images).
pub fn lambda_batch(records: &[closeloop_dynamodb::stream::StreamRecord]) -> StreamBatch {
    serde_json::from_value(lambda_batch_json(records)).expect("a DynamoDB stream event")
}

/// The same batch as the JSON payload the runtime API hands the function.
pub fn lambda_batch_json(
    records: &[closeloop_dynamodb::stream::StreamRecord],
) -> serde_json::Value {
    let records: Vec<serde_json::Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let image = |i: &Option<HashMap<String, AttributeValue>>| {
                i.clone()
                    .map(|m| serde_json::to_value(serde_dynamo::Item::from(m)).unwrap())
                    .unwrap_or(json!({}))
            };
            let (pk, sk) = r.key();
            json!({
                "eventID": format!("e{i}"),
                "eventName": r.operation.as_str(),
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-north-1",
                "eventSourceARN": "arn:aws:dynamodb:eu-north-1:000000000000:table/t/stream/2026",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1795000000.0,
                    "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
                    "NewImage": image(&r.new_image),
                    "OldImage": image(&r.old_image),
                    "SequenceNumber": format!("{:021}", i + 1),
                    "SizeBytes": 100,
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            })
        })
        .collect();
    json!({ "Records": records })
}

/// SMS the local SNS endpoint (moto) holds for a phone number.
pub async fn sms_to(phone: &str) -> Vec<serde_json::Value> {
    let data: serde_json::Value =
        reqwest::get(format!("{}/moto-api/data.json", std::env::var("SNS_ENDPOINT").unwrap())).await.unwrap().json().await.unwrap();
    data["sns"]["SMS"].as_array().cloned().unwrap_or_default().into_iter().filter(|m| m["phone_number"] == phone).collect()
}

/// An SQS client for moto's server at `SQS_ENDPOINT`.
pub fn sqs() -> aws_sdk_sqs::Client {
    closeloop_lambdas::chunk_queue(&config("unused")).client().clone()
}

/// A fresh queue on moto's SQS; its URL.
pub async fn create_queue(name: &str) -> String {
    let out = sqs().create_queue().queue_name(format!("{name}-{}", std::process::id())).send().await.unwrap();
    out.queue_url.unwrap()
}

/// Every message waiting on the queue (received, not deleted): (message id, body).
pub async fn receive_all(url: &str) -> Vec<(String, String)> {
    let mut messages = Vec::new();
    loop {
        let out = sqs().receive_message().queue_url(url).max_number_of_messages(10).visibility_timeout(600).send().await.unwrap();
        let batch = out.messages.unwrap_or_default();
        if batch.is_empty() {
            return messages;
        }
        messages.extend(batch.into_iter().map(|m| (m.message_id.unwrap_or_default(), m.body.unwrap_or_default())));
    }
}

/// The event SQS gives `launch_chunk` for these messages.
pub fn sqs_event(messages: &[(String, String)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": format!("r-{id}"), "body": body, "attributes": {}, "messageAttributes": {},
                   "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-north-1:000000000000:launch-chunks",
                   "awsRegion": "eu-north-1"})
        })
        .collect();
    json!({ "Records": records })
}

/// The signing secret the webhook receiver verifies with.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `tests/webhooks/receiver.py`, which verifies every delivery with the official Standard
/// Webhooks library, and its port; stopped by its PID when dropped.
pub struct Receiver(pub std::process::Child, pub u16);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn receiver() -> anyhow::Result<Receiver> {
    use anyhow::Context;
    use std::io::BufRead;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/webhooks/receiver.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("python3 for the receiver")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("the receiver's stdout")?).read_line(&mut line)?;
    let port = line.trim().parse().with_context(|| format!("the receiver printed {line:?}: is standardwebhooks installed (scripts/setup-tests)?"))?;
    Ok(Receiver(child, port))
}
