//! Negation: "Which foods should I eat with gout?" is not "Which foods should I not eat with gout?".

use super::text::{Text, NOT_DONE};

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
    // A question that asks both ways: "Is it safe or not?", "Why or why not?", "If not, why?"
    &["or", "not"],
    &["or", "why", "not"],
    &["and", "why", "not"],
    &["or", "no"],
    &["if", "not"],
];

/// Auxiliaries that open a yes/no question.
const AUXILIARIES: &[&str] = &[
    "is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should",
    "have", "has", "had", "shall",
];

/// Words that can follow "Isn't" / "Don't" as the subject of a question ("Isn't there",
/// "Don't you"), unlike a verb after an imperative "Don't".
const SUBJECTS: &[&str] = &[
    "i", "you", "we", "they", "he", "she", "it", "there", "the", "a", "an", "my", "your", "our",
    "this", "that", "these", "those",
];

/// "Isn't there a fee?" asks what "Is there a fee?" asks: a question opened by a negated
/// auxiliary and its subject expects "yes" and is answered the same way. "Why isn't there a
/// fee?" and "Don't charge me" are not such questions.
fn rhetorical(text: &Text, not_at: usize) -> bool {
    let words = &text.words;
    not_at >= 1
        && text.opens_sentence(not_at - 1)
        && AUXILIARIES.contains(&words[not_at - 1].lower.as_str())
        && text.is_question(words[not_at].sentence)
        && words
            .get(not_at + 1)
            .is_some_and(|w| SUBJECTS.contains(&w.lower.as_str()))
}

fn count(text: &Text) -> usize {
    let words: Vec<&str> = text.words.iter().map(|w| w.lower.as_str()).collect();
    let mut negations = 0;
    let mut i = 0;
    while i < words.len() {
        if let Some(idiom) = IDIOMS.iter().find(|idiom| words[i..].starts_with(idiom)) {
            i += idiom.len();
            continue;
        }
        let not_done = NOT_DONE.contains(&words[i]) && words.get(i + 1) == Some(&"to");
        if not_done || (CUES.contains(&words[i]) && !(words[i] == "not" && rhetorical(text, i))) {
            negations += 1;
        }
        i += 1;
    }
    negations
}

/// Conflict when one text is negated more often than the other, asides left out.
pub fn differ(a: &Text, b: &Text) -> bool {
    super::ignoring_chatter(a, b, |a, b| count(a) != count(b))
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
            "Why doesn't anybody answer my questions?",
            "Why will no one answer my questions?"
        ));
        assert!(!d(
            "Why does nobody want to die?",
            "Why does no one want to die?"
        ));
        assert!(!d(
            "I can't log in to my account.",
            "I'm unable to log in to my account."
        ));
        assert!(!d("My laptop won't boot.", "My laptop fails to boot."));
        assert!(d("My laptop boots slowly.", "My laptop fails to boot."));
        assert!(!d("I failed my driving test.", "I passed my driving test."));
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

    #[test]
    fn a_question_opened_by_a_negated_auxiliary_expects_yes() {
        assert!(!d(
            "Doesn't the gym offer a student discount?",
            "Does the gym offer a student discount?"
        ));
        assert!(!d("Can't we split the bill?", "Can we split the bill?"));
        // Not such a question: a "why" question, an imperative, a statement.
        assert!(d(
            "Why doesn't the gym offer a student discount?",
            "Why does the gym offer a student discount?"
        ));
        assert!(d("Don't renew my subscription.", "Renew my subscription."));
        assert!(d(
            "The library isn't open late?",
            "The library is open late?"
        ));
    }

    #[test]
    fn a_question_asked_both_ways_is_not_negated() {
        assert!(!d(
            "Should I use a VPN at home? Why or why not?",
            "Should I use a VPN at home?"
        ));
        assert!(!d(
            "Is a heat pump worth it or not?",
            "Is a heat pump worth it?"
        ));
        assert!(!d(
            "Do cats need baths? Why and why not?",
            "Do cats need baths?"
        ));
        assert!(d(
            "Is a heat pump worth it or not?",
            "Is a heat pump not worth it?"
        ));
    }

    #[test]
    fn asides_are_not_read() {
        assert!(!d(
            "Ugh, I can't believe this weather. When does the pharmacy close?",
            "When does the pharmacy close?"
        ));
        // The question itself, or a sentence sharing its words, still counts.
        assert!(d(
            "My printer isn't connected. How do I print from my phone?",
            "My printer is connected. How do I print from my phone?"
        ));
        assert!(d(
            "When does the pharmacy not close?",
            "Ugh, what weather. When does the pharmacy close?"
        ));
    }
}
