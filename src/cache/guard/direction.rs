//! Direction: "move money from savings into checking" is not "...from checking into savings",
//! "convert USD to EUR" is not "convert EUR to USD". The same words, in swapped roles.

use super::text::Text;
use std::collections::BTreeSet;

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

/// Conflict when one text points from X to Y and the other from Y to X.
pub fn differ(a: &Text, b: &Text) -> bool {
    let (arrows_a, arrows_b) = (arrows(a), arrows(b));
    arrows_a.iter().any(|(x, y)| {
        x != y
            && arrows_b.contains(&(y.clone(), x.clone()))
            && !arrows_a.contains(&(y.clone(), x.clone()))
    })
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
