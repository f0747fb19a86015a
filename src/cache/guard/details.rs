//! Details: "I booked a double room" is not "I booked a single room", "switch my plan to
//! monthly billing" is not "switch my plan to annual billing", "I'm allergic to penicillin" is
//! not "I'm not allergic to penicillin". The same statement with one detail swapped or denied.
//!
//! Read in the earlier turns of a chat, where the user states the facts the answer depends on.
//! Facts said again in other words change much of a sentence; a swapped detail changes a word
//! or two and leaves the rest as it was. Only statements are compared, and a changed word that
//! is the same word inflected or misspelt ("charge" / "charging", "recieve" / "receive") is no
//! detail.

use super::text::{within_one_edit, Text, Word};

/// The most words a swapped detail spans on either side ("economy" / "business class").
const MAX_SWAPPED: usize = 3;

/// The fewest words the two statements share around the swap; in statements of two or three
/// words, all but one ("I'm vegetarian." / "I'm vegan.").
const MIN_SHARED: usize = 3;

/// Words that deny a statement when added to it.
const DENIALS: &[&str] = &["not", "never", "no"];

/// The statements of a text (its sentences that are not questions), as runs of words.
fn statements(text: &Text) -> Vec<&[Word]> {
    text.words
        .chunk_by(|x, y| x.sentence == y.sentence)
        .filter(|sentence| !text.is_question(sentence[0].sentence))
        .collect()
}

/// The same word, inflected or made another part of speech ("charge" / "charging", "student"
/// / "study": the same first four letters at least, all but three at most of the shorter
/// word), or misspelt.
fn alike(x: &Word, y: &Word) -> bool {
    let (a, b) = (x.lower.as_bytes(), y.lower.as_bytes());
    let common = a.iter().zip(b).take_while(|(p, q)| p == q).count();
    x.stem == y.stem
        || (common >= 4 && a.len().min(b.len()) - common <= 3)
        || (a.len() >= 5 && within_one_edit(&x.lower, &y.lower))
}

/// Whether `b` is `a` with a few words in the middle changed for others, or a denial added
/// or dropped, and the rest, at least half of the longer statement, the same.
fn swapped(a: &[Word], b: &[Word]) -> bool {
    let prefix = a.iter().zip(b).take_while(|(x, y)| alike(x, y)).count();
    let room = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(room)
        .take_while(|(x, y)| alike(x, y))
        .count();
    let (changed_a, changed_b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let shared = prefix + suffix;
    let longer = a.len().max(b.len());
    if shared < MIN_SHARED.min(longer.saturating_sub(1)).max(1) || 2 * shared < longer {
        return false;
    }
    let new_word = |word: &Word, others: &[Word]| {
        word.is_content() && others.iter().all(|other| !alike(word, other))
    };
    let denied = |changed: &[Word], other: &[Word]| {
        other.is_empty() && changed.len() == 1 && DENIALS.contains(&changed[0].lower.as_str())
    };
    let swap = (1..=MAX_SWAPPED).contains(&changed_a.len())
        && (1..=MAX_SWAPPED).contains(&changed_b.len())
        && changed_a.iter().any(|w| new_word(w, changed_b))
        && changed_b.iter().any(|w| new_word(w, changed_a));
    swap || denied(changed_a, changed_b) || denied(changed_b, changed_a)
}

/// Conflict when a statement of one text is a statement of the other with a detail swapped
/// or denied. Statements the other text also makes, word for word, are left out: "I have a
/// cat. I have a dog." twice is no swap of cat for dog.
pub fn differ(a: &Text, b: &Text) -> bool {
    let (sa, sb) = (statements(a), statements(b));
    let (only_a, only_b) = (only_in(&sa, &sb), only_in(&sb, &sa));
    only_a.iter().any(|x| only_b.iter().any(|y| swapped(x, y)))
}

/// The statements of `these` that `those` does not make word for word.
fn only_in<'t>(these: &[&'t [Word]], those: &[&[Word]]) -> Vec<&'t [Word]> {
    let same = |x: &[Word], y: &[Word]| {
        x.len() == y.len() && x.iter().zip(y).all(|(x, y)| x.stem == y.stem)
    };
    these
        .iter()
        .filter(|x| !those.iter().any(|y| same(x, y)))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> bool {
        differ(&Text::new(a), &Text::new(b))
    }

    #[test]
    fn a_swapped_or_denied_detail_conflicts() {
        assert!(d("I'm vegetarian.", "I'm vegan."));
        assert!(d(
            "I booked a double room for 2 nights at your Lisbon hotel.",
            "I booked a single room for 2 nights at your Lisbon hotel."
        ));
        assert!(d(
            "I want to switch my plan to monthly billing.",
            "I want to switch my plan to annual billing."
        ));
        assert!(d(
            "I'm flying economy to Tokyo next week.",
            "I'm flying business class to Tokyo next week."
        ));
        assert!(d(
            "I live in Ontario and just got a speeding ticket.",
            "I live in Ontario and just got a parking ticket."
        ));
        assert!(d(
            "I'm allergic to penicillin.",
            "I'm not allergic to penicillin."
        ));
    }

    #[test]
    fn the_same_facts_reworded_inflected_or_misspelt_do_not() {
        assert!(!d(
            "I booked a double room for 2 nights at your Lisbon hotel.",
            "I have a reservation at your Lisbon hotel, a double room, two nights."
        ));
        assert!(!d(
            "My iPhone 13 won't charge.",
            "My iPhone 13 isn't charging."
        ));
        assert!(!d(
            "I never recieved my parcel from you.",
            "I never received my parcel from you."
        ));
        assert!(!d(
            "I'm a student at the University of Toronto.",
            "I study at the University of Toronto."
        ));
        assert!(!d(
            "I'm making lasagna tonight.",
            "Hi there! I'm making lasagna tonight."
        ));
        // Questions are the last message's business.
        assert!(!d(
            "Can I check in early at the hotel?",
            "Can I check out late at the hotel?"
        ));
        // Short answers that share too little to be one statement with a detail swapped.
        assert!(!d("Yes, go ahead.", "Yes please."));
        assert!(!d("Monthly.", "Yearly."));
        // The same two statements on both sides.
        assert!(!d(
            "I have a cat. I have a dog.",
            "I have a dog. I have a cat."
        ));
    }

    /// The family's limit: a lone synonym in an otherwise identical statement reads as a
    /// swapped detail, since "won't turn on" / "won't power on" cannot be told by their words
    /// from "won't turn on" / "won't charge".
    #[test]
    fn a_lone_synonym_is_refused_too() {
        assert!(d("My laptop won't turn on.", "My laptop won't power on."));
        assert!(d("My laptop won't turn on.", "My laptop won't charge."));
    }
}
