//! A burst of answers to one campaign through the Worker under workerd (`wrangler dev --local`)
//! against DynamoDB Local: 500 people answer at the same moment. Prints errors, answers stored
//! against answers posted, whether the counters (after the stream consumer's fold) equal the
//! rows, and the latency p50 / p99. Asserts nothing about time. `BURST=200` for a smaller burst.

#[path = "support/worker_harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use closeloop_core::counters::{Aggregates, View};
use closeloop_core::ports::Store;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let burst: usize = std::env::var("BURST").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let table = format!("closeloop-burst-{}", std::process::id());
    let wrangler = tokio::task::spawn_blocking({
        let table = table.clone();
        move || harness::start_wrangler(&table, None)
    })
    .await
    .unwrap();
    let seeded = harness::seed(&table, &wrangler.base, burst).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(burst).build().unwrap();
    let base = wrangler.base.clone();
    // Warm-up: the isolate builds its DynamoDB client (and caches the campaign) on a first request.
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{base}/s/{}", seeded.tokens[0].1)).send().await.unwrap().status(), 200);

    let started = Instant::now();
    let posts = seeded.tokens.iter().enumerate().map(|(i, (_, token))| {
        let http = http.clone();
        let url = format!("{base}/s/{token}");
        async move {
            let t = Instant::now();
            let body = [("score", (i % 11).to_string()), ("comment", format!("burst {i}: priset"))];
            let status = http.post(url).form(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
            (status, t.elapsed())
        }
    });
    let results = futures_util::future::join_all(posts).await;
    let wall = started.elapsed();
    let errors = results.iter().filter(|(status, _)| *status != 303).count();
    let mut latencies: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];

    let rows = seeded.store.campaign_rows(&seeded.campaign.id).await.unwrap();
    let stored = rows.iter().filter(|r| r.answer.is_some()).count();
    let t = Instant::now();
    let counted = seeded.store.settle_counters().await.unwrap();
    let fold = t.elapsed();
    let counters = Aggregates::from_buckets(seeded.store.counter_buckets(&seeded.campaign.id, &View::Everything.prefixes()).await.unwrap());
    let agree = counters == Aggregates::from_rows(&seeded.campaign, &rows);
    println!("closeloop answer burst: {burst} concurrent answers to one campaign through the Worker (workerd, DynamoDB Local)");
    println!("  errors: {errors}; answers stored {stored} of {burst} posted; wall {:.2} s", wall.as_secs_f64());
    println!("  latency p50 / p99: {:.1} / {:.1} ms (max {:.1} ms)", ms(p(0.5)), ms(p(0.99)), ms(p(1.0)));
    println!("  counters after the stream consumer's fold ({counted} events in {:.2} s) equal the rows: {agree}", fold.as_secs_f64());
    drop(wrangler);
}
