//! Typo repair against an English word list and the model's own vocabulary, before embedding.
//!
//! A misspelt word falls apart into word pieces the model never saw together ("cancle" →
//! "can", "##cle"), and one typo can drop a paraphrase's similarity from 0.9 to 0.3. A word
//! that neither the word list nor the vocabulary knows is replaced by a known word one edit
//! away (a letter dropped, added, changed or two swapped): the likeliest kind of edit first,
//! and within it the most frequent common word, when it clearly leads. Both the stored
//! chat and the new one are repaired the same way, and the guards still read the original text.
//!
//! The word list is pyspellchecker's English word frequencies (160,000 words counted in
//! subtitles, MIT), fetched by `scripts/setup.sh`. The model's vocabulary alone lacks many
//! everyday words ("refund", "warranty", "unblock" are split into pieces), so it could not
//! repair "refnud" or "unblok".

use std::collections::HashMap;
use std::io::Read;

/// Shorter words have too many neighbours one edit away to guess from.
const MIN_LEN: usize = 4;

/// How much more frequent than the runner-up a repair must be: "efects" is "effects", not
/// "defects", only because "effects" is far more common.
const CLEAR_LEAD: u64 = 3;

/// The fewest times a word must occur in the list to be a repair (the list counts every word
/// at least 50 times; "printer" 2,514, "roommate" 10,115, "postures" 187).
const MIN_COUNT: u64 = 500;

pub struct Vocabulary {
    /// Known words and how often each occurs (0 for words only the model's vocabulary has).
    counts: HashMap<String, u64>,
}

impl Vocabulary {
    /// The whole words of a WordPiece `tokenizer.json` (pieces starting `##` left out) and the
    /// words of a gzipped JSON object of word counts (`{"the": 76138318, ...}`).
    pub fn load(tokenizer_json: &[u8], word_counts_json_gz: &[u8]) -> Result<Self, String> {
        let parsed: serde_json::Value =
            serde_json::from_slice(tokenizer_json).map_err(|e| format!("tokenizer.json: {e}"))?;
        let vocab = parsed
            .get("model")
            .and_then(|m| m.get("vocab"))
            .and_then(|v| v.as_object())
            .ok_or("tokenizer.json has no WordPiece vocabulary")?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(word_counts_json_gz)
            .read_to_end(&mut json)
            .map_err(|e| format!("word list: {e}"))?;
        let mut counts: HashMap<String, u64> =
            serde_json::from_slice(&json).map_err(|e| format!("word list: {e}"))?;
        counts.retain(|w, _| w.chars().all(|c| c.is_ascii_lowercase()));
        for word in vocab.keys() {
            if word.chars().all(|c| c.is_ascii_lowercase()) {
                counts.entry(word.clone()).or_insert(0);
            }
        }
        Ok(Self { counts })
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
        if lower.len() < MIN_LEN || self.counts.contains_key(&lower) {
            return None;
        }
        // The likeliest kind of slip first: two letters swapped, then one dropped or doubled,
        // then one mistyped. Within a kind, the most frequent word if it clearly leads; else
        // there is no telling, and no repair. A name the list lacks ("Postgres") is often one
        // edit from a rare word ("postures"), a typo of an everyday word one edit from a
        // common one: only common words, or words of the model's vocabulary, are repairs.
        for kind in one_edit(&lower) {
            let mut found: Vec<(u64, String)> = kind
                .filter_map(|c| {
                    let count = *self.counts.get(&c)?;
                    (count == 0 || count >= MIN_COUNT).then_some((count, c))
                })
                .collect();
            found.sort_unstable_by(|a, b| b.cmp(a));
            found.dedup();
            match found.as_slice() {
                [] => continue,
                [(_, only)] => return Some(only.clone()),
                [(best, word), (second, _), ..] if *best > 0 && *best >= CLEAR_LEAD * second => {
                    return Some(word.clone())
                }
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
        let counted = [
            ("how", 900_000),
            ("do", 900_000),
            ("cancel", 5_000),
            ("candle", 3_000),
            ("uncle", 20_000),
            ("my", 900_000),
            ("subscription", 4_000),
            ("change", 40_000),
            ("address", 9_000),
            ("the", 9_000_000),
            ("effects", 2_000),
            ("defects", 300),
            ("affects", 1_500),
            ("trunk", 1_000),
            ("ten", 30_000),
            ("tea", 8_000),
            ("postures", 187),
        ];
        let mut counts: HashMap<String, u64> =
            counted.iter().map(|(w, n)| (w.to_string(), *n)).collect();
        // Words only the model's vocabulary has.
        for word in ["i", "delivery", "cable", "table"] {
            counts.insert(word.into(), 0);
        }
        Vocabulary { counts }
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
    fn the_clearly_most_frequent_neighbour_wins() {
        let v = vocabulary();
        // "effects" (2,000) against "defects" (300): a clear lead.
        assert_eq!(v.repair("side efects"), "side effects");
        // "cable" or "table", both uncounted: no telling.
        assert_eq!(v.repair("the xable"), "the xable");
        // "postures" is too rare to be what "Postgres" meant.
        assert_eq!(v.repair("Postgres"), "Postgres");
    }

    #[test]
    fn known_short_and_unguessable_words_are_kept() {
        let v = vocabulary();
        assert_eq!(
            v.repair("Order 48213: metformin, teh"),
            "Order 48213: metformin, teh"
        );
    }

    #[test]
    fn loads_the_tokenizer_vocabulary_and_the_word_counts() {
        use std::io::Write;
        let tokenizer = br###"{"model": {"vocab": {"[CLS]": 101, "refund": 5, "##nd": 6}}}"###;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"{"warranty": 776, "Paris": 10}"#).unwrap();
        let v = Vocabulary::load(tokenizer, &gz.finish().unwrap()).unwrap();
        assert_eq!(v.repair("refnud waranty"), "refund warranty");
        assert!(Vocabulary::load(b"{}", b"not gzip").is_err());
    }
}
