//! Negation: "Which foods should I eat with gout?" is not "Which foods should I not eat with gout?".

use super::text::Text;

const CUES: &[&str] = &[
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without",
    "non",
];

/// Fixed phrases whose negation word flips nothing: politeness, chatter, and "no charge" for
/// "free".
const IDIOMS: &[&[&str]] = &[
    &["no", "problem"],
    &["no", "worries"],
    &["no", "rush"],
    &["not", "too", "much", "trouble"],
    &["no", "charge"],
    &["no", "cost"],
    &["no", "extra", "charge"],
    &["no", "extra", "cost"],
    &["not", "sure"],
    &["no", "idea"],
    &["no", "thanks"],
    &["not", "yet"],
    &["no", "matter"],
    &["not", "only"],
    &["no", "doubt"],
    &["no", "one"],
];

fn count(text: &Text) -> usize {
    let words: Vec<&str> = text.words.iter().map(|w| w.lower.as_str()).collect();
    let mut negations = 0;
    let mut i = 0;
    while i < words.len() {
        if let Some(idiom) = IDIOMS.iter().find(|idiom| words[i..].starts_with(idiom)) {
            i += idiom.len();
            continue;
        }
        if CUES.contains(&words[i]) {
            negations += 1;
        }
        i += 1;
    }
    negations
}

/// Conflict when one text is negated more often than the other.
pub fn differ(a: &Text, b: &Text) -> bool {
    count(a) != count(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> bool {
        differ(&Text::new(a), &Text::new(b))
    }

    #[test]
    fn flipped_polarity_conflicts() {
        assert!(d(
            "Which foods should I eat with gout?",
            "Which foods should I not eat with gout?"
        ));
        assert!(d(
            "Why does my app crash on start?",
            "Why doesn't my app crash on start?"
        ));
        assert!(d("Yes, cancel it", "No, cancel it"));
        assert!(d(
            "Can I travel with a passport?",
            "Can I travel without a passport?"
        ));
    }

    #[test]
    fn kept_polarity_does_not() {
        assert!(!d("Why can't I log in?", "Why am I not able to log in?"));
        assert!(!d(
            "How do I reset my password?",
            "How can I reset my password?"
        ));
        assert!(!d(
            "Does the hotel have free parking?",
            "Is parking at the hotel at no charge?"
        ));
        assert!(!d(
            "Summarise our policy",
            "If it's not too much trouble, summarise our policy, no rush"
        ));
    }
}
