//! The respondent's pages. A GET never records an answer (mail scanners open links); a POST does.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use closeloop_core::model::{Answer, Event, EventKind, Invitation, Locale, SuppressionReason, Token};
use closeloop_core::ports::StoreError;
use closeloop_views::render::{self, Notice, SurveyPage};
use closeloop_core::survey::{parse_answer_form, FormError, SurveyForm};
use closeloop_core::webhooks::WebhookEvent;
use closeloop_core::{rules, Campaign, Score};

use crate::AppState;

/// The language for pages that know no invitation: the browser's, if we have it.
fn browser_locale(headers: &HeaderMap) -> Locale {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(|part| Locale::parse(part.split(';').next().unwrap_or(""))))
        .unwrap_or(Locale::En)
}

fn notice(status: StatusCode, locale: Locale, kind: Notice) -> Response {
    match render::notice_page(locale, kind) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            log_error!("notice page failed to render: {e}");
            (status, "closeloop").into_response()
        }
    }
}

fn render_failed(e: render::RenderError) -> Response {
    log_error!("render failed: {e}");
    notice(StatusCode::INTERNAL_SERVER_ERROR, Locale::En, Notice::Unavailable)
}

fn store_failed(e: StoreError, locale: Locale) -> Response {
    log_error!("store failed: {e}");
    notice(StatusCode::SERVICE_UNAVAILABLE, locale, Notice::Unavailable)
}

pub async fn not_found(headers: HeaderMap) -> Response {
    notice(StatusCode::NOT_FOUND, browser_locale(&headers), Notice::NotFound)
}

/// The invitation a token names, or the response to give instead.
async fn invitation_of(state: &AppState, token: &str, headers: &HeaderMap) -> Result<Invitation, Response> {
    let locale = browser_locale(headers);
    let missing = || notice(StatusCode::NOT_FOUND, locale, Notice::NotFound);
    let token = Token::parse(token).ok_or_else(missing)?;
    state.services.store.invitation_by_token(&token).await.map_err(|e| store_failed(e, locale))?.ok_or_else(missing)
}

/// Finds the invitation and its campaign, or the response to give instead. Unknown and
/// malformed tokens get the same page: nothing tells them apart.
async fn lookup(state: &AppState, token: &str, headers: &HeaderMap) -> Result<(Invitation, Campaign), Response> {
    let invitation = invitation_of(state, token, headers).await?;
    let now = state.services.clock.now();
    if let Some(campaign) = state.campaigns.get(&invitation.campaign_id, now) {
        return Ok((invitation, campaign));
    }
    let missing = notice(StatusCode::NOT_FOUND, invitation.locale, Notice::NotFound);
    let campaign = state.services.store.campaign(&invitation.campaign_id).await.map_err(|e| store_failed(e, invitation.locale))?.ok_or(missing)?;
    state.campaigns.put(&campaign, now);
    Ok((invitation, campaign))
}

/// `lookup` plus the invitation's answer, for the survey page and its answers: two round trips
/// at most (the token query, then the answer, or the campaign, its state and the answer in one
/// batch when the campaign is not cached). A campaign ended more than `CLOSED_AFTER_DAYS` ago
/// gets the "this survey has closed" page instead.
async fn lookup_with_answer(state: &AppState, token: &str, headers: &HeaderMap) -> Result<(Invitation, Campaign, Option<Answer>), Response> {
    let invitation = invitation_of(state, token, headers).await?;
    campaign_for_survey(state, invitation, true).await.map_err(|(_, response)| response)
}

/// `lookup_with_answer` for the pages a closed survey keeps: the thank-you page, review links.
async fn lookup_open_or_closed(state: &AppState, token: &str, headers: &HeaderMap) -> Result<(Invitation, Campaign, Option<Answer>), Response> {
    let invitation = invitation_of(state, token, headers).await?;
    campaign_for_survey(state, invitation, false).await.map_err(|(_, response)| response)
}

/// The campaign and the answer of an invitation, refusing a closed survey when `refuse_closed`.
/// A failure comes back with the invitation, so the answer path can still show its 503 page
/// without a second token query.
async fn campaign_for_survey(state: &AppState, invitation: Invitation, refuse_closed: bool) -> Result<(Invitation, Campaign, Option<Answer>), (Option<Invitation>, Response)> {
    let store = &state.services.store;
    let now = state.services.clock.now();
    let locale = invitation.locale;
    let closed = |status: Option<&closeloop_core::lifecycle::CampaignStatus>| refuse_closed && status.is_some_and(|s| s.closed_at(now));
    if let Some((campaign, status)) = state.campaigns.get_with_status(&invitation.campaign_id, now) {
        if closed(status.as_ref()) {
            return Err((None, notice(StatusCode::GONE, locale, Notice::Closed)));
        }
        return match store.answer(&invitation.id).await {
            Ok(answer) => Ok((invitation, campaign, answer)),
            Err(e) => Err((Some(invitation), store_failed(e, locale))),
        };
    }
    let reads = match store.campaign_and_answer(&invitation.campaign_id, &invitation.id).await {
        Ok(reads) => reads,
        Err(e) => return Err((Some(invitation), store_failed(e, locale))),
    };
    let Some(campaign) = reads.campaign else {
        return Err((None, notice(StatusCode::NOT_FOUND, locale, Notice::NotFound)));
    };
    state.campaigns.put_with_status(&campaign, reads.status.as_ref(), now);
    if closed(reads.status.as_ref()) {
        return Err((None, notice(StatusCode::GONE, locale, Notice::Closed)));
    }
    Ok((invitation, campaign, reads.answer))
}

fn form_from(answer: &Answer) -> SurveyForm {
    SurveyForm {
        score: Some(answer.score.value()),
        comment: answer.comment.clone().unwrap_or_default(),
        contact_ok: answer.contact_ok,
        ratings: answer.ratings.clone(),
    }
}

fn page(
    status: StatusCode,
    campaign: &Campaign,
    invitation: &Invitation,
    form: &SurveyForm,
    existing: Option<&Answer>,
    errors: &[FormError],
    unavailable: bool,
) -> Response {
    match render::survey_page(&SurveyPage { campaign, invitation, form, existing, errors, unavailable }) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => render_failed(e),
    }
}

pub async fn survey(State(state): State<AppState>, method: Method, Path(token): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let (invitation, campaign, existing) = match lookup_with_answer(&state, &token, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut form = existing.as_ref().map(form_from).unwrap_or_default();
    // The score from an email link preselects; it is recorded only when the person submits.
    let linked_score = query
        .as_deref()
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "score")
        .and_then(|(_, v)| Score::parse(&v).ok());
    if let Some(score) = linked_score {
        form.score = Some(score.value());
    }
    // A HEAD is a link checker or a scanner, never a person: it counts as nothing.
    if method != Method::HEAD {
        record_open(&state, &invitation).await;
    }
    page(StatusCode::OK, &campaign, &invitation, &form, existing.as_ref(), &[], false)
}

/// The funnel's "opened" step, once per invitation. Failing to count it must not cost the
/// respondent the page or the answer.
async fn record_open(state: &AppState, invitation: &Invitation) {
    if invitation.opened_at.is_none() {
        if let Err(e) = state.services.store.record_open(&invitation.id, &invitation.campaign_id, state.services.clock.now()).await {
            log_error!("recording the page open failed: {e}");
        }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")))
}

/// How often a conflicting concurrent edit is retried before giving up with 503. On the Worker:
/// the token query and the campaign, state and answer in one batch (2), the write (1), and a
/// retry's read and write (2): five subrequests at most.
const ANSWER_ATTEMPTS: u32 = 2;

pub async fn answer(State(state): State<AppState>, Path(token): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    // The answer read with the campaign serves the first attempt: a closed survey is refused
    // before anything is written, and no extra subrequest is spent on it.
    let invitation = match invitation_of(&state, &token, &headers).await {
        Ok(invitation) => invitation,
        Err(response) => return response,
    };
    let (invitation, campaign, mut read_before) = match campaign_for_survey(&state, invitation, true).await {
        Ok((invitation, campaign, answer)) => (invitation, campaign, Some(answer)),
        // The store failed: with the campaign alone (one read, or none when cached) the page
        // still keeps what the person typed while it says nothing was saved. Nothing is
        // written: the state was not read, so a closed survey must not take it.
        Err((Some(invitation), failed)) => {
            let cached = state.campaigns.get(&invitation.campaign_id, state.services.clock.now());
            let campaign = match cached {
                Some(campaign) => Some(campaign),
                None => state.services.store.campaign(&invitation.campaign_id).await.ok().flatten(),
            };
            let Some(campaign) = campaign else { return failed };
            let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            let (form, _) = parse_answer_form(&pairs, &campaign);
            return page(StatusCode::SERVICE_UNAVAILABLE, &campaign, &invitation, &form, None, &[], true);
        }
        Err((None, response)) => return response,
    };
    if !is_form(&headers) {
        return notice(StatusCode::BAD_REQUEST, invitation.locale, Notice::BadRequest);
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let (form, parsed) = parse_answer_form(&pairs, &campaign);
    let store = &state.services.store;
    let valid = match parsed {
        Ok(valid) => valid,
        Err(errors) => {
            let existing = read_before.flatten();
            return page(StatusCode::BAD_REQUEST, &campaign, &invitation, &form, existing.as_ref(), &errors, false);
        }
    };
    // Whoever answers has opened: a page cached by the browser, or an open lost to a failed
    // write, still counts.
    record_open(&state, &invitation).await;
    for _ in 0..ANSWER_ATTEMPTS {
        let now = state.services.clock.now();
        // A retry after a conflicting edit reads the answer that won.
        let previous = match read_before.take() {
            Some(previous) => previous,
            None => match store.answer(&invitation.id).await {
                Ok(previous) => previous,
                Err(e) => {
                    log_error!("reading the answer failed: {e}");
                    return page(StatusCode::SERVICE_UNAVAILABLE, &campaign, &invitation, &form, None, &[], true);
                }
            },
        };
        let version = previous.as_ref().map_or(1, |p| p.version + 1);
        let answer = Answer {
            invitation_id: invitation.id.clone(),
            campaign_id: campaign.id.clone(),
            score: valid.score,
            comment: valid.comment.clone(),
            contact_ok: valid.contact_ok,
            ratings: valid.ratings.clone(),
            version,
            first_answered_at: previous.as_ref().map_or(now, |p| p.first_answered_at),
            answered_at: now,
        };
        let counters = closeloop_core::counters::answer_deltas(&campaign, &invitation, previous.as_ref(), &answer);
        let event = Event {
            id: format!("answer-{}-{version}", invitation.id),
            at: now,
            kind: EventKind::AnswerRecorded {
                invitation_id: invitation.id.clone(),
                version,
                previous_score: previous.map(|p| p.score),
                score: valid.score,
            },
        };
        match store.record_answer(&answer, &event, &counters).await {
            Ok(()) => return Redirect::to(&format!("/s/{}/thanks", invitation.token.as_str())).into_response(),
            Err(StoreError::Conflict) => continue,
            Err(e) => {
                log_error!("recording the answer failed: {e}");
                return page(StatusCode::SERVICE_UNAVAILABLE, &campaign, &invitation, &form, None, &[], true);
            }
        }
    }
    page(StatusCode::SERVICE_UNAVAILABLE, &campaign, &invitation, &form, None, &[], true)
}

pub async fn thanks(State(state): State<AppState>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    // A closed survey still thanks and still links to review sites: only new answers stop.
    let (invitation, campaign, answer) = match lookup_open_or_closed(&state, &token, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match answer {
        Some(answer) => match render::thanks_page(&campaign, &invitation, &answer, &state.services.links) {
            Ok(html) => Html(html).into_response(),
            Err(e) => render_failed(e),
        },
        None => Redirect::to(&format!("/s/{}", invitation.token.as_str())).into_response(),
    }
}

/// The review link in mail and on the thank-you page. It records nothing: it sends the browser
/// on to `/r/{token}/{site}/go`, which records the click. A mail scanner that fetches links
/// without following redirects, or with HEAD, never counts as a click.
pub async fn review_link(Path((token, site)): Path<(String, String)>, headers: HeaderMap) -> Response {
    // Only a well-formed token and site key go back into a Location header; they need no
    // encoding, and anything else (dot segments, a 5,000-character token) is the same 404.
    let site_key = site.len() <= 32 && !site.is_empty() && site.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    match Token::parse(&token) {
        Some(token) if site_key => (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/r/{}/{site}/go", token.as_str()))]).into_response(),
        _ => notice(StatusCode::NOT_FOUND, browser_locale(&headers), Notice::NotFound),
    }
}

/// Records the click (a GET only; every click is kept, so the first click's time is too) and
/// redirects, only to the configured site and only for an answer that may see it, so the link
/// is neither an open redirect nor a way around the audience setting.
pub async fn review_redirect(State(state): State<AppState>, method: Method, Path((token, site)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let (invitation, campaign, answer) = match lookup_open_or_closed(&state, &token, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let not_found = || notice(StatusCode::NOT_FOUND, invitation.locale, Notice::NotFound);
    let Some(site) = campaign.review_site(&site) else {
        return not_found();
    };
    let store = &state.services.store;
    let Some(answer) = answer else {
        return Redirect::to(&format!("/s/{}", invitation.token.as_str())).into_response();
    };
    if !rules::may_invite_to_review(site, &answer) {
        return not_found();
    }
    // A lost click record must not cost the review: log it and redirect anyway.
    if method == Method::GET {
        if let Err(e) = store.record_review_click(&invitation.id, &site.key, state.services.clock.now()).await {
            log_error!("review click not recorded: {e}");
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, site.url.as_str())]).into_response()
}

/// A tracked link of a "you said, we did" update: like a review link, a first hop that
/// counts nothing (a scanner's HEAD or prefetch), then `/go`.
pub async fn update_link(Path((token, update, link)): Path<(String, String, String)>, headers: HeaderMap) -> Response {
    let index = link.parse::<u8>().ok().filter(|i| usize::from(*i) < closeloop_core::updates::MAX_LINKS);
    match (Token::parse(&token), closeloop_core::updates::UpdateId::parse(&update), index) {
        (Some(token), Ok(update), Some(index)) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/n/{}/{update}/{index}/go", token.as_str()))]).into_response()
        }
        _ => notice(StatusCode::NOT_FOUND, browser_locale(&headers), Notice::NotFound),
    }
}

/// Counts the person's first click on this link of the update (a GET only), then redirects to
/// the address the update's text holds: only an address written in that update, so the link is
/// no open redirect. A lost count never costs the visit.
pub async fn update_redirect(State(state): State<AppState>, method: Method, Path((token, update, link)): Path<(String, String, String)>, headers: HeaderMap) -> Response {
    let (invitation, campaign) = match lookup(&state, &token, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let not_found = || notice(StatusCode::NOT_FOUND, invitation.locale, Notice::NotFound);
    let (Ok(update_id), Ok(index)) = (closeloop_core::updates::UpdateId::parse(&update), link.parse::<usize>()) else {
        return not_found();
    };
    let store = &state.services.store;
    let update = match store.update(&campaign.id, &update_id).await {
        Ok(Some(update)) => update,
        Ok(None) => return not_found(),
        Err(e) => return store_failed(e, invitation.locale),
    };
    let Some(target) = update.links.get(index) else {
        return not_found();
    };
    if method == Method::GET {
        let click = closeloop_core::changes::Change::update_link_clicked(&invitation.id, &campaign.id, &update.id, index, state.services.clock.now());
        if let Err(e) = store.append_event(&click).await {
            log_error!("update click not recorded: {e}");
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, closeloop_core::updates::location_of(target))]).into_response()
}

pub async fn unsubscribe_form(State(state): State<AppState>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let (invitation, campaign) = match lookup(&state, &token, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match render::unsubscribe_page(&campaign, &invitation, false) {
        Ok(html) => Html(html).into_response(),
        Err(e) => render_failed(e),
    }
}

/// The confirm button and RFC 8058 one-click both land here; the body does not matter.
pub async fn unsubscribe(State(state): State<AppState>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let (invitation, campaign) = match lookup(&state, &token, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = state.services.clock.now();
    for key in invitation.contact.keys() {
        if let Err(e) = state.services.store.suppress(&key, SuppressionReason::Unsubscribed, now).await {
            return store_failed(e, invitation.locale);
        }
    }
    // Straight from here (one write per endpoint that wants it, none without webhooks): not every
    // store writes a suppression event for the reactions to see. Its id is the same however
    // often the person clicks, or wherever it is queued from.
    let source = format!("unsubscribed-{}", invitation.id);
    if let Err(e) =
        closeloop_functions::webhooks::queue(state.services.store.as_ref(), &campaign, WebhookEvent::ContactUnsubscribed, &source, &invitation.id, 0, now).await
    {
        log_error!("queueing the contact.unsubscribed webhook failed: {e}");
    }
    match render::unsubscribe_page(&campaign, &invitation, true) {
        Ok(html) => Html(html).into_response(),
        Err(e) => render_failed(e),
    }
}
