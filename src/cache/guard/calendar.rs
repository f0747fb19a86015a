//! Named days, months and times of day: "Is the museum open on Monday?" is not "...on Tuesday?".

use super::text::Text;
use std::collections::BTreeSet;

const NAMES: &[(&str, &[&str])] = &[
    ("monday", &["monday", "mondays", "mon"]),
    ("tuesday", &["tuesday", "tuesdays", "tue", "tues"]),
    ("wednesday", &["wednesday", "wednesdays", "wed"]),
    (
        "thursday",
        &["thursday", "thursdays", "thu", "thur", "thurs"],
    ),
    ("friday", &["friday", "fridays", "fri"]),
    ("saturday", &["saturday", "saturdays", "sat"]),
    ("sunday", &["sunday", "sundays", "sun"]),
    ("january", &["january", "jan"]),
    ("february", &["february", "feb"]),
    ("march", &["march"]),
    ("april", &["april", "apr"]),
    ("may", &["may"]),
    ("june", &["june", "jun"]),
    ("july", &["july", "jul"]),
    ("august", &["august", "aug"]),
    ("september", &["september", "sep", "sept"]),
    ("october", &["october", "oct"]),
    ("november", &["november", "nov"]),
    ("december", &["december", "dec"]),
    ("easter", &["easter"]),
    ("new year", &["new year's", "newyear"]),
    ("thanksgiving", &["thanksgiving"]),
    ("spring", &["spring"]),
    ("summer", &["summer", "summers"]),
    ("autumn", &["autumn", "fall"]),
    ("winter", &["winter", "winters"]),
    ("noon", &["noon", "midday", "lunchtime"]),
    ("midnight", &["midnight"]),
];

/// Words that are also everyday words ("may", "march", "sun", "sat", "dec") count only when
/// written capitalised.
const AMBIGUOUS: &[&str] = &[
    "may", "march", "sun", "sat", "wed", "dec", "jan", "mon", "fri", "fall",
];

/// Whether `word` names a day, month or holiday (other families leave those to this one).
pub fn is_calendar_word(word: &str) -> bool {
    NAMES.iter().any(|(_, forms)| forms.contains(&word))
}

fn named(text: &Text) -> BTreeSet<&'static str> {
    text.words
        .iter()
        .filter(|w| !AMBIGUOUS.contains(&w.lower.as_str()) || w.name_like)
        .filter_map(|w| {
            NAMES
                .iter()
                .find(|(_, forms)| forms.contains(&w.lower.as_str()))
                .map(|(n, _)| *n)
        })
        .collect()
}

/// Conflict when the texts name different days, months, holidays or times of day.
pub fn differ(a: &Text, b: &Text) -> bool {
    named(a) != named(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> bool {
        differ(&Text::new(a), &Text::new(b))
    }

    #[test]
    fn changed_days_and_months_conflict() {
        assert!(d(
            "Is the museum open on Monday?",
            "Is the museum open on Tuesday?"
        ));
        assert!(d("Weather in Rome in April", "Weather in Rome in October"));
        assert!(d("Are you open on Christmas?", "Are you open on Easter?"));
        assert!(d(
            "Is the pool heated in winter?",
            "Is the pool heated in summer?"
        ));
    }

    #[test]
    fn the_same_days_or_everyday_words_do_not() {
        assert!(!d("Open on Mondays?", "Are you open on Monday?"));
        assert!(!d("May I pay by card?", "Can I pay by card?"));
        assert!(!d("How do I march in a band?", "How to march in a band"));
        assert!(!d(
            "Why do leaves fall?",
            "Why do the leaves fall off trees?"
        ));
    }
}
