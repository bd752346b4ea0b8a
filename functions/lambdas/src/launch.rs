//! The launch function's routes beyond the edge's: a campaign file, and a campaign launched from a
//! CSV export. They live only here, where a 10,000-row file fits the time and request limits;
//! the Worker serves the rest of the same router.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use closeloop_core::{Campaign, CampaignId};
use closeloop_edge::api::{authorised, error};
use closeloop_edge::AppState;
use closeloop_core::launch::LaunchId;
use closeloop_functions::launch::{dry_run, launch, ContactsFile, LaunchError};

use crate::launch_pipeline::{start_launch, ChunkQueue, StartError};
use closeloop_functions::Services;

/// A CSV of some 50,000 contacts; a function URL takes at most 6 MB.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;

/// A presigned upload URL stays valid this long.
pub const UPLOAD_URL_SECONDS: u64 = 15 * 60;

/// What the launch routes need beyond the store: the chunk queue, and S3 for large files.
#[derive(Clone)]
pub struct Pipeline {
    pub queue: ChunkQueue,
    pub s3: aws_sdk_s3::Client,
    pub upload_bucket: Option<String>,
}

#[derive(Clone)]
struct LaunchState {
    edge: AppState,
    services: Services,
    pipeline: Option<Pipeline>,
}

pub fn router(services: &Services, api_token: Option<&str>) -> Router {
    router_with_pipeline(services, api_token, None)
}

pub fn router_with_pipeline(services: &Services, api_token: Option<&str>, pipeline: Option<Pipeline>) -> Router {
    router_with_dashboard(services, api_token, pipeline, None, None)
}

/// The launch function's router with the dashboard switched on (`admin`): the same pages as the
/// Worker's, plus contact uploads, which only this function takes (staged in the uploads bucket,
/// launched through the chunk queue).
/// `people_api_token` enables the people endpoints (`PEOPLE_API_TOKEN`): here a person with more
/// invitations than a Worker request can read is exported and erased in one call.
pub fn router_with_dashboard(
    services: &Services,
    api_token: Option<&str>,
    pipeline: Option<Pipeline>,
    admin: Option<closeloop_edge::admin::AdminConfig>,
    people_api_token: Option<&str>,
) -> Router {
    // Behind a function URL the client's address is the last one AWS puts in X-Forwarded-For.
    let mut edge = AppState::new(services, api_token).with_client_ip_header("x-forwarded-for").with_people_api_token(people_api_token);
    if let Some(admin) = admin {
        edge = edge.with_admin(admin);
    }
    if let Some((p, bucket)) = pipeline.as_ref().and_then(|p| p.upload_bucket.clone().map(|b| (p, b))) {
        let launcher = crate::dashboard_launcher::S3Launcher { services: services.clone(), queue: p.queue.clone(), s3: p.s3.clone(), bucket };
        edge = edge.with_launcher(std::sync::Arc::new(launcher));
    }
    let campaigns = Router::new()
        .route("/api/v1/campaigns/{id}", put(put_campaign))
        .route("/api/v1/campaigns/{id}/launch", post(launch_csv))
        .route("/api/v1/campaigns/{id}/launches", post(queue_launch))
        .route("/api/v1/campaigns/{id}/launches/dry-run", post(dry_run_launch))
        .route("/api/v1/campaigns/{id}/uploads", post(presign_upload))
        .route("/api/v1/launches/{id}", get(launch_status))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(LaunchState { edge: edge.clone(), services: services.clone(), pipeline });
    closeloop_edge::router(edge).merge(campaigns)
}

async fn campaign_or_response(state: &LaunchState, id: &CampaignId) -> Result<Campaign, Response> {
    match state.services.store.campaign(id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, "unknown_campaign", format!("no campaign {:?}; PUT its file first", id.as_str()))),
        Err(e) => {
            tracing::error!(error = %e, "reading the campaign failed");
            Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later"))
        }
    }
}

fn pipeline_or_response(state: &LaunchState) -> Result<&Pipeline, Response> {
    state.pipeline.as_ref().ok_or_else(|| error(StatusCode::NOT_IMPLEMENTED, "no_pipeline", "this deployment has no launch queue"))
}

/// `POST /api/v1/campaigns/{id}/launches` with a CSV export (at most 5 MiB) as the body: the
/// file is validated, its job stored and its chunks queued; 202 with the job, whose progress
/// `GET /api/v1/launches/{id}` shows. The same file again answers with the same job.
async fn queue_launch(State(state): State<LaunchState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorised(&state.edge, &headers) {
        return response;
    }
    let (id, pipeline) = match (campaign_id(&id), pipeline_or_response(&state)) {
        (Ok(id), Ok(p)) => (id, p.clone()),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let campaign = match campaign_or_response(&state, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match start_launch(&state.services, &pipeline.queue, &campaign, "api", &body).await {
        Ok(job) => {
            let location = format!("/api/v1/launches/{}", job.id);
            (StatusCode::ACCEPTED, [(axum::http::header::LOCATION, location)], Json(job)).into_response()
        }
        Err(StartError::Launch(LaunchError::Import(e))) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_csv", e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "queueing the launch failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the launch could not be queued; send the same file again to resume it")
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct DryRunQuery {
    sheet: Option<String>,
}

/// `POST /api/v1/campaigns/{id}/launches/dry-run` with the same body as a launch (CSV or
/// `.xlsx`, its first sheet, as the launch reads it): 200 with what the launch would do (encoding,
/// column mapping, rows, would invite, skipped by reason, every bad row), writing nothing.
async fn dry_run_launch(
    State(state): State<LaunchState>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<DryRunQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = authorised(&state.edge, &headers) {
        return response;
    }
    let id = match campaign_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let campaign = match campaign_or_response(&state, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // The launch route reads a workbook's first sheet: a dry run of another sheet would
    // describe a launch that does not happen.
    if query.sheet.is_some() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sheet_not_supported",
            "the API launches a workbook's first sheet only; move the sheet first, or use closeloop launch --sheet",
        );
    }
    let file = ContactsFile::new(&body);
    match dry_run(&state.services, &campaign, &file).await {
        Ok(report) => (StatusCode::OK, Json(report)).into_response(),
        Err(LaunchError::Import(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_contacts", e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "the dry run failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
        }
    }
}

/// `POST /api/v1/campaigns/{id}/uploads`: a presigned S3 PUT for a file too large to send
/// inline; the upload starts the launch by itself.
async fn presign_upload(State(state): State<LaunchState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(response) = authorised(&state.edge, &headers) {
        return response;
    }
    let (id, pipeline) = match (campaign_id(&id), pipeline_or_response(&state)) {
        (Ok(id), Ok(p)) => (id, p.clone()),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Err(r) = campaign_or_response(&state, &id).await {
        return r;
    }
    let Some(bucket) = pipeline.upload_bucket.as_deref() else {
        return error(StatusCode::NOT_IMPLEMENTED, "no_upload_bucket", "this deployment has no upload bucket");
    };
    let key = crate::launch_pipeline::upload_key(&id);
    let presigning = match aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(UPLOAD_URL_SECONDS)) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "presigning config");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "presign_failed", "the upload URL could not be made");
        }
    };
    match pipeline.s3.put_object().bucket(bucket).key(&key).content_type("text/csv").presigned(presigning).await {
        Ok(request) => (
            StatusCode::CREATED,
            Json(serde_json::json!({
                "method": "PUT",
                "url": request.uri(),
                "headers": { "content-type": "text/csv" },
                "key": key,
                "expires_in_seconds": UPLOAD_URL_SECONDS,
            })),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %aws_sdk_s3::error::DisplayErrorContext(&e), "presigning the upload failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the upload URL could not be made; retry later")
        }
    }
}

/// `GET /api/v1/launches/{id}`: the job with its progress.
async fn launch_status(State(state): State<LaunchState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(response) = authorised(&state.edge, &headers) {
        return response;
    }
    let Ok(id) = LaunchId::parse(&id) else {
        return error(StatusCode::NOT_FOUND, "unknown_launch", "no such launch");
    };
    match state.services.store.launch(&id).await {
        Ok(Some(job)) => (StatusCode::OK, Json(job)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_launch", "no such launch"),
        Err(e) => {
            tracing::error!(error = %e, "reading the launch failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
        }
    }
}

fn campaign_id(raw: &str) -> Result<CampaignId, Response> {
    CampaignId::parse(raw).map_err(|e| error(StatusCode::NOT_FOUND, "unknown_campaign", e.to_string()))
}

/// `PUT /api/v1/campaigns/{id}` with the campaign file (TOML) as the body.
async fn put_campaign(State(state): State<LaunchState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorised(&state.edge, &headers) {
        return response;
    }
    let id = match campaign_id(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "the campaign file must be UTF-8 TOML");
    };
    let campaign = match Campaign::from_toml(text) {
        Ok(c) if c.id == id => c,
        Ok(c) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", format!("the file's id {:?} is not {:?}", c.id.as_str(), id.as_str())),
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_campaign", e.to_string()),
    };
    // As it always did, the PUT replaces the campaign; now also in its change log ("the API").
    match closeloop_functions::launch::save_campaign_file(&state.services, &campaign, "the API").await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "campaign_id": campaign.id }))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "storing the campaign failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
        }
    }
}


/// `POST /api/v1/campaigns/{id}/launch` with a CSV export as the body: the same report as
/// `closeloop launch`, bad rows by line.
async fn launch_csv(State(state): State<LaunchState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorised(&state.edge, &headers) {
        return response;
    }
    let id = match campaign_id(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let campaign = match state.services.store.campaign(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => return error(StatusCode::NOT_FOUND, "unknown_campaign", format!("no campaign {:?}; PUT its file first", id.as_str())),
        Err(e) => {
            tracing::error!(error = %e, "reading the campaign failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later");
        }
    };
    match launch(&state.services, &campaign, &body).await {
        Ok(summary) => (StatusCode::OK, Json(summary)).into_response(),
        Err(LaunchError::Import(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_csv", e.to_string()),
        Err(e @ (LaunchError::Function(_) | LaunchError::Staging(_) | LaunchError::Queue(_))) => {
            tracing::error!(error = %e, "launch failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; invitations already created stay, retry later")
        }
    }
}
