//! Direction: "move money from savings into checking" is not "...from checking into savings",
//! "convert USD to EUR" is not "convert EUR to USD", "emails from my boss" are not "emails to
//! my boss", "Why do Poles dislike Russians?" is not "Why do Russians dislike Poles?". The
//! same words, in swapped roles.

use super::text::Text;
use std::collections::{BTreeSet, HashMap};

/// Words that point from one thing to another.
const POINTERS: &[&str] = &["to", "into", "in", "onto"];

/// Filler between a pointer and what it points at.
const SKIP: &[&str] = &[
    "the", "a", "an", "my", "our", "your", "their", "his", "her", "its",
];

/// A thing pointed from or to: up to two words ("Word document"), stemmed.
type Phrase = BTreeSet<String>;

/// Ordered pairs (source, target): the words just before each pointer and the first words
/// after it, and "from X ... to Y".
fn arrows(text: &Text) -> Vec<(Phrase, Phrase)> {
    let words = &text.words;
    let stem = |i: usize| words[i].stem.as_str();
    // Up to two words of a phrase, from `at` in the direction `step`, skipping filler first.
    let phrase = |at: usize, forward: bool| -> Phrase {
        let mut found = Phrase::new();
        let mut i = at as isize;
        let step = if forward { 1 } else { -1 };
        while (0..words.len() as isize).contains(&i) && SKIP.contains(&stem(i as usize)) {
            i += step;
        }
        while (0..words.len() as isize).contains(&i) && found.len() < 2 {
            let word = &words[i as usize];
            let named =
                word.is_content() || word.name_like || super::quantities::is_unit(&word.lower);
            if !named || POINTERS.contains(&word.stem.as_str()) {
                break;
            }
            found.insert(word.stem.clone());
            i += step;
        }
        found
    };
    let mut found = Vec::new();
    for i in 0..words.len() {
        if POINTERS.contains(&stem(i)) && i > 0 && !SKIP.contains(&stem(i - 1)) {
            let (source, target) = (phrase(i - 1, false), phrase(i + 1, true));
            if !source.is_empty() && !target.is_empty() {
                found.push((source, target));
            }
        }
        if stem(i) == "from" {
            let source = phrase(i + 1, true);
            let target = (i + 1..words.len())
                .find(|&at| stem(at) == "to" || stem(at) == "into")
                .map(|at| phrase(at + 1, true));
            if let Some(target) = target.filter(|t| !t.is_empty() && !source.is_empty()) {
                found.push((source, target));
            }
        }
    }
    found
}

/// Whether one arrow points the other way: its source is the other's target and its target
/// the other's source.
fn reversed(
    (source, target): &(Phrase, Phrase),
    (their_source, their_target): &(Phrase, Phrase),
) -> bool {
    !source.is_disjoint(their_target) && !target.is_disjoint(their_source)
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
    // A text that points both ways ("to and from") flips nothing.
    let one_way =
        |arrows: &[(Phrase, Phrase)], arrow| !arrows.iter().any(|other| reversed(arrow, other));
    arrows_a.iter().any(|arrow| {
        one_way(&arrows_a, arrow)
            && arrows_b
                .iter()
                .any(|theirs| one_way(&arrows_b, theirs) && reversed(arrow, theirs))
    }) || from_against_to(a, b)
        || from_against_to(b, a)
        || swapped_around(a, b)
}

/// The things a text says something goes to ("to my boss") or comes from ("from my boss",
/// "from Boston"): a name, or a phrase opened by "the", "my" and the like. Not "to answer"
/// or "from answering" (what is done), nor "to each other" (both ways).
fn ends(text: &Text) -> (Vec<Phrase>, Vec<Phrase>) {
    let words = &text.words;
    let after = |marks: &[&str]| -> Vec<Phrase> {
        (0..words.len())
            .filter(|&i| marks.contains(&words[i].stem.as_str()))
            .filter_map(|i| {
                let rest = &words[i + 1..];
                let opened = rest
                    .first()
                    .is_some_and(|w| SKIP.contains(&w.stem.as_str()));
                let phrase: Phrase = rest
                    .iter()
                    .skip_while(|w| SKIP.contains(&w.stem.as_str()))
                    .take_while(|w| w.is_content() || w.name_like)
                    .take(2)
                    .filter(|w| opened || w.name_like)
                    .map(|w| w.stem.clone())
                    .collect();
                let reciprocal = phrase.contains("other") || phrase.contains("another");
                (!phrase.is_empty() && !reciprocal).then_some(phrase)
            })
            .collect()
    };
    (after(&["from"]), after(&["to", "into"]))
}

/// Whether `a` says something comes from what `b` says it goes to, and neither says the
/// other ("emails from my boss" / "emails to my boss").
fn from_against_to(a: &Text, b: &Text) -> bool {
    let ((from_a, to_a), (from_b, to_b)) = (ends(a), ends(b));
    let meets = |these: &[Phrase], phrase: &Phrase| these.iter().any(|p| !p.is_disjoint(phrase));
    from_a
        .iter()
        .any(|source| meets(&to_b, source) && !meets(&from_b, source) && !meets(&to_a, source))
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
        assert!(d(
            "How do I convert a Word document to PDF?",
            "How do I convert a PDF to a Word document?"
        ));
        assert!(d(
            "How far is 10 km in miles?",
            "How far is 10 miles in km?"
        ));
        assert!(d(
            "Show me unread emails from my boss.",
            "Show me unread emails to my boss."
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
        assert!(!d(
            "How do I get from the airport to downtown?",
            "How do I get to downtown from the airport?"
        ));
        assert!(!d(
            "Flights from Boston, please.",
            "Show me flights from Boston."
        ));
        assert!(!d(
            "How do Taekwondo and Karate compare to each other?",
            "How do Taekwondo and Karate differ from each other?"
        ));
        assert!(!d(
            "What motivates people to answer questions on Quora?",
            "What do people get from answering questions on Quora?"
        ));
    }
}
