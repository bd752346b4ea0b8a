//! Webhooks on the AWS path, against DynamoDB Local and moto's SQS: the stream handler forwards
//! the deliveries an answer queued to the webhook queue, `deliver_webhooks` posts them to a
//! receiver that verifies them with the official Standard Webhooks library, and a failed attempt
//! comes back on the queue with its back-off as the delay.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use closeloop_core::ports::Store;
use closeloop_core::webhooks::{AddressPolicy, DeliveryState};
use closeloop_dynamodb::stream::{local_streams_client, read_all};
use closeloop_functions::launch;
use closeloop_lambdas::{on_answer, webhook_queue, webhooks};
use serde_json::Value;

mod support;
use support::{config, create_queue, lambda_batch, receive_all, sqs_event, world};

const SECRET: &str = support::WEBHOOK_SECRET;

fn receiver() -> support::Receiver {
    support::receiver().expect("the webhook receiver")
}

async fn received(port: u16) -> Vec<Value> {
    reqwest::get(format!("http://127.0.0.1:{port}/received")).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn an_answer_on_aws_goes_stream_then_queue_then_delivery_function_and_a_failure_returns_with_its_delay() {
    let (services, store, table) = world("webhooks").await;
    let mut config = config(&table);
    config.webhook_queue_url = Some(create_queue("webhooks").await);
    let queue = webhook_queue(&config);
    let url = config.webhook_queue_url.clone().unwrap();
    let receiver = receiver();
    let marker = format!("wh{}", std::process::id());
    let campaign = closeloop_core::Campaign::from_toml(&format!(
        "id = \"{marker}\"\nname = \"Hooks\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{port}/ok\"\nsecret = \"{SECRET}\"\nevents = [\"response.created\"]\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{port}/fail-twice\"\nsecret = \"{SECRET}\"\nevents = [\"response.created\"]\n",
        port = receiver.1
    ))
    .unwrap();
    launch::launch(&services, &campaign, format!("email,first_name\nkim.{marker}@example.com,Kim\n").as_bytes()).await.unwrap();
    let row = store.campaign_rows(&campaign.id).await.unwrap().remove(0);
    let answered = Instant::now();
    let (answer, event, counters) = closeloop_core::contract::answer(&row.invitation, 9, 1, services.clock.now());
    store.record_answer(&answer, &event, &counters).await.unwrap();

    // The stream: first the answer's event (its reaction queues the deliveries in the table),
    // then the deliveries' own inserts, which the handler forwards to the queue.
    let streams = local_streams_client().unwrap();
    on_answer::handle_with_webhooks(&services, &queue, lambda_batch(&read_all(&store, &streams).await.unwrap()), None).await.unwrap();
    let response = on_answer::handle_with_webhooks(&services, &queue, lambda_batch(&read_all(&store, &streams).await.unwrap()), None).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let mut messages = receive_all(&url).await;
    assert_eq!(messages.len(), 2, "one message per delivery: {messages:?}");

    // The delivery function, as SQS invokes it, until the queue is empty.
    let sender = closeloop_webhooks::HttpWebhookSender::new(AddressPolicy::Local, Duration::from_secs(5)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first_latency = None;
    while !messages.is_empty() && Instant::now() < deadline {
        let event: SqsEvent = serde_json::from_value(sqs_event(&messages)).unwrap();
        let out = webhooks::handle(&services, &sender, &queue, event).await;
        assert!(out.batch_item_failures.is_empty());
        if first_latency.is_none() && received(receiver.1).await.iter().any(|r| r["path"] == "/ok") {
            first_latency = Some(answered.elapsed());
        }
        // A failed attempt's retry is on the queue with its back-off (5 s, then 60 s) as the
        // delay. The clock here is real: the test makes the retries due now and lets the
        // schedule's sweep queue them at once, as it does for back-offs longer than SQS's delay.
        let mut retries = 0;
        for d in store.webhook_log(&campaign.id, 10).await.unwrap() {
            if d.state == DeliveryState::Pending {
                let mut due = d.clone();
                due.next_at = Some(services.clock.now());
                store.save_webhook(&due).await.unwrap();
                retries += 1;
            }
        }
        if retries == 0 {
            break;
        }
        assert_eq!(webhooks::sweep(&services, &queue, services.clock.now()).await.unwrap(), retries);
        messages = receive_all(&url).await;
    }
    let got = received(receiver.1).await;
    assert!(got.iter().all(|r| r["verified"] == true), "{got:#?}");
    assert_eq!(got.iter().filter(|r| r["path"] == "/ok").count(), 1);
    let retried: Vec<&Value> = got.iter().filter(|r| r["path"] == "/fail-twice").collect();
    assert!(retried.len() >= 3, "two failures, then the delivery: {retried:#?}");
    assert!(retried.iter().all(|r| r["id"] == retried[0]["id"]), "one webhook-id across attempts");
    let log = store.webhook_log(&campaign.id, 10).await.unwrap();
    assert!(log.iter().all(|d| d.state == DeliveryState::Delivered), "{log:#?}");
    assert_eq!(webhooks::sweep(&services, &queue, services.clock.now().plus_hours(48)).await.unwrap(), 0, "nothing left to sweep");
    // The retries the handler queued with their delays find their deliveries done: nothing more.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let late = receive_all(&url).await;
    if !late.is_empty() {
        let event: SqsEvent = serde_json::from_value(sqs_event(&late)).unwrap();
        webhooks::handle(&services, &sender, &queue, event).await;
    }
    assert_eq!(received(receiver.1).await.len(), got.len(), "a late retry of a delivered delivery posts nothing");
    println!("answer → first webhook received on the AWS path (stand-ins, handlers in process): {:?}", first_latency.unwrap());
}

#[tokio::test]
async fn a_secret_named_in_parameter_store_signs_on_aws_and_a_missing_one_fails_the_attempt_by_name() {
    use aws_sdk_ssm::types::ParameterType;
    let (services, store, table) = world("webhooks-ssm").await;
    let mut config = config(&table);
    config.webhook_queue_url = Some(create_queue("webhooks-ssm").await);
    let queue = webhook_queue(&config);
    let url = config.webhook_queue_url.clone().unwrap();
    let receiver = receiver();
    let marker = format!("whs{}", std::process::id());
    let ssm = closeloop_lambdas::config::ssm_client(Some(&std::env::var("SNS_ENDPOINT").expect("run through scripts/with-services")), "eu-north-1", config.credentials.clone());
    let name = format!("/closeloop/webhooks/{marker}");
    // With the newline a value put from a file ends with.
    ssm.put_parameter().name(&name).value(format!("{SECRET}\n")).r#type(ParameterType::SecureString).overwrite(true).send().await.unwrap();
    // The campaign (and so the table) holds only the parameter's name.
    let campaign = closeloop_core::Campaign::from_toml(&format!(
        "id = \"{marker}\"\nname = \"Hooks\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{port}/ok\"\nsecret = \"ssm:{name}\"\nevents = [\"response.created\"]\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{port}/other\"\nsecret = \"ssm:{name}-missing\"\nevents = [\"response.created\"]\n",
        port = receiver.1
    ))
    .unwrap();
    assert!(!campaign.to_toml().unwrap().contains("whsec_"), "no secret in the campaign file");
    launch::launch(&services, &campaign, format!("email,first_name\nkim.{marker}@example.com,Kim\n").as_bytes()).await.unwrap();
    let row = store.campaign_rows(&campaign.id).await.unwrap().remove(0);
    let (answer, event, counters) = closeloop_core::contract::answer(&row.invitation, 9, 1, services.clock.now());
    store.record_answer(&answer, &event, &counters).await.unwrap();
    let streams = local_streams_client().unwrap();
    on_answer::handle_with_webhooks(&services, &queue, lambda_batch(&read_all(&store, &streams).await.unwrap()), None).await.unwrap();
    on_answer::handle_with_webhooks(&services, &queue, lambda_batch(&read_all(&store, &streams).await.unwrap()), None).await.unwrap();
    let messages = receive_all(&url).await;
    assert_eq!(messages.len(), 2);
    let http = closeloop_webhooks::HttpWebhookSender::new(AddressPolicy::Local, Duration::from_secs(5)).unwrap();
    let sender = webhooks::ParameterStoreSender::new(http, ssm);
    let event: SqsEvent = serde_json::from_value(sqs_event(&messages)).unwrap();
    assert!(webhooks::handle(&services, &sender, &queue, event).await.batch_item_failures.is_empty());
    let got = received(receiver.1).await;
    assert_eq!(got.len(), 1, "only the endpoint whose secret could be read was posted to: {got:#?}");
    assert_eq!((got[0]["path"].as_str(), got[0]["verified"].as_bool()), (Some("/ok"), Some(true)), "signed with the secret read from the parameter store");
    let log = store.webhook_log(&campaign.id, 10).await.unwrap();
    let failed = log.iter().find(|d| d.state == DeliveryState::Pending).expect("the other delivery waits for a retry");
    let error = failed.last.as_ref().and_then(|l| l.error.clone()).unwrap_or_default();
    assert!(error.contains(&format!("{name}-missing")) && error.contains("ParameterNotFound"), "{error}");
    assert!(!error.contains("whsec_"));
}
