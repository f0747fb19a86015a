//! Typo repair against the model's own vocabulary, before embedding.
//!
//! A misspelt word falls apart into word pieces the model never saw together ("cancle" →
//! "can", "##cle"), and one typo can drop a paraphrase's similarity from 0.9 to 0.3. A word
//! the vocabulary lacks is replaced by the one vocabulary word a single edit away (a letter
//! dropped, added, changed or two swapped), when there is exactly one. Both the stored chat
//! and the new one are repaired the same way, and the guards still read the original text.

use std::collections::HashSet;

/// Shorter words have too many neighbours one edit away to guess from.
const MIN_LEN: usize = 4;

pub struct Vocabulary {
    words: HashSet<String>,
}

impl Vocabulary {
    /// The whole words of a WordPiece `tokenizer.json` (pieces starting `##` left out).
    pub fn from_tokenizer_json(json: &[u8]) -> Option<Self> {
        let parsed: serde_json::Value = serde_json::from_slice(json).ok()?;
        let vocab = parsed.get("model")?.get("vocab")?.as_object()?;
        let words = vocab
            .keys()
            .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()))
            .cloned()
            .collect();
        Some(Self { words })
    }

    /// `text` with each repairable typo replaced; everything else as it was.
    pub fn repair(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        for c in text.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_alphabetic() {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                match self.correction(&word) {
                    Some(fixed) => out.push_str(&fixed),
                    None => out.push_str(&word),
                }
                word.clear();
            }
            out.push(c);
        }
        out.pop(); // the space chained on above
        out
    }

    fn correction(&self, word: &str) -> Option<String> {
        let lower = word.to_ascii_lowercase();
        if lower.len() < MIN_LEN || self.words.contains(&lower) {
            return None;
        }
        // The likeliest kind of slip first: two letters swapped, then one dropped or doubled,
        // then one mistyped. Within a kind, two candidates mean no way to tell: no repair.
        for kind in one_edit(&lower) {
            let found: HashSet<String> = kind.filter(|c| self.words.contains(c)).collect();
            match found.len() {
                0 => continue,
                1 => return found.into_iter().next(),
                _ => return None,
            }
        }
        None
    }
}

/// The strings one edit away from `word`, grouped by kind of edit, likeliest kind first:
/// transpositions, deletions, insertions, substitutions.
fn one_edit(word: &str) -> [Box<dyn Iterator<Item = String> + '_>; 4] {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let bytes = word.as_bytes();
    let n = bytes.len();
    let splice = move |i: usize, skip: usize, insert: &[u8]| {
        let mut v = Vec::with_capacity(n + 1);
        v.extend_from_slice(&bytes[..i]);
        v.extend_from_slice(insert);
        v.extend_from_slice(&bytes[(i + skip).min(n)..]);
        String::from_utf8(v).unwrap_or_default()
    };
    [
        Box::new((0..n.saturating_sub(1)).map(move |i| splice(i, 2, &[bytes[i + 1], bytes[i]]))),
        Box::new((0..n).map(move |i| splice(i, 1, &[]))),
        Box::new((0..=n).flat_map(move |i| LETTERS.iter().map(move |l| splice(i, 0, &[*l])))),
        Box::new((0..n).flat_map(move |i| LETTERS.iter().map(move |l| splice(i, 1, &[*l])))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> Vocabulary {
        let words = [
            "how",
            "do",
            "i",
            "cancel",
            "candle",
            "uncle",
            "my",
            "subscription",
            "change",
            "delivery",
            "address",
            "the",
            "trunk",
            "ten",
            "tea",
        ];
        Vocabulary {
            words: words.iter().map(|w| w.to_string()).collect(),
        }
    }

    #[test]
    fn single_edit_typos_are_repaired() {
        let v = vocabulary();
        assert_eq!(
            v.repair("How do I cancle my subscripton?"),
            "How do I cancel my subscription?"
        );
        assert_eq!(
            v.repair("chnage the delivry adress"),
            "change the delivery address"
        );
    }

    #[test]
    fn known_short_and_unguessable_words_are_kept() {
        let v = vocabulary();
        assert_eq!(
            v.repair("Order 48213: metformin, teh"),
            "Order 48213: metformin, teh"
        );
    }
}
