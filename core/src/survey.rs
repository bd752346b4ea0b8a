//! The answer form: what the person typed, validated field by field.

use std::collections::BTreeMap;

use crate::campaign::{Campaign, RATING_MAX};
use crate::model::MAX_COMMENT_CHARS;
use crate::nps::{Score, ScoreError};

/// What the person typed, kept as typed so an error page can show it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SurveyForm {
    pub score: Option<u8>,
    pub comment: String,
    pub contact_ok: bool,
    pub ratings: BTreeMap<String, u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    ScoreMissing,
    ScoreOutOfRange,
    CommentTooLong,
    Rating(String),
    UnknownField(String),
    ContactValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAnswer {
    pub score: Score,
    pub comment: Option<String>,
    pub contact_ok: bool,
    pub ratings: BTreeMap<String, u8>,
}

/// Fields that browsers or one-click clients may add and that carry no answer.
const IGNORED_FIELDS: &[&str] = &["submit", "List-Unsubscribe"];

pub fn parse_answer_form(pairs: &[(String, String)], campaign: &Campaign) -> (SurveyForm, Result<ValidAnswer, Vec<FormError>>) {
    let mut form = SurveyForm::default();
    let mut errors = Vec::new();
    let mut score = Err(ScoreError::Missing);
    let mut seen_score = false;
    for (name, value) in pairs {
        match name.as_str() {
            "score" => {
                // Two scores can only come from a forged form: refuse rather than guess.
                if seen_score {
                    score = Err(ScoreError::OutOfRange(value.clone()));
                    continue;
                }
                seen_score = true;
                score = Score::parse(value);
                form.score = score.as_ref().ok().map(|s| s.value());
            }
            "comment" => form.comment = crate::clean::comment(value),
            "contact_ok" => match value.trim().to_ascii_lowercase().as_str() {
                "yes" | "on" | "true" | "1" => form.contact_ok = true,
                "" | "no" | "off" | "false" | "0" => form.contact_ok = false,
                _ => errors.push(FormError::ContactValue),
            },
            other => {
                if let Some(key) = other.strip_prefix("rating.") {
                    if campaign.driver(key).is_none() {
                        errors.push(FormError::UnknownField(truncate(other)));
                    } else if value.trim().is_empty() {
                        form.ratings.remove(key);
                    } else {
                        match value.trim().parse::<u8>() {
                            Ok(v) if (1..=RATING_MAX).contains(&v) => {
                                form.ratings.insert(key.to_owned(), v);
                            }
                            _ => errors.push(FormError::Rating(key.to_owned())),
                        }
                    }
                } else if !IGNORED_FIELDS.contains(&other) {
                    errors.push(FormError::UnknownField(truncate(other)));
                }
            }
        }
    }
    match &score {
        Err(ScoreError::Missing) => errors.insert(0, FormError::ScoreMissing),
        Err(ScoreError::OutOfRange(_)) => errors.insert(0, FormError::ScoreOutOfRange),
        Ok(_) => {}
    }
    if form.comment.chars().count() > MAX_COMMENT_CHARS {
        errors.push(FormError::CommentTooLong);
    }
    let result = match score {
        Ok(score) if errors.is_empty() => Ok(ValidAnswer {
            score,
            comment: Some(form.comment.trim().to_owned()).filter(|c| !c.is_empty()),
            contact_ok: form.contact_ok,
            ratings: form.ratings.clone(),
        }),
        _ => Err(errors),
    };
    (form, result)
}

fn truncate(input: &str) -> String {
    input.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> Campaign {
        Campaign::from_toml(
            "id = \"c\"\nname = \"n\"\ncompany = \"Acme\"\nsender_name = \"s\"\nsender_email = \"s@acme.example\"\n[[drivers]]\nkey = \"ease\"\nlabel = \"Ease\"\n",
        )
        .unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn a_complete_answer_is_accepted() {
        let (_, result) = parse_answer_form(
            &pairs(&[("score", "0"), ("comment", "  Slow\r\ndelivery \u{7} "), ("contact_ok", "yes"), ("rating.ease", "2")]),
            &campaign(),
        );
        let answer = result.unwrap();
        assert_eq!(answer.score.value(), 0);
        assert_eq!(answer.comment.as_deref(), Some("Slow\ndelivery"));
        assert!(answer.contact_ok);
        assert_eq!(answer.ratings["ease"], 2);
    }

    #[test]
    fn every_bad_field_is_reported_and_what_was_typed_is_kept() {
        let long = "x".repeat(MAX_COMMENT_CHARS + 1);
        let (form, result) = parse_answer_form(
            &pairs(&[("score", "12"), ("comment", &long), ("rating.ease", "9"), ("rating.nope", "3"), ("contact_ok", "maybe")]),
            &campaign(),
        );
        let errors = result.unwrap_err();
        assert_eq!(errors[0], FormError::ScoreOutOfRange);
        assert!(errors.contains(&FormError::CommentTooLong));
        assert!(errors.contains(&FormError::Rating("ease".into())));
        assert!(errors.contains(&FormError::UnknownField("rating.nope".into())));
        assert!(errors.contains(&FormError::ContactValue));
        assert_eq!(form.comment, long, "the comment is kept to be shown again");
    }

    #[test]
    fn a_missing_score_is_its_own_error_and_empty_ratings_are_no_answer() {
        let (_, result) = parse_answer_form(&pairs(&[("rating.ease", "")]), &campaign());
        assert_eq!(result.unwrap_err(), vec![FormError::ScoreMissing]);
        let (_, result) = parse_answer_form(&pairs(&[("score", "7"), ("rating.ease", "")]), &campaign());
        assert!(result.unwrap().ratings.is_empty());
    }

    #[test]
    fn two_scores_in_one_form_are_refused() {
        let (_, result) = parse_answer_form(&pairs(&[("score", "9"), ("score", "0")]), &campaign());
        assert_eq!(result.unwrap_err(), vec![FormError::ScoreOutOfRange]);
    }
}
