//! Chat messages: an alert (detractor follow-up or contact request) and the weekly digest, as
//! Slack Block Kit and as a Microsoft Teams Adaptive Card (1.4, as Workflows webhooks take it),
//! in the campaign's first language. Every text from data is plain text: Slack gets its three
//! control characters (`&`, `<`, `>`) escaped in every text object, as its reference asks, and
//! Teams gets TextBlocks and FactSets, which run no HTML.

use closeloop_core::campaign::Campaign;
use closeloop_core::model::{Answer, Invitation};
use closeloop_core::rules::{follow_up_kind, FollowUpKind};
use closeloop_core::time::Timestamp;
use closeloop_core::webhooks::DigestSummary;
use serde_json::{json, Value};

use crate::render::Strings;

/// Slack's limits (Block Kit reference): a header's text, a section field, a section's text.
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_FIELD_CHARS: usize = 2000;
const SLACK_SECTION_CHARS: usize = 3000;
/// Slack takes at most 10 fields in a section.
const SLACK_FIELDS: usize = 10;

/// `&`, `<` and `>` are Slack's control characters in mrkdwn and plain text alike.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Teams' TextBlocks and facts render a little Markdown, links among them: data is escaped so a
/// CRM name like `[click](https://…)` stays text.
fn teams_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '[' | ']' | '(' | ')' | '*' | '_' | '`' | '#' | '<' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// What an alert says, whichever app shows it.
struct Alert {
    title: String,
    facts: Vec<(String, String)>,
    comment: Option<(String, String)>,
    link_label: String,
    link: String,
}

fn alert(campaign: &Campaign, invitation: &Invitation, answer: &Answer, due: Timestamp, case_url: &str) -> Alert {
    let locale = campaign.locales[0];
    let c = &invitation.contact;
    let name = Some(c.full_name()).filter(|n| !n.is_empty()).unwrap_or_else(|| c.email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default());
    let due = due.display_in(&campaign.zone());
    let strings = Strings::new(locale).with("name", name).with("score", answer.score.to_string()).with("due", due.clone()).with("campaign", campaign.name.clone());
    let request = follow_up_kind(campaign, answer) == Some(FollowUpKind::ContactRequest);
    let mut facts = vec![(strings.get("field_score"), answer.score.to_string()), (strings.get("field_due"), due)];
    let mut push = |label: &str, value: Option<&str>| {
        if let Some(value) = value {
            facts.push((strings.get(label), value.to_owned()));
        }
    };
    push("field_email", c.email.as_ref().map(|e| e.as_str()));
    push("field_company", c.company.as_deref());
    push("field_segment", c.segment.as_deref());
    push("field_store", c.store.as_deref());
    push("field_touchpoint", invitation.touchpoint.as_deref());
    push("field_owner", c.owner_email.as_ref().map(|e| e.as_str()));
    for (k, v) in &c.properties {
        facts.push((k.clone(), v.clone()));
    }
    Alert {
        title: strings.get(if request { "alert_subject_request" } else { "alert_subject" }),
        facts,
        comment: answer.comment.clone().filter(|c| !c.is_empty()).map(|comment| (strings.get("field_comment"), comment)),
        link_label: strings.get("chat_open_case"),
        link: case_url.to_owned(),
    }
}

/// A detractor follow-up or contact request, as Slack Block Kit (with `text` as the
/// notification's fallback).
pub fn slack_alert(campaign: &Campaign, invitation: &Invitation, answer: &Answer, due: Timestamp, case_url: &str) -> Value {
    let a = alert(campaign, invitation, answer, due, case_url);
    let fields: Vec<Value> = a
        .facts
        .iter()
        .take(SLACK_FIELDS)
        .map(|(label, value)| json!({ "type": "mrkdwn", "text": cut(&format!("*{}*\n{}", slack_escape(label), slack_escape(value)), SLACK_FIELD_CHARS) }))
        .collect();
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": cut(&slack_escape(&a.title), SLACK_HEADER_CHARS), "emoji": false } }),
        json!({ "type": "section", "fields": fields }),
    ];
    if let Some((label, comment)) = &a.comment {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(&format!("*{}*\n{}", slack_escape(label), slack_escape(comment)), SLACK_SECTION_CHARS) } }));
    }
    blocks.push(json!({ "type": "actions", "elements": [{ "type": "button", "text": { "type": "plain_text", "text": a.link_label }, "url": a.link }] }));
    json!({ "text": slack_escape(&a.title), "blocks": blocks })
}

/// The Teams body a Workflows "post to a channel when a webhook request is received" flow takes:
/// a message with one Adaptive Card attachment.
fn teams_message(body: Vec<Value>, link_label: &str, link: &str) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": [{ "type": "Action.OpenUrl", "title": link_label, "url": link }]
            }
        }]
    })
}

pub fn teams_alert(campaign: &Campaign, invitation: &Invitation, answer: &Answer, due: Timestamp, case_url: &str) -> Value {
    let a = alert(campaign, invitation, answer, due, case_url);
    let facts: Vec<Value> = a.facts.iter().map(|(title, value)| json!({ "title": teams_escape(title), "value": teams_escape(value) })).collect();
    let mut body = vec![
        json!({ "type": "TextBlock", "text": teams_escape(&a.title), "weight": "Bolder", "size": "Medium", "wrap": true }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    if let Some((label, comment)) = &a.comment {
        body.push(json!({ "type": "TextBlock", "text": teams_escape(label), "weight": "Bolder", "wrap": true }));
        body.push(json!({ "type": "TextBlock", "text": teams_escape(comment), "wrap": true }));
    }
    teams_message(body, &a.link_label, &a.link)
}

fn digest_lines(campaign: &Campaign, d: &DigestSummary) -> (String, Vec<String>, String) {
    let show = |v: Option<i32>| v.map_or("–".to_owned(), |v| format!("{v:+}"));
    let strings = Strings::new(campaign.locales[0])
        .with("scope", format!("{} ({})", campaign.name, d.week))
        .with("nps", show(d.nps))
        .with("margin", d.margin_95.map_or("–".to_owned(), |m| m.to_string()))
        .with("answered", d.answered.to_string())
        .with("promoters", d.promoters.to_string())
        .with("passives", d.passives.to_string())
        .with("detractors", d.detractors.to_string())
        .with("open", d.open_cases.to_string())
        .with("overdue", d.overdue_cases.to_string());
    (strings.get("digest_subject"), vec![strings.get("digest_intro"), strings.get("digest_figures"), strings.get("digest_open_cases")], strings.get("chat_open_dashboard"))
}

/// The weekly digest in figures (no names, no comments: a channel is a wider audience).
pub fn slack_digest(campaign: &Campaign, d: &DigestSummary) -> Value {
    let (title, lines, link_label) = digest_lines(campaign, d);
    let text = lines.iter().map(|l| slack_escape(l)).collect::<Vec<_>>().join("\n");
    json!({
        "text": slack_escape(&title),
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": cut(&slack_escape(&title), SLACK_HEADER_CHARS), "emoji": false } },
            { "type": "section", "text": { "type": "mrkdwn", "text": cut(&text, SLACK_SECTION_CHARS) } },
            { "type": "actions", "elements": [{ "type": "button", "text": { "type": "plain_text", "text": link_label }, "url": d.dashboard_url }] }
        ]
    })
}

pub fn teams_digest(campaign: &Campaign, d: &DigestSummary) -> Value {
    let (title, lines, link_label) = digest_lines(campaign, d);
    let mut body = vec![json!({ "type": "TextBlock", "text": teams_escape(&title), "weight": "Bolder", "size": "Medium", "wrap": true })];
    body.extend(lines.into_iter().map(|l| json!({ "type": "TextBlock", "text": teams_escape(&l), "wrap": true })));
    teams_message(body, &link_label, &d.dashboard_url)
}

#[cfg(test)]
mod tests;
