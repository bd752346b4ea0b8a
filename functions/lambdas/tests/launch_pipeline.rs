//! The AWS launch pipeline against DynamoDB Local and moto's SQS and S3: a file posted to the
//! API becomes a job and chunks on the queue; `launch_chunk` writes them. A chunk delivered
//! twice invites nobody twice, a launch stopped midway and resumed invites everyone exactly
//! once, and a file uploaded through a presigned URL launches itself from its S3 event.

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use closeloop_core::launch::{LaunchJob, LaunchState};
use closeloop_core::ports::Store;
use closeloop_lambdas::launch::{router_with_pipeline, Pipeline};
use closeloop_lambdas::{chunk_queue, launch_pipeline, s3_client};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

mod support;
use support::{config, create_queue, receive_all, sqs_event, world};

const TOKEN: &str = "pipeline-api-token";

fn contacts(marker: &str, rows: usize) -> String {
    let mut csv = String::from("email;first_name;store\n");
    for i in 0..rows {
        csv.push_str(&format!("p{i}.{marker}@example.se;P{i};Store {}\n", i % 7));
    }
    csv.push_str("not-an-address;Bad;\n");
    csv
}

async fn call(router: &axum::Router, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/csv")
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_posted_file_is_written_chunk_by_chunk_and_a_chunk_delivered_twice_invites_nobody_twice() {
    let (services, store, table) = world("pipeline").await;
    let mut config = config(&table);
    config.launch_queue_url = Some(create_queue("launch-chunks").await);
    let queue = chunk_queue(&config);
    let router = router_with_pipeline(&services, Some(TOKEN), Some(Pipeline { queue, s3: s3_client(&config), upload_bucket: None }));
    let campaign = closeloop_core::Campaign::from_toml(include_str!("../../../demo/campaign.toml")).unwrap();
    store.put_campaign(&campaign).await.unwrap();
    let marker = format!("pl{}", std::process::id());
    let csv = contacts(&marker, 1200);

    // The dry run first: what the launch will do, with nothing written.
    let (status, report) = call(&router, "POST", &format!("/api/v1/campaigns/{}/launches/dry-run", campaign.id), csv.clone().into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let launch_id = report["launch_id"].as_str().unwrap().to_owned();
    assert_eq!(report["bad_rows"][0]["reason"].as_str().map(|r| r.contains("not-an-address")), Some(true), "{report}");
    assert!(report["launched_before"].is_null(), "{report}");
    assert_eq!((report["rows"].as_u64(), report["would_invite"].as_u64()), (Some(1201), Some(1200)), "{report}");
    assert!(store.launch(&closeloop_core::launch::LaunchId::parse(&launch_id).unwrap()).await.unwrap().is_none(), "a dry run writes no job");
    let (status, body) = call(&router, "POST", &format!("/api/v1/campaigns/{}/launches/dry-run?sheet=Contacts", campaign.id), csv.clone().into_bytes()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("sheet_not_supported")), "the launch reads the first sheet: {body}");
    let (status, _) = call(&router, "POST", "/api/v1/campaigns/no-such-campaign/launches/dry-run", csv.clone().into_bytes()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, job) = call(&router, "POST", &format!("/api/v1/campaigns/{}/launches", campaign.id), csv.clone().into_bytes()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["id"].as_str(), Some(launch_id.as_str()), "the launch is the one the dry run described");
    let job: LaunchJob = serde_json::from_value(job).unwrap();
    assert_eq!((job.state, job.total_rows, job.chunks, job.bad_row_count), (LaunchState::Running, 1200, 3, 1));
    let messages = receive_all(config.launch_queue_url.as_deref().unwrap()).await;
    assert_eq!(messages.len(), 3, "one message per chunk");

    // The first chunk only: the launch is stopped midway.
    let first: SqsEvent = serde_json::from_value(sqs_event(&messages[..1])).unwrap();
    assert!(launch_pipeline::handle_chunks(&services, first).await.batch_item_failures.is_empty());
    let (_, midway) = call(&router, "GET", &format!("/api/v1/launches/{}", job.id), Vec::new()).await;
    assert_eq!((midway["state"].as_str(), midway["chunks_done"].as_u64(), midway["invited"].as_u64()), (Some("running"), Some(1), Some(500)));

    // Resumed: the same file again queues its chunks again; then every chunk arrives, the
    // first one twice.
    let (status, again) = call(&router, "POST", &format!("/api/v1/campaigns/{}/launches", campaign.id), csv.clone().into_bytes()).await;
    assert_eq!((status, again["id"].as_str()), (StatusCode::ACCEPTED, Some(job.id.as_str())), "the same file is the same launch");
    let requeued = receive_all(config.launch_queue_url.as_deref().unwrap()).await;
    assert_eq!(requeued.len(), 3);
    let mut all = messages.clone();
    all.extend(requeued);
    let event: SqsEvent = serde_json::from_value(sqs_event(&all)).unwrap();
    assert!(launch_pipeline::handle_chunks(&services, event).await.batch_item_failures.is_empty());

    let (_, done) = call(&router, "GET", &format!("/api/v1/launches/{}", job.id), Vec::new()).await;
    let done: LaunchJob = serde_json::from_value(done).unwrap();
    assert_eq!((done.state, done.rows_processed, done.invited, done.chunks_done), (LaunchState::Done, 1200, 1200, 3), "{done:?}");
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    let mine = rows.iter().filter(|r| r.invitation.contact.email.as_ref().is_some_and(|e| e.as_str().contains(&marker))).count();
    assert_eq!(mine, 1200, "everyone invited exactly once");
    let events = store.pending_events(100_000).await.unwrap();
    let invitation_events = events.iter().filter(|e| e.id.starts_with(&format!("invitation-{}-", job.id))).count();
    assert_eq!(invitation_events, 1200, "one invitation event each: nobody is sent two invitations");
    store.settle_counters().await.unwrap();
    assert_eq!(store.campaign_counters(&campaign.id).await.unwrap().invited, 1200);

    // Finished: the same file once more is answered with the finished job and queues nothing.
    let (_, finished) = call(&router, "POST", &format!("/api/v1/campaigns/{}/launches", campaign.id), csv.into_bytes()).await;
    assert_eq!(finished["state"], "done");
    assert!(receive_all(config.launch_queue_url.as_deref().unwrap()).await.is_empty());

    // Bad input: a file that is no CSV, an unknown launch, no token.
    let (status, body) = call(&router, "POST", &format!("/api/v1/campaigns/{}/launches", campaign.id), b"\xff\xfe\x00".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = call(&router, "GET", "/api/v1/launches/..%2F..%2Fetc", Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_file_uploaded_through_a_presigned_url_launches_itself() {
    let (services, store, table) = world("upload").await;
    let mut config = config(&table);
    config.launch_queue_url = Some(create_queue("upload-chunks").await);
    let bucket = format!("closeloop-uploads-{}", std::process::id());
    let s3 = s3_client(&config);
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuNorth1)
        .build();
    s3.create_bucket().bucket(&bucket).create_bucket_configuration(location).send().await.map_err(aws_sdk_s3::error::DisplayErrorContext).unwrap();
    let queue = chunk_queue(&config);
    let router =
        router_with_pipeline(&services, Some(TOKEN), Some(Pipeline { queue: queue.clone(), s3: s3.clone(), upload_bucket: Some(bucket.clone()) }));
    let campaign = closeloop_core::Campaign::from_toml(include_str!("../../../demo/campaign.toml")).unwrap();
    store.put_campaign(&campaign).await.unwrap();

    let (status, upload) = call(&router, "POST", &format!("/api/v1/campaigns/{}/uploads", campaign.id), Vec::new()).await;
    assert_eq!(status, StatusCode::CREATED, "{upload}");
    let marker = format!("up{}", std::process::id());
    let put = reqwest::Client::new()
        .put(upload["url"].as_str().unwrap())
        .header("content-type", "text/csv")
        .body(contacts(&marker, 40))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());

    let key = upload["key"].as_str().unwrap();
    let event: S3Event = serde_json::from_value(json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-north-1",
        "eventTime": "2026-12-01T10:00:00.000Z", "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "launch", "bucket": {"name": bucket, "ownerIdentity": {"principalId": "x"}, "arn": "arn:aws:s3:::b"},
               "object": {"key": key, "size": 1, "eTag": "e", "sequencer": "1"}}}]}))
    .unwrap();
    launch_pipeline::handle_upload(&services, &queue, &s3, event).await.unwrap();
    let messages = receive_all(config.launch_queue_url.as_deref().unwrap()).await;
    assert_eq!(messages.len(), 1);
    let chunks: SqsEvent = serde_json::from_value(sqs_event(&messages)).unwrap();
    assert!(launch_pipeline::handle_chunks(&services, chunks).await.batch_item_failures.is_empty());
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.invitation.contact.email.as_ref().is_some_and(|e| e.as_str().contains(&marker))).count(), 40);
    let (status, _) = call(&router, "POST", "/api/v1/campaigns/no-such-campaign/uploads", Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_chunk_that_can_never_be_written_fails_its_launch_and_says_why() {
    let (services, store, table) = world("failed-chunk").await;
    let mut config = config(&table);
    config.launch_queue_url = Some(create_queue("failed-chunks").await);
    let queue = chunk_queue(&config);
    let router = router_with_pipeline(&services, Some(TOKEN), Some(Pipeline { queue, s3: s3_client(&config), upload_bucket: None }));
    let campaign = closeloop_core::Campaign::from_toml(include_str!("../../../demo/campaign.toml")).unwrap();
    store.put_campaign(&campaign).await.unwrap();
    let marker = format!("fc{}", std::process::id());
    let (status, job) = call(&router, "POST", &format!("/api/v1/campaigns/{}/launches", campaign.id), contacts(&marker, 1200).into_bytes()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job: LaunchJob = serde_json::from_value(job).unwrap();
    let mut messages = receive_all(config.launch_queue_url.as_deref().unwrap()).await;
    assert_eq!(messages.len(), 3);
    // The second chunk names a campaign that is not there: no delivery can ever write it.
    let mut broken: Value = serde_json::from_str(&messages[1].1).unwrap();
    broken["campaign"] = json!("gone");
    messages[1].1 = broken.to_string();
    let event: SqsEvent = serde_json::from_value(sqs_event(&messages)).unwrap();
    let response = launch_pipeline::handle_chunks(&services, event).await;
    assert!(response.batch_item_failures.is_empty(), "a chunk that can never succeed is not retried");
    let (_, failed) = call(&router, "GET", &format!("/api/v1/launches/{}", job.id), Vec::new()).await;
    assert_eq!((failed["state"].as_str(), failed["chunks_done"].as_u64(), failed["invited"].as_u64()), (Some("failed"), Some(3), Some(700)), "{failed}");
    assert_eq!(failed["failures"][0]["chunk"].as_u64(), Some(1));
    assert!(failed["failures"][0]["reason"].as_str().unwrap().contains("campaign gone"), "{failed}");
}

/// A signed-in browser on the launch function's dashboard: its cookie and CSRF token.
async fn sign_in(router: &axum::Router, token: &str) -> (String, String) {
    let form = router.clone().oneshot(Request::get("/admin/sign-in").body(Body::empty()).unwrap()).await.unwrap();
    let cookie_of = |response: &axum::response::Response, name: &str| {
        response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| v.strip_prefix(&format!("{name}=")).map(|r| r.split(';').next().unwrap_or("").to_owned())).unwrap()
    };
    let nonce = cookie_of(&form, "cl_signin");
    let csrf_in = |html: &str| html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let csrf = csrf_in(&String::from_utf8(form.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap());
    let signed_in = router
        .clone()
        .oneshot(
            Request::post("/admin/sign-in")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", format!("cl_signin={nonce}"))
                .body(Body::from(format!("csrf={csrf}&token={token}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = format!("cl_session={}", cookie_of(&signed_in, "cl_session"));
    let page = router.clone().oneshot(Request::get("/admin").header("cookie", &cookie).body(Body::empty()).unwrap()).await.unwrap();
    let csrf = csrf_in(&String::from_utf8(page.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap());
    (cookie, csrf)
}

#[tokio::test]
async fn an_upload_in_the_launch_functions_dashboard_is_staged_in_s3_dry_run_then_queued_and_unstaged() {
    use closeloop_core::accounts::{Accounts, Role};
    let (services, store, table) = world("dashboard-upload").await;
    let mut config = config(&table);
    config.launch_queue_url = Some(create_queue("dashboard-chunks").await);
    let bucket = format!("closeloop-staged-{}", std::process::id());
    let s3 = s3_client(&config);
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder().location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuNorth1).build();
    s3.create_bucket().bucket(&bucket).create_bucket_configuration(location).send().await.map_err(aws_sdk_s3::error::DisplayErrorContext).unwrap();
    config.accounts = Accounts::default().with("Eda Editor", Role::Editor, None, "an editor token of some length");
    config.session_secret = Some("a session secret for the launch function".into());
    let pipeline = Pipeline { queue: chunk_queue(&config), s3: s3.clone(), upload_bucket: Some(bucket.clone()) };
    let router = closeloop_lambdas::launch::router_with_dashboard(&services, Some(TOKEN), Some(pipeline), config.dashboard().unwrap(), None);
    let campaign = closeloop_core::Campaign::from_toml(include_str!("../../../demo/campaign.toml")).unwrap();
    store.put_campaign(&campaign).await.unwrap();
    let (cookie, csrf) = sign_in(&router, "an editor token of some length").await;

    let marker = format!("db{}", std::process::id());
    let file = contacts(&marker, 30);
    let boundary = "closeloop-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n\r\n{file}\r\n--{boundary}--\r\n"
    );
    let staged = router
        .clone()
        .oneshot(
            Request::post(format!("/admin/c/{}/upload", campaign.id))
                .header("content-type", format!("multipart/form-data; boundary={boundary}"))
                .header("cookie", &cookie)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(staged.status(), StatusCode::SEE_OTHER);
    let at = staged.headers()["location"].to_str().unwrap().to_owned();
    let launch_id = at.rsplit('/').next().unwrap().to_owned();
    let key = format!("staged/{}/{launch_id}", campaign.id);
    assert!(s3.get_object().bucket(&bucket).key(&key).send().await.is_ok(), "staged in the bucket");
    let page = router.clone().oneshot(Request::get(&at).header("cookie", &cookie).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = String::from_utf8(page.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(page.contains("id=\"would-invite\">30<") && page.contains("id=\"bad-row-count\">1<"), "{page}");
    assert!(receive_all(config.launch_queue_url.as_deref().unwrap()).await.is_empty(), "a dry run queues nothing");

    let launched = router
        .clone()
        .oneshot(
            Request::post(format!("{at}/launch"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", &cookie)
                .body(Body::from(format!("csrf={csrf}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(launched.status(), StatusCode::SEE_OTHER);
    let messages = receive_all(config.launch_queue_url.as_deref().unwrap()).await;
    assert_eq!(messages.len(), 1, "one chunk on the queue");
    let chunks: SqsEvent = serde_json::from_value(sqs_event(&messages)).unwrap();
    assert!(launch_pipeline::handle_chunks(&services, chunks).await.batch_item_failures.is_empty());
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.invitation.contact.email.as_ref().is_some_and(|e| e.as_str().contains(&marker))).count(), 30);
    assert!(s3.get_object().bucket(&bucket).key(&key).send().await.is_err(), "unstaged once queued");
}

#[tokio::test]
async fn a_campaign_file_put_through_the_api_goes_in_the_change_log_once_per_change() {
    let (services, store, _) = world("api-put").await;
    let router = router_with_pipeline(&services, Some(TOKEN), None);
    let file = include_str!("../../../demo/campaign.toml").replace("demo-service-visit", &format!("api-put-{}", std::process::id()));
    let campaign = closeloop_core::Campaign::from_toml(&file).unwrap();
    let path = format!("/api/v1/campaigns/{}", campaign.id);
    assert_eq!(call(&router, "PUT", &path, file.clone().into_bytes()).await.0, StatusCode::OK);
    assert_eq!(call(&router, "PUT", &path, file.clone().into_bytes()).await.0, StatusCode::OK, "the same file again");
    let changed = file.replace("throttle_days = 90", "throttle_days = 60");
    assert_eq!(call(&router, "PUT", &path, changed.into_bytes()).await.0, StatusCode::OK);
    let log = store.campaign_changes(&campaign.id, 10).await.unwrap();
    let kinds: Vec<(u32, &str)> = log.iter().map(|c| (c.revision, c.by.as_str())).collect();
    assert_eq!(kinds, [(2, "the API"), (1, "the API")], "an unchanged file adds no entry");
    assert_eq!(log[1].kind, closeloop_core::changelog::ChangeKind::Imported);
    assert_eq!(log[0].settings.iter().map(|s| s.setting.as_str()).collect::<Vec<_>>(), ["throttle_days"]);
    assert_eq!(store.campaign(&campaign.id).await.unwrap().unwrap().throttle_days, 60);
}
