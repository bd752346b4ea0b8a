//! "You said, we did": counting an update's audience, and sending it page by page, each person
//! once (their send key), counting toward the "not too often" rule (`Store::record_contact`).
//! Also the owner's personal follow-up when a case is closed.

use std::collections::HashSet;

use closeloop_core::campaign::Campaign;
use closeloop_core::model::{ContactKey, InvitationId};
use closeloop_core::ports::{MessageKind, RowCursor, RowQuery, SendError};
use closeloop_core::updates::{AudienceCount, AudienceCounter, CampaignUpdate, Exclusion, Selection, UpdateAudience};
use closeloop_views::render;

use crate::messages::{send_once, send_once_many, to_respondent, Outgoing};
use crate::{FunctionError, Services};

/// Rows read per page while counting or sending.
pub const PAGE: usize = 200;
/// Sent at once when an update is composed (within the stream handler's time on AWS); the
/// schedule sends the rest.
pub const SENT_PER_REQUEST: usize = 400;
/// Sent per schedule run, over every update that is still going out.
pub const SENT_PER_RUN: usize = 4000;
/// A campaign's newest updates the schedule looks at for one still going out.
pub const UPDATES_LOOKED_AT: usize = 100;

/// Of a page's rows, the unanswered invitations that never went out (held, waiting for their
/// send time, or cancelled through the API): nobody's audience, since they were never asked.
/// One read of their send claims.
async fn never_sent(store: &dyn closeloop_core::ports::Store, rows: &[closeloop_core::ports::InvitationRow]) -> Result<HashSet<InvitationId>, FunctionError> {
    let unanswered: Vec<&InvitationId> = rows.iter().filter(|r| r.answer.is_none() && r.invitation.erased_at.is_none()).map(|r| &r.invitation.id).collect();
    if unanswered.is_empty() {
        return Ok(HashSet::new());
    }
    let keys: Vec<String> = unanswered.iter().flat_map(|id| [format!("invitation:{id}"), format!("cancelled:{id}")]).collect();
    let claims = store.send_claims(&keys).await?;
    Ok(unanswered
        .into_iter()
        .zip(claims.chunks(2))
        .filter(|(_, claim)| claim.first().is_none_or(Option::is_none) || claim.get(1).is_some_and(Option::is_some))
        .map(|(id, _)| id.clone())
        .collect())
}

/// How many an audience reaches and leaves out, read from every row of the campaign, or from
/// the first `max_pages` pages (then `false`: the count is a lower bound). The Worker passes a
/// page limit: each page is a subrequest.
pub async fn count_audience(store: &dyn closeloop_core::ports::Store, campaign: &Campaign, audience: &UpdateAudience, max_pages: Option<usize>) -> Result<(AudienceCount, bool), FunctionError> {
    let mut counter = AudienceCounter::default();
    let mut after: Option<RowCursor> = None;
    let mut pages = 0;
    loop {
        let page = store.rows_page(RowQuery { after: after.as_ref(), ..RowQuery::campaign(&campaign.id, PAGE) }).await?;
        let unsent = if audience.non_respondents { never_sent(store, &page.rows).await? } else { HashSet::new() };
        for row in page.rows.iter().filter(|r| !unsent.contains(&r.invitation.id)) {
            counter.add(audience, campaign, row);
        }
        pages += 1;
        match page.next {
            None => return Ok((counter.count, true)),
            Some(next) if max_pages.is_some_and(|max| pages >= max) => {
                let _ = next;
                return Ok((counter.count, false));
            }
            Some(next) => after = Some(next),
        }
    }
}

/// Sends the next pages of an update until `budget` mails went or the campaign's rows end, and
/// saves where it stands after each page. Returns how many it sent now. Outside the campaign's
/// send window it sends nothing: the schedule comes back.
pub async fn send_update(services: &Services, campaign: &Campaign, update: &CampaignUpdate, budget: usize) -> Result<usize, FunctionError> {
    let now = services.clock.now();
    if update.is_finished() || !campaign.may_send_at(now) {
        return Ok(0);
    }
    let erasure = services.store.erasure_key().await?;
    let mut progress = update.progress.clone();
    let mut sent_now = 0;
    loop {
        let after = progress.cursor.as_deref().map(RowCursor::parse).transpose().map_err(|e| FunctionError::Missing(format!("the update's place in its campaign ({e})")))?;
        let page = services.store.rows_page(RowQuery { after: after.as_ref(), ..RowQuery::campaign(&campaign.id, PAGE) }).await?;
        let unsent = if update.audience.non_respondents { never_sent(services.store.as_ref(), &page.rows).await? } else { HashSet::new() };
        let rows: Vec<&closeloop_core::ports::InvitationRow> = page.rows.iter().filter(|r| !unsent.contains(&r.invitation.id)).collect();
        // The suppression list itself, not only the rows' marks: on AWS a fresh unsubscribe marks
        // its invitations only when the stream gets to it.
        let people: Vec<Vec<ContactKey>> = rows.iter().map(|r| r.invitation.contact.keys()).collect();
        let suppressed = services.store.are_suppressed(&people).await?;
        let mut keys_in_page = HashSet::new();
        let mut mails = Vec::new();
        let mut reached: Vec<Vec<ContactKey>> = Vec::new();
        for (row, suppressed_now) in rows.into_iter().zip(suppressed) {
            let selection = match update.audience.select(campaign, row) {
                Selection::Included(_) if suppressed_now => Selection::Excluded(Exclusion::Suppressed),
                other => other,
            };
            match selection {
                Selection::Outside => {}
                Selection::Excluded(why) => *progress.excluded.entry(why).or_default() += 1,
                Selection::Included(address) => {
                    let person = erasure.hash(&ContactKey::from_stored(format!("email:{address}")));
                    let key = update.send_key(person.as_str());
                    if !keys_in_page.insert(key.clone()) {
                        *progress.excluded.entry(Exclusion::AlreadyIncluded).or_default() += 1;
                        continue;
                    }
                    let rendered = render::update_mail(campaign, &row.invitation, update, &services.links)?;
                    let Some(mail) = to_respondent(MessageKind::Update, campaign, &row.invitation, rendered, services) else {
                        *progress.excluded.entry(Exclusion::NoEmail).or_default() += 1;
                        continue;
                    };
                    mails.push((key, Outgoing::Mail(mail)));
                    reached.push(row.invitation.contact.keys());
                }
            }
        }
        let outcomes = send_once_many(services, mails).await?;
        let mut contacted = Vec::new();
        let mut transient = None;
        for (outcome, keys) in outcomes.into_iter().zip(reached) {
            match outcome {
                Ok(true) => {
                    progress.sent += 1;
                    sent_now += 1;
                    contacted.extend(keys);
                }
                // Sent before: another invitation of the same person in an earlier page.
                Ok(false) => *progress.excluded.entry(Exclusion::AlreadyIncluded).or_default() += 1,
                Err(FunctionError::Send(SendError::Permanent(e))) => {
                    tracing::error!(campaign = %campaign.id, update = %update.id, error = %e, "an update was refused for good");
                    progress.failed += 1;
                }
                Err(e) => transient = Some(e),
            }
        }
        if !contacted.is_empty() {
            services.store.record_contact(&contacted, now).await?;
        }
        if let Some(e) = transient {
            // This page again next time: what went is claimed and is not sent twice.
            return Err(e);
        }
        progress.cursor = page.next.as_ref().map(|c| c.as_str().to_owned());
        if page.next.is_none() {
            progress.finished_at = Some(now);
        }
        services.store.save_update_progress(&campaign.id, &update.id, &progress).await?;
        if page.next.is_none() || sent_now >= budget {
            return Ok(sent_now);
        }
    }
}

/// What the schedule does: every update still going out, up to `SENT_PER_RUN` mails in all.
/// An update that fails is logged and left for the next run; the others go on.
pub async fn continue_updates(services: &Services) -> Result<usize, FunctionError> {
    let mut sent = 0;
    let statuses = crate::dispatch::CampaignCache::default();
    for campaign in services.store.campaigns().await? {
        // A paused campaign sends nothing to its contacts: its updates wait for the resume.
        if statuses.status(services, &campaign.id).await?.state_at(services.clock.now()) == closeloop_core::lifecycle::CampaignState::Paused {
            continue;
        }
        for update in services.store.updates(&campaign.id, UPDATES_LOOKED_AT).await? {
            if update.is_finished() || sent >= SENT_PER_RUN {
                continue;
            }
            match send_update(services, &campaign, &update, SENT_PER_RUN - sent).await {
                Ok(n) => sent += n,
                Err(e) => tracing::error!(campaign = %campaign.id, update = %update.id, error = %e, "sending an update failed; the next run goes on"),
            }
        }
    }
    Ok(sent)
}

/// The first pages of a freshly composed update (`UpdateRequested`).
pub async fn start_update(services: &Services, campaign: &Campaign, update_id: &closeloop_core::updates::UpdateId) -> Result<(), FunctionError> {
    let Some(update) = services.store.update(&campaign.id, update_id).await? else {
        return Err(FunctionError::Missing(format!("update {update_id}")));
    };
    let status = services.store.campaign_status(&campaign.id).await?.unwrap_or_default();
    if status.state_at(services.clock.now()) == closeloop_core::lifecycle::CampaignState::Paused {
        return Ok(());
    }
    send_update(services, campaign, &update, SENT_PER_REQUEST).await.map(|_| ())
}

/// The owner's follow-up written when closing the case, to the respondent, once
/// (`case_follow_up:{invitation}`): from the owner's name, replies to the owner. Nothing goes
/// to an erased, unsubscribed or SMS-only person.
pub async fn send_case_follow_up(services: &Services, campaign: &Campaign, id: &InvitationId) -> Result<bool, FunctionError> {
    let (Some(invitation), Some(case)) = (services.store.invitation(id).await?, services.store.case(id).await?) else {
        return Err(FunctionError::Missing(format!("the case of invitation {id}")));
    };
    let Some(message) = case.closed.as_ref().and_then(|c| c.follow_up.clone()) else { return Ok(false) };
    if case.is_erased() || invitation.erased_at.is_some() || services.store.is_suppressed(&invitation.contact.keys()).await? {
        return Ok(false);
    }
    let owner = case.owner_email.as_ref().or(campaign.manager_email.as_ref());
    let signer = owner
        .and_then(|o| campaign.owners.iter().find(|(_, email)| *email == o).map(|(name, _)| name.clone()))
        .unwrap_or_else(|| campaign.sender_name.clone());
    let rendered = render::case_follow_up_mail(campaign, &invitation, &message, &signer, &services.links)?;
    let Some(mut mail) = to_respondent(MessageKind::CaseFollowUp, campaign, &invitation, rendered, services) else { return Ok(false) };
    mail.from_name = signer;
    if let Some(owner) = owner {
        mail.headers.push(("Reply-To".to_owned(), owner.as_str().to_owned()));
    }
    send_once(services, &format!("case_follow_up:{id}"), Outgoing::Mail(mail)).await
}
