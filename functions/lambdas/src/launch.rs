//! The launch function's routes beyond the edge's: a campaign file, and a campaign launched from a
//! CSV export. They live only here, where a 10,000-row file fits the time and request limits;
//! the Worker serves the rest of the same router.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use closeloop_core::{Campaign, CampaignId};
use closeloop_edge::api::{authorised, error};
use closeloop_edge::AppState;
use closeloop_functions::launch::{launch, LaunchError};
use closeloop_functions::Services;

/// A CSV of some 50,000 contacts; a function URL takes at most 6 MB.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;

#[derive(Clone)]
struct LaunchState {
    edge: AppState,
    services: Services,
}

pub fn router(services: &Services, api_token: Option<&str>) -> Router {
    let edge = AppState::new(services, api_token);
    let campaigns = Router::new()
        .route("/api/v1/campaigns/{id}", put(put_campaign))
        .route("/api/v1/campaigns/{id}/launch", post(launch_csv))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(LaunchState { edge: edge.clone(), services: services.clone() });
    closeloop_edge::router(edge).merge(campaigns)
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
    match state.services.store.put_campaign(&campaign).await {
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
        Err(LaunchError::Function(e)) => {
            tracing::error!(error = %e, "launch failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; invitations already created stay, retry later")
        }
    }
}
