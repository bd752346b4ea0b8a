//! What may stand in text from outside: CRM fields, names, API strings and comments. Cleaned
//! where it comes in (import, API, the survey form), so every later use (a header, a page, an
//! export, an SMS) starts from harmless text.

/// Bidi controls: an override or isolate in a name can make "Anna" render as something else and
/// reorder what follows it on a page or in a subject line.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Line breaks that are not `\n`: Unicode's line and paragraph separators and C1's NEL.
fn is_other_line_break(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

/// A one-line field (a name, a company, a CRM value): C0 and C1 controls (tab, CR and LF
/// among them), line and paragraph separators and bidi controls are dropped or become a space,
/// the byte order mark goes, runs of white space become one space, and the ends are trimmed.
pub fn field(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut space = false;
    for c in value.chars() {
        if is_bidi_control(c) || c == '\u{feff}' {
            continue;
        }
        if c.is_whitespace() || c.is_control() || is_other_line_break(c) {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// A comment keeps its line breaks (as `\n`) and tabs; other C0 and C1 controls go, and line and
/// paragraph separators become `\n`. Bidi controls stay: a comment in Arabic or Hebrew may need
/// them, and a comment is never shown where it could pass for a name.
pub fn comment(value: &str) -> String {
    let value = value.replace("\r\n", "\n");
    value
        .chars()
        .filter_map(|c| match c {
            '\n' | '\t' => Some(c),
            '\r' => Some('\n'),
            c if is_other_line_break(c) => Some('\n'),
            '\u{feff}' => None,
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_field_loses_controls_separators_and_bidi_overrides_and_keeps_its_letters() {
        assert_eq!(field("  Åsa\r\nÖberg\u{0}\t"), "Åsa Öberg");
        assert_eq!(field("Anna\u{202e}gnp.exe"), "Annagnp.exe");
        assert_eq!(field("a\u{2028}b\u{2029}c\u{85}d\u{9b}e"), "a b c d e");
        assert_eq!(field("\u{feff}Berg & Söner <AB>"), "Berg & Söner <AB>", "markup is escaped where it is shown, not here");
        assert_eq!(field("\u{7}\u{1b}"), "");
    }

    #[test]
    fn a_comment_keeps_its_lines_and_tabs_and_loses_other_controls() {
        assert_eq!(comment("Slow\r\ndelivery\u{7}\rand\u{2028}rude\tstaff\u{0}\u{9b}"), "Slow\ndelivery\nand\nrude\tstaff");
        assert_eq!(comment("שלום \u{202b}x"), "שלום \u{202b}x");
    }

    proptest! {
        #[test]
        fn a_cleaned_field_is_one_line_without_any_control_and_cleaning_it_again_changes_nothing(s in any::<String>()) {
            let f = field(&s);
            let unsafe_char = |c: char| c.is_control() || is_bidi_control(c) || is_other_line_break(c) || c == '\u{feff}';
            prop_assert!(!f.chars().any(unsafe_char));
            prop_assert_eq!(f.trim(), f.as_str());
            prop_assert_eq!(field(&f), f);
        }

        #[test]
        fn a_cleaned_comment_holds_no_control_but_newline_and_tab(s in any::<String>()) {
            let c = comment(&s);
            prop_assert!(!c.chars().any(|ch| (ch.is_control() && ch != '\n' && ch != '\t') || is_other_line_break(ch)));
            prop_assert_eq!(comment(&c), c);
        }
    }
}
