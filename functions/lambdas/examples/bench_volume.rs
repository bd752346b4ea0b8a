//! Volume figures on the AWS path against DynamoDB Local and the local SES endpoint, measured
//! side by side in one run (`scripts/bench-volume`). Prints; asserts nothing about time.
//!   - launch: invitations written as `launch_chunk` writes them (chunks of rows, several
//!     invitations per transaction, chunks in parallel) against one transaction per invitation
//!     (the previous store), then the stream consumer's counting of the same invitations;
//!   - on_answer: a 100-record stream batch handled one invitation after another against
//!     `CONCURRENCY` at a time.
//! `VOLUME_AWS_SIZES=2000,10000` sets the launch sizes (default 10000).

use std::time::Instant;

use closeloop_core::contract;
use closeloop_core::model::Invitation;
use closeloop_core::ports::{CreateOutcome, Store};
use closeloop_dynamodb::stream::{local_streams_client, read_all};
use closeloop_lambdas::on_answer;

#[path = "../tests/support/mod.rs"]
mod support;

const CHUNK_ROWS: usize = 500;
const PARALLEL_CHUNKS: usize = 8;
/// The previous store wrote one transaction per invitation, one after another: measured on a
/// sample of this many, then scaled.
const SEQUENTIAL_SAMPLE: usize = 300;

/// `salt` keeps phone numbers apart between campaigns, so none throttles another.
fn invitations(campaign: &closeloop_core::Campaign, salt: u32, size: usize, at: closeloop_core::Timestamp) -> Vec<Invitation> {
    (0..size)
        .map(|i| {
            let mut inv = contract::invitation(campaign, (i % 250) as u8, at);
            inv.id = closeloop_core::InvitationId(format!("{}-{i}", campaign.id));
            inv.contact.email = Some(closeloop_core::Email::parse(&format!("p{i}@{}.example", campaign.id)).unwrap());
            inv.contact.phone = Some(closeloop_core::Phone::parse(&format!("+467{salt}{i:07}")).unwrap());
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            bytes[8..12].copy_from_slice(&(campaign.id.as_str().len() as u32).to_le_bytes());
            bytes[12] = campaign.id.as_str().as_bytes()[campaign.id.as_str().len() - 1];
            inv.token = closeloop_core::Token::from_random_bytes(bytes);
            inv
        })
        .collect()
}

#[tokio::main]
async fn main() {
    println!("closeloop volume benchmarks, AWS path (DynamoDB Local, local SES)");
    let sizes: Vec<usize> = std::env::var("VOLUME_AWS_SIZES")
        .unwrap_or_else(|_| "10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let (services, store, _) = support::world("volume").await;
    let at = services.clock.now();

    // The previous write path: one transaction per invitation, in sequence.
    let sample_campaign = contract::campaign("vol-sequential");
    store.put_campaign(&sample_campaign).await.unwrap();
    let sample = invitations(&sample_campaign, 0, SEQUENTIAL_SAMPLE, at);
    let t = Instant::now();
    for inv in &sample {
        store.create_invitations(std::slice::from_ref(inv), at.minus_days(90)).await.unwrap();
    }
    let sequential_rate = SEQUENTIAL_SAMPLE as f64 / t.elapsed().as_secs_f64();
    println!("launch, one transaction per invitation, sequential ({SEQUENTIAL_SAMPLE} invitations): {sequential_rate:.0} invitations/s");

    for (n, size) in sizes.into_iter().enumerate() {
        let campaign = contract::campaign(&format!("vol-{size}"));
        store.put_campaign(&campaign).await.unwrap();
        let all = invitations(&campaign, n as u32 + 1, size, at);
        let chunks: Vec<&[Invitation]> = all.chunks(CHUNK_ROWS).collect();
        let t = Instant::now();
        let mut created = 0;
        for wave in chunks.chunks(PARALLEL_CHUNKS) {
            let results = futures_util::future::join_all(wave.iter().map(|chunk| store.create_invitations(chunk, at.minus_days(90)))).await;
            for outcomes in results {
                created += outcomes.unwrap().iter().filter(|o| **o == CreateOutcome::Created).count();
            }
        }
        let write = t.elapsed();
        let t = Instant::now();
        let counted = store.settle_counters().await.unwrap();
        let count = t.elapsed();
        let counters = store.campaign_counters(&campaign.id).await.unwrap();
        assert_eq!((created, counters.invited as usize), (size, size), "every invitation created and counted once (counted now: {counted})");
        let rate = size as f64 / write.as_secs_f64();
        println!(
            "launch of {size} contacts: {} chunks of {CHUNK_ROWS}, {PARALLEL_CHUNKS} in parallel: written in {:.2} s = {rate:.0} invitations/s ({:.1}x the sequential path); counted by the stream consumer's fold in {:.2} s ({counted} events); wall {:.2} s",
            chunks.len(),
            write.as_secs_f64(),
            rate / sequential_rate,
            count.as_secs_f64(),
            (write + count).as_secs_f64(),
        );
    }

    // 100 answer events in one stream batch, handled sequentially and concurrently.
    let mut timings = Vec::new();
    for (label, concurrency) in [("one invitation at a time", 1), ("concurrent", on_answer::CONCURRENCY)] {
        let campaign = contract::campaign(&format!("vol-batch-{concurrency}"));
        store.put_campaign(&campaign).await.unwrap();
        let invs: Vec<Invitation> = (0..100u8).map(|n| contract::invitation(&campaign, n, at)).collect();
        store.create_invitations(&invs, at.minus_days(90)).await.unwrap();
        store.settle_counters().await.unwrap();
        for pending in store.pending_events(100_000).await.unwrap() {
            store.complete_event(&pending.id, at).await.unwrap();
        }
        for (i, inv) in invs.iter().enumerate() {
            let (answer, event, deltas) = contract::answer(inv, (i % 11) as u8, 1, at);
            store.record_answer(&answer, &event, &deltas).await.unwrap();
        }
        let records = read_all(&store, &local_streams_client().unwrap()).await.unwrap();
        let prefix = format!("answer-{}-", campaign.id);
        let batch = support::lambda_batch(&records.into_iter().filter(|r| r.event().is_some_and(|e| e.id.starts_with(&prefix))).collect::<Vec<_>>());
        assert_eq!(batch.records.len(), 100);
        let t = Instant::now();
        let response = on_answer::handle_with_concurrency(&services, batch, None, concurrency).await.unwrap();
        let elapsed = t.elapsed();
        assert!(response.batch_item_failures.is_empty());
        println!("on_answer, 100-record batch ({label}, concurrency {concurrency}): {:.0} ms", elapsed.as_secs_f64() * 1000.0);
        timings.push(elapsed);
    }
    println!("on_answer speed-up, concurrent against one at a time: {:.1}x", timings[0].as_secs_f64() / timings[1].as_secs_f64());
}
