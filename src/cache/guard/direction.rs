//! Direction: "move money from savings into checking" is not "...from checking into savings",
//! "convert USD to EUR" is not "convert EUR to USD", "Why do Poles dislike Russians?" is not
//! "Why do Russians dislike Poles?". The same words, in swapped roles.

use super::text::Text;
use std::collections::{BTreeSet, HashMap};

/// Words that point from one thing to another.
const POINTERS: &[&str] = &["to", "into", "in", "onto"];

/// Filler between a pointer and what it points at.
const SKIP: &[&str] = &[
    "the", "a", "an", "my", "our", "your", "their", "his", "her", "its",
];

/// Ordered pairs (source, target): the word before each pointer and the first word after it,
/// and "from X ... to Y".
fn arrows(text: &Text) -> BTreeSet<(String, String)> {
    let words: Vec<&str> = text.words.iter().map(|w| w.stem.as_str()).collect();
    let after = |i: usize| {
        words[i + 1..]
            .iter()
            .find(|w| !SKIP.contains(w))
            .map(|w| w.to_string())
    };
    let mut found = BTreeSet::new();
    for (i, word) in words.iter().enumerate() {
        if POINTERS.contains(word) && i > 0 && !SKIP.contains(&words[i - 1]) {
            if let Some(target) = after(i) {
                found.insert((words[i - 1].to_string(), target));
            }
        }
        if *word == "from" {
            let source = after(i);
            let target = words[i + 1..]
                .iter()
                .position(|w| *w == "to" || *w == "into")
                .and_then(|at| after(i + 1 + at));
            if let (Some(source), Some(target)) = (source, target) {
                found.insert((source, target));
            }
        }
    }
    found
}

/// Words that relate two things both ways: "cats and dogs" are "dogs and cats", "mix bleach
/// with ammonia" is "mix ammonia with bleach", "is X the same as Y" asks "is Y the same as X".
const SYMMETRIC: &[&str] = &[
    "and",
    "or",
    "nor",
    "vs",
    "versus",
    "with",
    "plus",
    "between",
    "same",
    "similar",
    "different",
    "difference",
    "compare",
    "compared",
    "equal",
    "like",
    "both",
    "either",
    "neither",
];

/// Where each content word that a text says once stands: stem → position.
fn said_once(text: &Text) -> HashMap<&str, usize> {
    let mut seen: HashMap<&str, Option<usize>> = HashMap::new();
    for (at, word) in text
        .words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.is_content())
    {
        seen.entry(word.stem.as_str())
            .and_modify(|once| *once = None)
            .or_insert(Some(at));
    }
    seen.into_iter()
        .filter_map(|(stem, at)| Some((stem, at?)))
        .collect()
}

/// Whether two content words said once in each text trade places around the same words, in one
/// sentence: "France ... against Ecuador" / "Ecuador ... against France", "the best thing ...
/// your worst experiences" / "the worst thing ... your best experiences". Words that relate both
/// ways between them ("and", "vs", "the same as") make the order free.
fn swapped_around(a: &Text, b: &Text) -> bool {
    let (once_a, once_b) = (said_once(a), said_once(b));
    let between = |text: &Text, from: usize, to: usize| -> Option<Vec<String>> {
        let span = &text.words[from..=to];
        let one_sentence = span.iter().all(|w| w.sentence == span[0].sentence);
        let inner = &span[1..span.len() - 1];
        let ordered = !inner.iter().any(|w| SYMMETRIC.contains(&w.stem.as_str()));
        (one_sentence && ordered && !inner.is_empty())
            .then(|| inner.iter().map(|w| w.stem.clone()).collect())
    };
    once_a.iter().any(|(x, &x_in_a)| {
        once_a.iter().any(|(y, &y_in_a)| {
            let (Some(&x_in_b), Some(&y_in_b)) = (once_b.get(x), once_b.get(y)) else {
                return false;
            };
            x_in_a < y_in_a
                && y_in_b < x_in_b
                && between(a, x_in_a, y_in_a).is_some_and(|inner| {
                    between(b, y_in_b, x_in_b).is_some_and(|other| inner == other)
                })
        })
    })
}

/// Conflict when one text points from X to Y and the other from Y to X, or the two trade
/// places around the same words.
pub fn differ(a: &Text, b: &Text) -> bool {
    let (arrows_a, arrows_b) = (arrows(a), arrows(b));
    arrows_a.iter().any(|(x, y)| {
        x != y
            && arrows_b.contains(&(y.clone(), x.clone()))
            && !arrows_a.contains(&(y.clone(), x.clone()))
    }) || swapped_around(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> bool {
        differ(&Text::new(a), &Text::new(b))
    }

    #[test]
    fn swapped_roles_conflict() {
        assert!(d(
            "Move $500 from savings into checking",
            "Move $500 from checking into savings"
        ));
        assert!(d("Convert 100 USD to EUR", "Convert 100 EUR to USD"));
        assert!(d(
            "How fast is 100 km/h in mph?",
            "How fast is 100 mph in km/h?"
        ));
        assert!(d(
            "Translate this from French to German",
            "Translate this from German to French"
        ));
    }

    #[test]
    fn the_same_words_in_traded_places_conflict() {
        assert!(d(
            "Why do Poles dislike Russians?",
            "Why do Russians dislike Poles?"
        ));
        assert!(d(
            "What does France need to do to win its match against Ecuador?",
            "What does Ecuador need to do to win its match against France?"
        ));
        assert!(d(
            "Is Canada bigger than Mexico?",
            "Is Mexico bigger than Canada?"
        ));
        assert!(d("Can a cat eat dog food?", "Can a dog eat cat food?"));
    }

    #[test]
    fn words_related_both_ways_or_reordered_clauses_do_not() {
        assert!(!d(
            "Who is better, Hillary Clinton or Donald Trump?",
            "Who is better: Donald Trump or Hillary Clinton?"
        ));
        assert!(!d(
            "Is butter the same as margarine?",
            "Is margarine the same as butter?"
        ));
        assert!(!d(
            "Can I mix bleach with vinegar?",
            "Can I mix vinegar with bleach?"
        ));
        assert!(!d(
            "Before I fly to Paris, should I visit London?",
            "Should I visit London before I fly to Paris?"
        ));
        assert!(!d(
            "What are the pros and cons of remote work?",
            "What are the cons and pros of remote work?"
        ));
    }

    #[test]
    fn the_same_direction_reworded_does_not() {
        assert!(!d("Convert 100 USD to EUR", "What is 100 USD in EUR?"));
        assert!(!d(
            "Move money from savings to checking",
            "Transfer from my savings into my checking"
        ));
        assert!(!d(
            "How do I reset my password?",
            "How can I reset my password?"
        ));
    }
}
