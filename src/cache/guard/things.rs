//! Things: "How do I get rid of ants in the kitchen?" is not "... in the garden?", nor "Why is my
//! phone overheating?" "Why is my laptop overheating?". Names are the `names` family's; this
//! one reads the common nouns that no list could hold, through WordNet: two texts the same word
//! for word but for one noun, where the two nouns name different things. Nouns that share a
//! sense ("couch" / "sofa") or of which one is a kind of the other ("car" / "vehicle") are the
//! same thing said another way.
//!
//! Only a one-word swap in an otherwise identical question is read: with more words changed,
//! the rewording itself says nothing about which word carries the meaning. So is one noun
//! added after another at the end of a phrase: "my router" is not "my router password".
//! Without WordNet installed (see [`super::wordnet::install`]) the family finds nothing.

use super::text::{Text, Word};
use super::wordnet::{self, Place, WordNet};

/// Words after which a word is a noun: "the kitchen", "many mice", "for cars".
const BEFORE_NOUNS: &[&str] = &[
    "the", "a", "an", "my", "your", "his", "her", "its", "our", "their", "this", "that", "these",
    "those", "some", "any", "many", "much", "few", "several", "each", "every", "no", "all", "both",
    "in", "on", "at", "for", "of", "with", "from", "into", "about", "without",
];

/// Words after which a word is a verb: "he land", "did not land", "to land", "can rat".
const BEFORE_VERBS: &[&str] = &[
    "i", "you", "he", "she", "it", "we", "they", "to", "not", "never", "do", "does", "did", "can",
    "could", "will", "would", "shall", "should", "may", "might", "must",
];

/// Conflict when one noun is swapped for another ([`swapped_noun`]) or added at the end of a
/// noun ([`added_noun`]).
pub fn differ(a: &Text, b: &Text) -> bool {
    let Some(wordnet) = wordnet::installed() else {
        return false;
    };
    swapped_noun(wordnet, a, b) || added_noun(wordnet, a, b) || added_noun(wordnet, b, a)
}

/// Whether `longer` is `shorter` with one noun added right after a noun, at the end of its
/// phrase: "reset my router" / "reset my router password", "treat acne" / "treat acne scars",
/// "knowledge management" / "knowledge management system". The added word names what is asked
/// about; the noun before it only says which one. A name added ("in Kolkata, India") is the
/// `names` family's, and a word in -ed or -ing more often a verb's than a noun.
fn added_noun(wordnet: &WordNet, longer: &Text, shorter: &Text) -> bool {
    let (long, short) = (&longer.words, &shorter.words);
    if long.len() != short.len() + 1 {
        return false;
    }
    let at = long
        .iter()
        .zip(short)
        .take_while(|(x, y)| x.lower == y.lower)
        .count();
    let rest_matches = long[at + 1..]
        .iter()
        .zip(&short[at..])
        .all(|(x, y)| x.lower == y.lower);
    if at == 0 || !rest_matches {
        return false;
    }
    let (before, added) = (&long[at - 1], &long[at]);
    let ends_phrase = long.get(at + 1).is_none_or(|next| !next.is_content());
    let noun_like = |w: &Word| {
        w.is_content()
            && !w.name_like
            && !w.lower.ends_with("ed")
            && !w.lower.ends_with("ing")
            && wordnet.is_noun(&w.lower, Place::Unknown)
    };
    ends_phrase && before.sentence == added.sentence && noun_like(before) && noun_like(added)
}

/// Whether the texts differ in exactly one word, both words are content words (not
/// names) read as nouns, and WordNet holds them for different things. After a pronoun, "to"
/// or an auxiliary a word is a verb and left alone; where it stands otherwise says how much of
/// a noun it must be (see [`Place`]).
fn swapped_noun(wordnet: &WordNet, a: &Text, b: &Text) -> bool {
    if a.words.len() != b.words.len() {
        return false;
    }
    let mut swapped = (0..a.words.len()).filter(|&i| a.words[i].lower != b.words[i].lower);
    let (Some(at), None) = (swapped.next(), swapped.next()) else {
        return false;
    };
    let (x, y) = (&a.words[at], &b.words[at]);
    let before = (at > 0).then(|| a.words[at - 1].lower.as_str());
    if before.is_some_and(|w| BEFORE_VERBS.contains(&w)) {
        return false;
    }
    let after_determiner = before.is_some_and(|w| BEFORE_NOUNS.contains(&w));
    let before_content = a.words.get(at + 1).is_some_and(|next| next.is_content());
    let place = match (after_determiner, before_content) {
        (true, false) => Place::Noun,
        (true, true) => Place::BeforeNoun,
        (false, _) => Place::Unknown,
    };
    !x.name_like
        && !y.name_like
        && x.is_content()
        && y.is_content()
        && x.stem != y.stem
        && wordnet.different_things(&x.lower, &y.lower, place) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EmbedConfig;

    fn d(a: &str, b: &str) -> bool {
        wordnet::install(&EmbedConfig::default().assets_dir)
            .expect("WordNet (run scripts/setup.sh and export CACHET_ASSETS_DIR)");
        differ(&Text::new(a), &Text::new(b))
    }

    #[test]
    fn a_different_thing_in_the_same_place_conflicts() {
        assert!(d(
            "How do I get rid of ants in the kitchen?",
            "How do I get rid of ants in the garden?"
        ));
        assert!(d(
            "Why is my phone overheating?",
            "Why is my laptop overheating?"
        ));
        assert!(d(
            "How do I clean a leather couch?",
            "How do I clean a fabric couch?"
        ));
        assert!(d(
            "Does the hotel have parking for cars?",
            "Does the hotel have parking for motorcycles?"
        ));
        assert!(d(
            "How many mice live in a house?",
            "How many rats live in a house?"
        ));
    }

    #[test]
    fn a_noun_added_after_a_noun_is_another_thing() {
        assert!(d(
            "How do I reset my router?",
            "How do I reset my router password?"
        ));
        assert!(d("How do you treat acne scars?", "How do you treat acne?"));
        // Not a noun added at the end of a phrase: a modifier, a name, a verb form.
        assert!(!d(
            "How do I record a call?",
            "How do I record a video call?"
        ));
        assert!(!d(
            "What are the best art exhibitions in Kolkata?",
            "What are the best art exhibitions in Kolkata, India?"
        ));
        assert!(!d(
            "What is the temple on the flag?",
            "What is the temple featured on the flag?"
        ));
        assert!(!d(
            "How do I reset my router?",
            "How do I reset my router quickly?"
        ));
    }

    #[test]
    fn the_same_thing_said_another_way_does_not() {
        assert!(!d(
            "How do I clean a leather couch?",
            "How do I clean a leather sofa?"
        ));
        assert!(!d("Can I park my car here?", "Can I park my vehicle here?"));
        assert!(!d("Can I park my car here?", "Can I park my cars here?"));
        assert!(!d("How do I clean my couch?", "How do I clean my couch!"));
        // Not mostly nouns: verbs, adjectives and function words are other families' business.
        assert!(!d(
            "Why did he land on the moon?",
            "Why did he step on the moon?"
        ));
        assert!(!d(
            "How do I invest my money?",
            "How can I invest my money?"
        ));
        assert!(!d("Is it good to quit?", "Is it okay to quit?"));
        assert!(!d(
            "What is the best movie of 2016?",
            "What is the top movie of 2016?"
        ));
        assert!(!d(
            "Any good songs to run to?",
            "Any great songs to run to?"
        ));
        // More than one word changed, or names: not this family's to judge.
        assert!(!d(
            "How do I get rid of ants in the kitchen?",
            "How can I get rid of ants in my garden?"
        ));
        assert!(!d("How do I get to Paris?", "How do I get to Rome?"));
    }
}
