//! `scripts/bench-edge`: the Worker's size, wrangler's time to first 200, and page-view and
//! answer latency under workerd against DynamoDB Local, each beside /healthz in the same Worker
//! as the floor. Prints figures; asserts only that requests succeed.

#[path = "support/worker_harness.rs"]
mod harness;

use std::time::{Duration, Instant};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn timed<F, Fut>(n: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await;
        samples.push(t.elapsed());
    }
    (percentile(&mut samples, 0.5), percentile(&mut samples, 0.99))
}

#[tokio::main]
async fn main() {
    let wasm = harness::repo().join("edge/build/index_bg.wasm");
    let bytes = std::fs::read(&wasm).expect("edge/build/index_bg.wasm: run scripts/build-edge first");
    let mut gzip = std::process::Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Feed gzip from another thread: writing 3 MB before reading its output would deadlock.
    let mut stdin = gzip.stdin.take().unwrap();
    let input = bytes.clone();
    let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let gzipped = gzip.wait_with_output().unwrap().stdout.len();
    feeder.join().unwrap().unwrap();
    println!("closeloop edge benchmarks");
    println!(
        "Worker WASM: {} bytes raw, {} bytes gzipped ({:.0} % of the 1 MiB ceiling; Cloudflare free plan: 3 MB)",
        bytes.len(),
        gzipped,
        100.0 * gzipped as f64 / (1024.0 * 1024.0)
    );

    let table = format!("closeloop-bench-{}", std::process::id());
    let mut starts = Vec::new();
    let mut wrangler = None;
    for _ in 0..3 {
        drop(wrangler.take());
        let w = tokio::task::spawn_blocking({
            let table = table.clone();
            move || harness::start_wrangler(&table, None)
        })
        .await
        .unwrap();
        starts.push(w.started_in);
        wrangler = Some(w);
    }
    let wrangler = wrangler.unwrap();
    println!("wrangler dev --local, spawn to first 200 on /healthz: median of 3 = {:.0} ms", ms(percentile(&mut starts, 0.5)));

    let seeded = harness::seed(&table, &wrangler.base, 50).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = wrangler.base.clone();
    // Warm-up: the isolate builds its DynamoDB client on the first request.
    for (_, token) in seeded.tokens.iter().take(5) {
        http.get(format!("{base}/s/{token}")).send().await.unwrap();
    }
    let n = 300;
    let (floor50, floor99) = timed(n, |_| {
        let r = http.get(format!("{base}/healthz")).send();
        async move { assert_eq!(r.await.unwrap().status(), 200) }
    })
    .await;
    let tokens = seeded.tokens.clone();
    let (view50, view99) = timed(n, |i| {
        let r = http.get(format!("{base}/s/{}", tokens[i % tokens.len()].1)).send();
        async move { assert_eq!(r.await.unwrap().status(), 200) }
    })
    .await;
    let (answer50, answer99) = timed(n, |i| {
        let body = [("score", (i % 11).to_string()), ("comment", format!("bench {i}"))];
        let r = http.post(format!("{base}/s/{}", tokens[i % tokens.len()].1)).form(&body).send();
        async move { assert_eq!(r.await.unwrap().status(), 303) }
    })
    .await;
    println!("latency under workerd against DynamoDB Local, {n} sequential requests (p50 / p99):");
    println!("  /healthz (static floor)  {:.2} / {:.2} ms", ms(floor50), ms(floor99));
    println!(
        "  page view                {:.2} / {:.2} ms   ratio to floor {:.1}x / {:.1}x",
        ms(view50),
        ms(view99),
        ms(view50) / ms(floor50),
        ms(view99) / ms(floor99)
    );
    println!(
        "  answer (POST + 303)      {:.2} / {:.2} ms   ratio to floor {:.1}x / {:.1}x",
        ms(answer50),
        ms(answer99),
        ms(answer50) / ms(floor50),
        ms(answer99) / ms(floor99)
    );
}
