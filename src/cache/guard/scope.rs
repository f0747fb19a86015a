//! Scope: whose, when and how many. "How do I close my account?" is not "How do I close my
//! son's account?", "revenue this year" is not "revenue last year", "delete a photo" is not
//! "delete all photos".

use super::text::{Text, Word};
use std::collections::BTreeSet;

/// Whose: the asker (or a generic "you"), someone else, a group.
const OWNERS: &[(&str, &[&str])] = &[
    (
        "self",
        &["my", "mine", "me", "myself", "your", "yours", "yourself"],
    ),
    (
        "other",
        // Not "someone": "someone who ignores me" is anyone, no one's in particular.
        &[
            "his", "her", "hers", "him", "their", "theirs", "them", "else",
        ],
    ),
    ("group", &["our", "ours", "us", "ourselves"]),
];

/// People an answer may be for, instead of the asker. Generic roles that support questions
/// mention in passing ("customer support", "the team") are left out.
const BENEFICIARIES: &[&str] = &[
    "child",
    "children",
    "kid",
    "kids",
    "son",
    "daughter",
    "baby",
    "toddler",
    "teen",
    "teenager",
    "wife",
    "husband",
    "partner",
    "spouse",
    "boyfriend",
    "girlfriend",
    "mother",
    "father",
    "mom",
    "mum",
    "dad",
    "parent",
    "parents",
    "grandmother",
    "grandfather",
    "grandparent",
    "sister",
    "brother",
    "friend",
    "colleague",
    "coworker",
    "manager",
    "boss",
    "guest",
    "guests",
    "tenant",
    "landlord",
    "dog",
    "cat",
    "pet",
];

/// Groups that change the scope only when someone's they are: "my team", "our customers".
const OWNED_GROUPS: &[&str] = &[
    "team",
    "company",
    "department",
    "staff",
    "employee",
    "customer",
    "client",
    "organisation",
    "organization",
    "firm",
    "family",
    "household",
    "business",
];
const POSSESSIVES: &[&str] = &["my", "our", "your", "his", "her", "their"];

/// Relative time: what period the question is about.
const PERIOD_UNITS: &[&str] = &[
    "day", "night", "week", "weekend", "month", "quarter", "year", "season", "semester", "term",
    "summer", "winter", "spring", "autumn", "fall", "time",
];
const PERIOD_MARKERS: &[&str] = &[
    "this", "last", "next", "previous", "past", "coming", "current", "upcoming",
];
const RELATIVE_DAYS: &[&str] = &["today", "tonight", "yesterday", "tomorrow", "ago"];

/// "all", "every": the question is about everything, not one thing.
const UNIVERSALS: &[&str] = &[
    "all",
    "every",
    "each",
    "entire",
    "whole",
    "everything",
    "everyone",
    "everybody",
    "both",
];

fn owners(text: &Text) -> BTreeSet<&'static str> {
    text.words
        .iter()
        .filter_map(|w| {
            OWNERS
                .iter()
                .find(|(_, cues)| cues.contains(&w.lower.as_str()))
                .map(|(o, _)| *o)
        })
        .collect()
}

/// People and groups under two names, by stem: "my business" is "my company", "a kid" is "a
/// child", "my mum" is "my mother".
const SAME_ONE: &[(&str, &str)] = &[
    ("company", "business"),
    ("firm", "business"),
    ("kid", "child"),
    ("children", "child"),
    ("mom", "mother"),
    ("mum", "mother"),
    ("dad", "father"),
    ("coworker", "colleague"),
    ("boss", "manager"),
    ("teen", "teenager"),
];

fn one_name(stem: &str) -> String {
    SAME_ONE
        .iter()
        .find(|(alias, _)| *alias == stem)
        .map_or(stem, |(_, name)| name)
        .to_string()
}

fn beneficiaries(text: &Text) -> BTreeSet<String> {
    let mut found: BTreeSet<String> = text
        .words
        .iter()
        .filter(|w| {
            BENEFICIARIES.contains(&w.lower.as_str()) || BENEFICIARIES.contains(&w.stem.as_str())
        })
        .map(|w| one_name(&w.stem))
        .collect();
    found.extend(groups_after(text, POSSESSIVES));
    found
}

/// The [`OWNED_GROUPS`] named right after one of `determiners`, by one name.
fn groups_after<'t>(text: &'t Text, determiners: &'t [&str]) -> impl Iterator<Item = String> + 't {
    text.words
        .windows(2)
        .filter(|w| {
            determiners.contains(&w[0].lower.as_str()) && OWNED_GROUPS.contains(&w[1].stem.as_str())
        })
        .map(|w| one_name(&w[1].stem))
}

/// Whether the texts are for different people. A group that one text names as the asker's
/// and the other as "the" group is the same group ("my family plan", "the family plan"): "the"
/// names the one that goes without saying. Someone else's ("their family plan") is not.
fn beneficiaries_differ(a: &Text, b: &Text) -> bool {
    let in_both = |determiners: &'static [&'static str]| -> BTreeSet<String> {
        groups_after(a, determiners)
            .chain(groups_after(b, determiners))
            .collect()
    };
    let (definite, others) = (in_both(&["the"]), in_both(&["his", "her", "their"]));
    beneficiaries(a)
        .symmetric_difference(&beneficiaries(b))
        .any(|one| !definite.contains(one) || others.contains(one))
}

fn periods(text: &Text) -> BTreeSet<String> {
    let mut found: BTreeSet<String> = marked(text, PERIOD_UNITS)
        .map(|(marker, unit)| format!("{marker} {unit}"))
        .collect();
    found.extend(
        text.words
            .iter()
            .filter(|w| RELATIVE_DAYS.contains(&w.lower.as_str()))
            .map(|w| canonical_marker(&w.lower).to_string()),
    );
    found
}

/// Each of `units` said with a marker of which one ("last year", "next Friday"): the marker
/// in one spelling, and the unit's stem.
fn marked<'t>(
    text: &'t Text,
    units: &'static [&'static str],
) -> impl Iterator<Item = (&'t str, String)> + 't {
    text.words
        .windows(2)
        .filter(|w| {
            PERIOD_MARKERS.contains(&w[0].lower.as_str()) && units.contains(&w[1].stem.as_str())
        })
        .map(|w| (canonical_marker(&w[0].lower), w[1].stem.clone()))
}

/// Adverbs of how often, by the unit they count in.
const RATE_ADVERBS: &[(&str, &str)] = &[
    ("hourly", "hour"),
    ("daily", "day"),
    ("nightly", "night"),
    ("weekly", "week"),
    ("monthly", "month"),
    ("yearly", "year"),
    ("annually", "year"),
];

/// What an amount is counted per: "per meal", "a day", "each week", "daily" (day). After "per"
/// any word; after "a", "each" or "every" a unit of time or a meal.
fn rates(text: &Text) -> BTreeSet<String> {
    let per_unit = |w: &[Word]| match w[0].lower.as_str() {
        "per" => true,
        "a" | "an" | "each" | "every" => {
            PERIOD_UNITS.contains(&w[1].stem.as_str()) || w[1].stem == "meal"
        }
        _ => false,
    };
    let mut found: BTreeSet<String> = text
        .words
        .windows(2)
        .filter(|w| per_unit(w))
        .map(|w| w[1].stem.clone())
        .collect();
    found.extend(text.words.iter().filter_map(|w| {
        RATE_ADVERBS
            .iter()
            .find(|(adverb, _)| *adverb == w.lower)
            .map(|(_, unit)| unit.to_string())
    }));
    found
}

/// Whether both texts count per something and per nothing the same: "grams of protein per
/// day" is not "per meal", though "a day" is "daily".
fn rates_differ(a: &Text, b: &Text) -> bool {
    let (in_a, in_b) = (rates(a), rates(b));
    !in_a.is_empty() && !in_b.is_empty() && in_a.is_disjoint(&in_b)
}

const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Whether both texts say which of the same weekday they mean, and differently: "next Friday"
/// is not "this Friday". "Friday" alone may be either, so it conflicts with neither.
fn weekdays_differ(a: &Text, b: &Text) -> bool {
    let in_b: Vec<_> = marked(b, WEEKDAYS).collect();
    marked(a, WEEKDAYS).any(|(marker, day)| {
        in_b.iter()
            .any(|(other_marker, other_day)| *other_day == day && *other_marker != marker)
    })
}

fn canonical_marker(marker: &str) -> &str {
    match marker {
        "previous" | "past" => "last",
        "coming" | "upcoming" => "next",
        "current" => "this",
        other => other,
    }
}

/// Phrases where "all" counts nothing: "what is it all about", "not at all", "first of all".
const ALL_IDIOMS: &[&[&str]] = &[
    &["all", "about"],
    &["all", "the", "time"],
    &["at", "all"],
    &["first", "of", "all"],
    &["most", "of", "all"],
    &["best", "of", "all"],
    &["after", "all"],
    &["all", "over"],
    &["all", "right"],
    &["all", "in", "all"],
    &["all", "along"],
    &["once", "and", "for", "all"],
];

/// "every evening" is a habit, not "all of them": a universal before a unit of time is not one,
/// and neither is "all" in an idiom ([`ALL_IDIOMS`]). Each universal comes with the position
/// of the plural noun it counts, if one follows within three words ("all the lights").
fn universals(text: &Text) -> Vec<Option<usize>> {
    let lowers: Vec<&str> = text.words.iter().map(|w| w.lower.as_str()).collect();
    let in_idiom = |i: usize| {
        ALL_IDIOMS.iter().any(|idiom| {
            idiom.iter().enumerate().any(|(at, word)| {
                *word == "all"
                    && i >= at
                    && lowers.get(i - at..i - at + idiom.len()) == Some(*idiom)
            })
        })
    };
    let words = &text.words;
    (0..words.len())
        .filter(|&i| {
            UNIVERSALS.contains(&lowers[i])
                && !in_idiom(i)
                // "examples of each?", "one rebuttal each": a pronoun, counting nothing new.
                && words.get(i + 1).is_some_and(|n| n.sentence == words[i].sentence)
                && !words.get(i + 1).is_some_and(|n| {
                    [n.lower.as_str(), n.stem.as_str()]
                        .iter()
                        .any(|w| PERIOD_UNITS.contains(w) || TIMES_OF_DAY.contains(w))
                })
        })
        .map(|i| {
            (i + 1..(i + 4).min(words.len()))
                .find(|&j| words[j].lower != words[j].stem && words[j].lower.ends_with('s'))
        })
        .collect()
}

/// Words that open a noun phrase: where "which ones" is said.
const DETERMINERS: &[&str] = &[
    "the", "a", "an", "all", "every", "each", "these", "those", "some", "any", "my", "your", "our",
    "their", "his", "her", "its",
];

/// The words between a noun and the word that opens its phrase, and whose the phrase is
/// ("my", "their"; `None` for "the", "all" or nothing): "all the oldest languages" and "the
/// oldest languages" have the same ("oldest", no one's), "the living room lights" not.
fn phrase(text: &Text, noun: usize) -> (Vec<&str>, Option<&str>) {
    let words = &text.words;
    let mut modifiers = Vec::new();
    let mut at = noun;
    while at > 0 && noun - at < 3 {
        at -= 1;
        let word = words[at].lower.as_str();
        if DETERMINERS.contains(&word) {
            let owner = POSSESSIVES.contains(&word) || word == "its";
            return (modifiers, owner.then_some(word));
        }
        modifiers.push(word);
    }
    (modifiers, None)
}

/// Whether one text counts everything and the other does not. "All the lights" against "the
/// lights" counts the same things: a universal over a plural that the other text names in the
/// plural, with the same words before it and no one's else, changes nothing. Against "a light",
/// "the living room lights" or "my lights" it does.
fn universal_differs(a: &Text, b: &Text) -> bool {
    let (ua, ub) = (universals(a), universals(b));
    let narrows =
        |all: &[Option<usize>], text: &Text, other: &Text| {
            !all.iter().all(|noun| {
                noun.is_some_and(|noun| {
                    let counted = phrase(text, noun);
                    other.words.iter().enumerate().any(|(j, w)| {
                        w.lower == text.words[noun].lower && phrase(other, j) == counted
                    })
                })
            })
        };
    match (ua.is_empty(), ub.is_empty()) {
        (false, true) => narrows(&ua, a, b),
        (true, false) => narrows(&ub, b, a),
        _ => false,
    }
}

const TIMES_OF_DAY: &[&str] = &[
    "morning",
    "evening",
    "afternoon",
    "night",
    "weekday",
    "hour",
    "minute",
];

/// Conflict when the texts are about different owners (both say whose), different people,
/// different periods, or one is about everything and the other is not; asides left out.
pub fn differ(a: &Text, b: &Text) -> bool {
    super::ignoring_chatter(a, b, differ_in)
}

fn differ_in(a: &Text, b: &Text) -> bool {
    let (oa, ob) = (owners(a), owners(b));
    (!oa.is_empty() && !ob.is_empty() && oa != ob)
        || beneficiaries_differ(a, b)
        || periods(a) != periods(b)
        || weekdays_differ(a, b)
        || rates_differ(a, b)
        || universal_differs(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> bool {
        differ(&Text::new(a), &Text::new(b))
    }

    #[test]
    fn changed_scope_conflicts() {
        assert!(d(
            "How do I close my account?",
            "How do I close my son's account?"
        ));
        assert!(d("Show my expenses", "Show their expenses"));
        assert!(d(
            "What was our revenue this year?",
            "What was our revenue last year?"
        ));
        assert!(d("How do I delete a photo?", "How do I delete all photos?"));
        assert!(d("Is the pool open today?", "Is the pool open tomorrow?"));
        assert!(d(
            "Is the museum open next Friday?",
            "Is the museum open this Friday?"
        ));
        assert!(d(
            "How many grams of protein should I eat per day?",
            "How many grams of protein should I eat per meal?"
        ));
        assert!(d("What's the daily limit?", "What's the monthly limit?"));
        assert!(d("Can I bring my dog?", "Can I bring my kids?"));
    }

    #[test]
    fn kept_scope_does_not() {
        assert!(!d(
            "How do I close my account?",
            "How can I close my account"
        ));
        assert!(!d(
            "How do I reset my password?",
            "How do you reset your password?"
        ));
        assert!(!d(
            "What was revenue last year?",
            "What was the revenue in the previous year?"
        ));
        assert!(!d("Delete all my photos", "Remove every photo of mine"));
        assert!(!d(
            "Is the museum open this Friday?",
            "Is the museum open on Friday?"
        ));
        assert!(!d(
            "How much water should a dog drink a day?",
            "How much water does a dog need daily?"
        ));
        assert!(!d(
            "How much protein per day?",
            "How much protein should I eat?"
        ));
        assert!(!d(
            "Why is my Wi-Fi slow in the evenings?",
            "Why does my wifi slow down every evening?"
        ));
        assert!(!d(
            "How many vacation days do new employees get?",
            "What's the leave allowance for new employees?"
        ));
    }

    #[test]
    fn owned_groups_change_the_scope() {
        assert!(d(
            "How many vacation days do I have left?",
            "How many vacation days does my team have left?"
        ));
        assert!(!d(
            "How do I contact customer support?",
            "How do I reach support?"
        ));
        assert!(!d(
            "Can I deduct my company's phone bill?",
            "Can I deduct my business phone bill?"
        ));
        assert!(!d(
            "Can my kid fly alone at 12?",
            "Can my child fly alone at 12?"
        ));
        assert!(!d(
            "How do I move on from someone who ghosted me?",
            "How do I move on from a person who ghosted me?"
        ));
        assert!(!d(
            "What are mammals and reptiles? Name two of each.",
            "What are mammals and reptiles? Name two."
        ));
        assert!(d(
            "Can my kid fly alone at 12?",
            "Can my niece fly alone at 12?"
        ));
        assert!(d("Can my mum get a pass?", "Can my dad get a pass?"));
        assert!(d(
            "Can I deduct my company's phone bill?",
            "Can I deduct my family's phone bill?"
        ));
        assert!(!d(
            "How do I add someone to the family plan?",
            "How do I add someone to my family plan?"
        ));
        assert!(d(
            "How do I add someone to the family plan?",
            "How do I add someone to their family plan?"
        ));
        assert!(d(
            "Can I change the team's billing address?",
            "Can I change my company's billing address?"
        ));
    }

    #[test]
    fn asides_do_not_set_the_scope() {
        assert!(!d(
            "Hold on, my cat just knocked a glass over. Where can I recycle batteries?",
            "Where can I recycle batteries?"
        ));
        assert!(!d(
            "Cheers, you saved my weekend last time! Which plug does my kettle need?",
            "Which plug does my kettle need?"
        ));
        // Whose the question is, said in a sentence of its own, is not an aside.
        assert!(d(
            "Where can I renew a passport? It's for my daughter.",
            "Where can I renew a passport?"
        ));
        assert!(d(
            "My husband lost his passport. Where can he renew it?",
            "I lost my passport. Where can I renew it?"
        ));
    }

    #[test]
    fn all_over_what_the_other_names_alike_is_the_same_scope() {
        assert!(!d(
            "Which are all the tallest mountains in Europe?",
            "Which are the tallest mountains in Europe?"
        ));
        assert!(!d(
            "Do airlines weigh all their carry-on bags?",
            "Do airlines weigh their carry-on bags?"
        ));
        // Something else counted: one item, other words before it, someone's.
        assert!(d("How do I archive all chats?", "How do I archive a chat?"));
        assert!(d(
            "Mute all the notifications on the phone.",
            "Mute the calendar notifications on the phone."
        ));
        assert!(d("List all open invoices.", "List my open invoices."));
    }

    #[test]
    fn all_in_an_idiom_counts_nothing() {
        assert!(!d(
            "What is compound interest all about?",
            "What is compound interest?"
        ));
        assert!(!d(
            "Why is my cat sneezing all the time?",
            "Why is my cat sneezing?"
        ));
        assert!(d(
            "Why are all my cats sneezing?",
            "Why is my cat sneezing?"
        ));
    }
}
