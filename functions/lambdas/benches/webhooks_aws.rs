//! Webhook latency on the AWS path against the stand-ins: from an answer's write to its
//! `response.created` arriving, verified, at a receiver. Each answer goes the way it goes on AWS:
//! DynamoDB Local's stream (read as Lambda would be handed it), `on_answer` (its reaction queues
//! the delivery; the delivery's insert is forwarded to moto's SQS), then `deliver_webhooks`'s
//! handler with the SQS batch. The handlers run in process; the stream and queue are polled as
//! soon as the previous step returns, so the figures leave out Lambda's own polling intervals.
//! Prints the median, p90, p99 and max; asserts nothing about time.
//!
//!   ./scripts/with-services cargo bench -p closeloop-lambdas --bench webhooks_aws [-- N]

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_lambda_events::event::sqs::SqsEvent;
use closeloop_core::ports::Store;
use closeloop_core::webhooks::AddressPolicy;
use closeloop_dynamodb::stream::{local_streams_client, read_all, StreamTail};
use closeloop_functions::launch;
use closeloop_lambdas::{on_answer, webhook_queue, webhooks};

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{config, create_queue, lambda_batch, receive_all, receiver, sqs_event, world};

const SECRET: &str = support::WEBHOOK_SECRET;

async fn received(port: u16) -> Result<usize> {
    let all: Vec<serde_json::Value> = reqwest::get(format!("http://127.0.0.1:{port}/received")).await?.json().await?;
    anyhow::ensure!(all.iter().all(|r| r["verified"] == true), "a delivery did not verify: {all:?}");
    Ok(all.len())
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).map(|a| a.parse()).transpose().context("N must be a number")?.unwrap_or(50);
    let (services, store, table) = world("webhooks-bench").await;
    let mut config = config(&table);
    let url = create_queue("webhooks-bench").await;
    config.webhook_queue_url = Some(url.clone());
    let queue = webhook_queue(&config);
    let receiver = receiver()?;
    let marker = format!("whb{}", std::process::id());
    let campaign = closeloop_core::Campaign::from_toml(&format!(
        "id = \"{marker}\"\nname = \"Hooks\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{port}/ok\"\nsecret = \"{SECRET}\"\nevents = [\"response.created\"]\n",
        port = receiver.1
    ))?;
    let contacts: String = std::iter::once("email,first_name".to_owned()).chain((0..n).map(|i| format!("p{i}.{marker}@example.com,P{i}"))).collect::<Vec<_>>().join("\n");
    launch::launch(&services, &campaign, contacts.as_bytes()).await?;
    let rows = store.campaign_rows(&campaign.id).await?;
    anyhow::ensure!(rows.len() == n, "{} invitations for {n} contacts", rows.len());
    let streams = local_streams_client()?;
    // The launch's own events first; then the stream is read from where it stands, as Lambda's
    // poller reads it, so each answer's reads hold only its own records.
    on_answer::handle_with_webhooks(&services, &queue, lambda_batch(&read_all(&store, &streams).await?), None).await?;
    let mut tail = StreamTail::from_now(&store, &streams).await?;
    let sender = closeloop_webhooks::HttpWebhookSender::new(AddressPolicy::Local, Duration::from_secs(5))?;
    let mut latencies = Vec::with_capacity(n);
    for (i, row) in rows.iter().enumerate() {
        let started = Instant::now();
        let (answer, event, counters) = closeloop_core::contract::answer(&row.invitation, 9, 1, services.clock.now());
        store.record_answer(&answer, &event, &counters).await?;
        let deadline = started + Duration::from_secs(30);
        while received(receiver.1).await? < i + 1 {
            anyhow::ensure!(Instant::now() < deadline, "answer {i}: no webhook within 30 s");
            let records = tail.read(&streams).await?;
            if !records.is_empty() {
                on_answer::handle_with_webhooks(&services, &queue, lambda_batch(&records), None).await?;
            }
            let messages = receive_all(&url).await;
            if !messages.is_empty() {
                let event: SqsEvent = serde_json::from_value(sqs_event(&messages))?;
                let out = webhooks::handle(&services, &sender, &queue, event).await;
                anyhow::ensure!(out.batch_item_failures.is_empty(), "a delivery failed");
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "answer → webhook received, AWS path on the stand-ins, {n} answers one after another: median {}, p90 {}, p99 {}, max {}",
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.9)),
        ms(quantile(&latencies, 0.99)),
        ms(*latencies.last().context("no answers")?)
    );
    Ok(())
}
