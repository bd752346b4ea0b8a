//! Every page, mail and SMS is translated completely: the locale files have the same keys and
//! placeholders, no template holds a word of its own, nothing English reaches a Swedish or
//! Danish message, and the time the survey takes is said once per locale.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::*;
use closeloop_core::model::Phone;
use closeloop_core::nps::Tally;
use closeloop_core::report::{DigestEntry, WeeklyDigest};

fn locale_tables() -> Vec<(&'static str, BTreeMap<&'static str, &'static str>)> {
    LOCALE_STRINGS.iter().map(|(code, strings)| (*code, strings.iter().copied().collect())).collect()
}

/// The `{placeholders}` a string uses.
fn placeholders(text: &str) -> BTreeSet<&str> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        rest = &rest[start + 1..];
        if let Some(end) = rest.find('}') {
            let name = &rest[..end];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_locale_has_the_same_keys_with_the_same_placeholders() {
    let tables = locale_tables();
    assert_eq!(tables.iter().map(|(code, _)| *code).collect::<Vec<_>>(), ["en", "sv", "da"]);
    let every_key: BTreeSet<&str> = tables.iter().flat_map(|(_, t)| t.keys().copied()).collect();
    let mut problems = Vec::new();
    for (code, table) in &tables {
        let missing: Vec<&str> = every_key.iter().copied().filter(|k| !table.contains_key(k)).collect();
        if !missing.is_empty() {
            let owners = |key: &str| tables.iter().filter(|(_, t)| t.contains_key(key)).map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
            for key in missing {
                problems.push(format!("{code}.toml lacks `{key}` (in {})", owners(key)));
            }
        }
    }
    for key in &every_key {
        let sets: Vec<(&str, BTreeSet<&str>)> =
            tables.iter().filter_map(|(code, t)| t.get(key).map(|v| (*code, placeholders(v)))).collect();
        if sets.windows(2).any(|w| w[0].1 != w[1].1) {
            let said: Vec<String> = sets.iter().map(|(code, p)| format!("{code} {p:?}")).collect();
            problems.push(format!("`{key}` has different placeholders: {}", said.join(", ")));
        }
    }
    assert!(problems.is_empty(), "the locale files differ:\n{}", problems.join("\n"));
}

/// Every respondent and staff template: pages, mail and SMS (the dashboard's `admin/` stays
/// English by design).
fn localised_templates() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path, text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let mut out = Vec::new();
    for dir in ["page", "mail", "sms"] {
        walk(&root.join(dir), &mut out);
    }
    assert!(out.len() > 30, "found only {} templates under {}", out.len(), root.display());
    out
}

#[test]
fn every_string_a_template_reads_is_in_every_locale() {
    let tables = locale_tables();
    let mut problems = Vec::new();
    for (path, source) in localised_templates() {
        let mut rest = source.as_str();
        while let Some(at) = rest.find("t.") {
            let before = source.len() - rest.len() + at;
            rest = &rest[at + 2..];
            // `t.` as a name of its own, not the end of another (`at.x`, `list.x`).
            if source[..before].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            let key: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // `privacy` is `privacy_notice` or `privacy_notice_no_link`, by whether there is a link.
            if key.is_empty() || key == "privacy" {
                continue;
            }
            for (code, table) in &tables {
                if !table.contains_key(key.as_str()) {
                    problems.push(format!("{} reads t.{key}, which {code}.toml lacks", path.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Words a template may hold outside its expressions, each with the reason. Keep it empty if at
/// all possible: a word here is shown untranslated in every language.
const ALLOWED_WORDS: &[(&str, &str)] = &[];

/// Removes `from … to` spans (the ends included), calling `seen` with each span's inside.
fn cut(text: &str, from: &str, to: &str, mut seen: impl FnMut(&str)) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(from) {
        out.push_str(&rest[..start]);
        let after = &rest[start + from.len()..];
        let end = after.find(to).unwrap_or(after.len());
        seen(&after[..end]);
        // A space, so that what stood on either side does not run together into one word.
        out.push(' ');
        rest = after.get(end + to.len()..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The words (runs of letters) in a text.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).collect()
}

/// What an HTML text shows: no `<style>` or `<script>` (code, not text), comments, tags or
/// entities. Attributes a reader sees or hears (`alt`, `title`, `placeholder`, `aria-label`) are
/// kept as text.
fn shown_html(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    // Elements are cut from a lowercased copy's positions, so `<STYLE>` counts too.
    let mut kept = String::with_capacity(html.len());
    let mut at = 0;
    while at < html.len() {
        let next = ["<style", "<script"].iter().filter_map(|open| lower[at..].find(open).map(|i| (at + i, *open))).min();
        let Some((start, open)) = next else { break };
        let close = format!("</{}>", &open[1..]);
        kept.push_str(&html[at..start]);
        kept.push(' ');
        at = lower[start..].find(&close).map_or(html.len(), |i| start + i + close.len());
    }
    kept.push_str(&html[at.min(html.len())..]);
    let kept = cut(&kept, "<!--", "-->", |_| {});
    let mut spoken = Vec::new();
    let text = cut(&kept, "<", ">", |tag| {
        for attribute in ["alt=\"", "title=\"", "placeholder=\"", "aria-label=\""] {
            let mut rest = tag;
            while let Some(i) = rest.find(attribute) {
                let value = &rest[i + attribute.len()..];
                let end = value.find('"').unwrap_or(value.len());
                spoken.push(value[..end].to_owned());
                rest = &value[end..];
            }
        }
    });
    let text = cut(&text, "&", ";", |_| {});
    format!("{text} {}", spoken.join(" "))
}

/// The words a template holds of its own: what is left once template syntax (and, in HTML,
/// markup) is gone, plus any word in a string literal a `{{ … }}` prints.
fn template_words(source: &str, html: bool) -> Vec<String> {
    let mut found = Vec::new();
    let text = cut(source, "{#", "#}", |_| {});
    let text = cut(&text, "{%", "%}", |_| {});
    let text = cut(&text, "{{", "}}", |expression| {
        for quote in ['"', '\''] {
            for (i, literal) in expression.split(quote).enumerate() {
                if i % 2 == 1 {
                    found.extend(words(literal).into_iter().map(|w| format!("{quote}{w}{quote} in {{{{{expression}}}}}")));
                }
            }
        }
    });
    let text = if html { shown_html(&text) } else { text };
    found.extend(words(&text).into_iter().filter(|w| !ALLOWED_WORDS.iter().any(|(a, _)| a == w)).map(str::to_owned));
    found
}

#[test]
fn the_literal_check_finds_a_word_wherever_a_template_puts_it() {
    assert_eq!(template_words("Score: {{ score }}", false), ["Score"]);
    assert_eq!(template_words("<th style=\"padding:4px\">Score</th><td>{{ score }}</td>", true), ["Score"]);
    assert_eq!(template_words("{{ \"yes\" if ok else \"no\" }}", false).len(), 2);
    assert_eq!(template_words("<img alt=\"Logo\" src=\"{{ url }}\">", true), ["Logo"]);
    assert!(template_words("<p style=\"color:red\" class=\"note\">{{ t.intro }}&nbsp;–</p>{# a note #}", true).is_empty());
    assert!(template_words("<script>// a comment\nvar x=1;</script><STYLE>p{color:red}</STYLE>{% if a == \"b\" %}0 = {{ t.low }}{% endif %}", true).is_empty());
}

#[test]
fn no_page_mail_or_sms_template_holds_an_english_literal() {
    let mut problems = Vec::new();
    for (path, source) in localised_templates() {
        let html = path.extension().is_some_and(|e| e == "html");
        let found = template_words(&source, html);
        if !found.is_empty() {
            problems.push(format!("{}: {}", path.display(), found.join(", ")));
        }
    }
    assert!(problems.is_empty(), "templates hold words of their own (put them in templates/locales/*.toml):\n{}", problems.join("\n"));
}

/// A campaign in `locale` first (staff mail is in the campaign's first language), and a contact
/// with every field an alert lists.
fn full_campaign(locale: Locale) -> Campaign {
    let mut c = campaign();
    c.locales = vec![locale, Locale::En];
    c
}

fn full_invitation(locale: Locale) -> Invitation {
    let mut inv = invitation(locale, "Åsa");
    inv.contact.last_name = Some("Berg".into());
    inv.contact.phone = Some(Phone::parse("+46701234567").unwrap());
    inv.contact.segment = Some("B2B".into());
    inv.contact.store = Some("Malmö".into());
    inv.contact.owner_email = Some(Email::parse("owner@nordhavn.example").unwrap());
    inv.touchpoint = Some("service".into());
    inv
}

/// A passive who ticked "contact me": a contact request, not a detractor's case.
fn contact_request() -> Answer {
    answer(8)
}

/// Every page, mail and SMS in `locale`, named, as the text a reader sees.
fn everything_in(locale: Locale) -> Vec<(String, String)> {
    let c = full_campaign(locale);
    let inv = full_invitation(locale);
    let due = Timestamp::parse_rfc3339("2026-07-01T09:30:00Z").unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add_mail = |name: &str, m: RenderedMail| {
        out.push((format!("{name} subject"), m.subject));
        out.push((format!("{name} text"), m.text));
        out.push((format!("{name} html"), shown_html(&m.html)));
    };
    add_mail("invitation", ask_mail(MessageKind::Invitation, &c, &inv, &links()).unwrap());
    add_mail("reminder", ask_mail(MessageKind::Reminder, &c, &inv, &links()).unwrap());
    add_mail("heads_up", heads_up_mail(&c, &inv, "Karin Lund", "2026-12-02", &links()).unwrap());
    add_mail("thank_you (detractor)", thank_you_mail(&c, &inv, &answer(3), &links()).unwrap());
    add_mail("thank_you (contact request)", thank_you_mail(&c, &inv, &contact_request(), &links()).unwrap());
    add_mail("review_invitation", review_mail(&c, &inv, &answer(10), &links()).unwrap());
    for (kind, name) in [(MessageKind::Alert, "alert"), (MessageKind::Escalation, "escalation")] {
        add_mail(&format!("{name} (detractor)"), follow_up_mail(kind, &c, &inv, &answer(2), due).unwrap());
        add_mail(&format!("{name} (passive)"), follow_up_mail(kind, &c, &inv, &Answer { contact_ok: false, ..answer(7) }, due).unwrap());
        add_mail(&format!("{name} (contact request)"), follow_up_mail(kind, &c, &inv, &contact_request(), due).unwrap());
    }
    let entry = |score: u8, comment: &str| DigestEntry {
        invitation_id: InvitationId("i1".into()),
        name: "Åsa Berg".into(),
        score,
        comment: Some(comment.into()),
        answered_at: Timestamp::from_millis(0),
    };
    let mut this_week = Tally::default();
    let mut last_week = Tally::default();
    for s in [2, 7, 9, 10, 10] {
        this_week.add(Score::new(s).unwrap());
        last_week.add(Score::new(s.saturating_sub(3)).unwrap());
    }
    let digest = WeeklyDigest { this_week, last_week, new_detractors: vec![entry(2, "Slow"), entry(3, "Late")], comments: vec![entry(2, "Slow")] };
    let digest_mail = digest_mail(locale, &c.zone(), "owner@nordhavn.example", &digest, &[Some((due, true)), Some((due, false))], (2, 1), "https://nps.example/admin").unwrap();
    add_mail("digest", digest_mail);
    for kind in [MessageKind::Invitation, MessageKind::Reminder] {
        out.push((format!("{kind:?} SMS"), sms(kind, &c, &inv, &links()).unwrap()));
    }
    let existing = answer(9);
    let form = SurveyForm { score: Some(3), ..SurveyForm::default() };
    let errors = [FormError::ScoreMissing, FormError::ScoreOutOfRange, FormError::CommentTooLong, FormError::ContactValue];
    let survey = SurveyPage { campaign: &c, invitation: &inv, form: &form, existing: Some(&existing), errors: &errors, unavailable: true };
    out.push(("survey page".into(), shown_html(&survey_page(&survey).unwrap())));
    for (name, a) in [("detractor", answer(3)), ("contact request", contact_request()), ("promoter", Answer { contact_ok: false, ..answer(10) })] {
        out.push((format!("thanks page ({name})"), shown_html(&thanks_page(&c, &inv, &a, &links()).unwrap())));
    }
    for notice in [Notice::NotFound, Notice::BadRequest, Notice::Unavailable, Notice::Closed] {
        out.push((format!("{notice:?} page"), shown_html(&notice_page(locale, notice).unwrap())));
    }
    for done in [false, true] {
        out.push((format!("unsubscribe page (done: {done})"), shown_html(&unsubscribe_page(&c, &inv, done).unwrap())));
    }
    out
}

/// Whether `phrase` stands in `text` as words of its own (not inside a longer word).
fn has_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[test]
fn swedish_and_danish_pages_mail_and_sms_hold_no_english_label() {
    let tables: BTreeMap<&str, BTreeMap<&str, &str>> = locale_tables().into_iter().collect();
    let en = &tables["en"];
    let label_keys: Vec<&str> = en.keys().copied().filter(|k| k.starts_with("field_") || k.starts_with("group_") || ["yes", "no"].contains(k)).collect();
    assert!(label_keys.len() >= 16, "{label_keys:?}");
    for locale in [Locale::Sv, Locale::Da] {
        let own = &tables[locale.code()];
        // A label is English only where the translation differs (Danish says "promoter" too). A
        // group is looked for as the alert shows it, "(passive)": Danish plural is "passive".
        let mut english: Vec<String> = label_keys
            .iter()
            .filter(|k| own.get(*k) != en.get(*k))
            .map(|k| if k.starts_with("group_") { format!("({})", en[k]) } else { en[k].to_owned() })
            .collect();
        // What the alert said before its labels were translated.
        english.extend(["May we contact", "Follow up by", "Account manager"].map(String::from));
        let everything = everything_in(locale);
        let mut problems = Vec::new();
        for (name, text) in &everything {
            assert!(!text.contains("{survey_duration}"), "{locale:?} {name}: {text}");
            for label in &english {
                if has_phrase(text, label) {
                    problems.push(format!("{locale:?} {name} says {label:?}"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        // And the translated labels are there.
        let alert = everything.iter().find(|(n, _)| n == "alert (detractor) text").map(|(_, t)| t.as_str()).unwrap();
        for key in ["field_score", "field_comment", "field_contact_ok", "field_due", "field_email", "field_phone", "field_company", "field_segment", "field_store", "field_touchpoint", "field_owner", "group_detractor", "yes"] {
            assert!(alert.contains(own[key]), "{locale:?} alert lacks {key} ({:?}): {alert}", own[key]);
        }
    }
}

/// Every "N min…" phrase in a text (a number, maybe a range, then a word starting with "min").
fn durations(text: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut found = Vec::new();
    for (n, &(start, c)) in chars.iter().enumerate() {
        if !c.is_ascii_digit() || (n > 0 && (chars[n - 1].1.is_alphanumeric() || matches!(chars[n - 1].1, '–' | '-'))) {
            continue;
        }
        let mut m = n;
        while m < chars.len() && (chars[m].1.is_ascii_digit() || matches!(chars[m].1, '–' | '-')) {
            m += 1;
        }
        while m < chars.len() && chars[m].1 == ' ' {
            m += 1;
        }
        let word_start = m;
        while m < chars.len() && chars[m].1.is_alphabetic() {
            m += 1;
        }
        let word: String = chars[word_start..m].iter().map(|(_, c)| c).collect();
        if word.to_lowercase().starts_with("min") {
            let end = chars.get(m).map_or(text.len(), |(i, _)| *i);
            found.push(text[start..end].to_owned());
        }
    }
    found
}

#[test]
fn the_survey_duration_is_said_once_and_reads_the_same_everywhere() {
    assert_eq!(durations("takes 2–3 minutes, or 1 min, not 12 apples or a2 min"), ["2–3 minutes", "1 min"]);
    for (code, table) in locale_tables() {
        let duration = table["survey_duration"];
        assert!(!duration.is_empty() && durations(duration) == [duration], "{code}: {duration:?}");
        for (key, value) in &table {
            if *key != "survey_duration" {
                assert!(durations(value).is_empty(), "{code}.{key} says how long the survey takes itself; say {{survey_duration}}: {value}");
            }
        }
    }
    for locale in Locale::ALL {
        let duration = Strings::new(locale).get("survey_duration");
        let c = full_campaign(locale);
        let inv = full_invitation(locale);
        let invitation = ask_mail(MessageKind::Invitation, &c, &inv, &links()).unwrap();
        let reminder = ask_mail(MessageKind::Reminder, &c, &inv, &links()).unwrap();
        let heads_up = heads_up_mail(&c, &inv, "Karin Lund", "2026-12-02", &links()).unwrap();
        let form = SurveyForm::default();
        let page = survey_page(&SurveyPage { campaign: &c, invitation: &inv, form: &form, existing: None, errors: &[], unavailable: false }).unwrap();
        let said = [
            ("survey page", shown_html(&page)),
            ("invitation subject", invitation.subject),
            ("invitation text", invitation.text),
            ("invitation html", shown_html(&invitation.html)),
            ("reminder text", reminder.text),
            ("reminder html", shown_html(&reminder.html)),
            ("heads-up text", heads_up.text),
            ("invitation SMS", sms(MessageKind::Invitation, &c, &inv, &links()).unwrap()),
            ("reminder SMS", sms(MessageKind::Reminder, &c, &inv, &links()).unwrap()),
        ];
        for (name, text) in &said {
            assert!(has_phrase(text, &duration), "{locale:?} {name} does not say {duration:?}: {text}");
            assert!(durations(text).iter().all(|d| *d == duration), "{locale:?} {name} says {:?}, not only {duration:?}", durations(text));
        }
    }
}
