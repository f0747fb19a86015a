//! A text cut into words once, for all guard families to read.

use std::collections::HashSet;

/// One word of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Lower-cased, apostrophes dropped ("don't" became "do" + "not").
    pub lower: String,
    /// `lower` without a common inflection ("closed" → "close", "bans" → "ban").
    pub stem: String,
    /// Written like a name: capitalised away from the start of a sentence, an inner capital
    /// ("iPhone"), or an acronym ("AWS").
    pub name_like: bool,
    /// Which sentence of the text the word is in, counting from 0.
    pub sentence: usize,
    /// Said in passing: inside parentheses ("(TV series)"), or in a short heading the
    /// question follows ("Travel in Peru: ...").
    pub gloss: bool,
}

impl Word {
    /// Whether the word carries a subject of its own: not a function word, not two letters.
    pub fn is_content(&self) -> bool {
        self.lower.chars().count() > 2 && !FUNCTION_WORDS.contains(&self.lower.as_str())
    }
}

/// The words of a text, in order.
#[derive(Debug, Clone, Default)]
pub struct Text {
    pub words: Vec<Word>,
    /// Per sentence, whether it ends with a question mark.
    questions: Vec<bool>,
    /// The same words as sets, for the many membership questions the families ask.
    lowers: HashSet<String>,
    stems: HashSet<String>,
    bigrams: HashSet<String>,
}

impl Text {
    pub fn new(text: &str) -> Self {
        let mut words = Vec::new();
        let mut questions = vec![false];
        let mut sentence_start = true;
        let mut in_parentheses = false;
        let mut heading = None;
        for raw in canonical_holidays(canonical_times(split_tokens(text))) {
            match raw.as_str() {
                "(" | ")" => {
                    in_parentheses = raw == "(";
                    continue;
                }
                "." | "!" | "?" | ":" | "\n" => {
                    if !sentence_start {
                        if questions.len() == 1 && raw == ":" {
                            heading = Some(words.len());
                        }
                        *questions.last_mut().expect("one sentence at least") = raw == "?";
                        questions.push(false);
                    }
                    sentence_start = true;
                    continue;
                }
                _ => {}
            }
            for (lower, original) in expand_contraction(&raw) {
                let name_like = looks_like_name(&original, sentence_start);
                words.push(Word {
                    stem: stem(&lower),
                    lower,
                    name_like,
                    sentence: questions.len() - 1,
                    gloss: in_parentheses,
                });
            }
            sentence_start = false;
        }
        // "Marathi poets: which is your best poem?": a heading of a few words, then a question.
        if let Some(end) =
            heading.filter(|&end| end <= MAX_HEADING && questions.get(1) == Some(&true))
        {
            words[..end].iter_mut().for_each(|w| w.gloss = true);
        }
        Self::from_words(words, questions)
    }

    fn from_words(words: Vec<Word>, questions: Vec<bool>) -> Self {
        Self {
            questions,
            lowers: words.iter().map(|w| w.lower.clone()).collect(),
            stems: words.iter().map(|w| w.stem.clone()).collect(),
            bigrams: words
                .windows(2)
                .map(|w| format!("{} {}", w[0].lower, w[1].lower))
                .collect(),
            words,
        }
    }

    /// Whether the word at `index` opens its sentence.
    pub fn opens_sentence(&self, index: usize) -> bool {
        index == 0 || self.words[index - 1].sentence != self.words[index].sentence
    }

    /// Whether the sentence numbered `sentence` ends with a question mark.
    pub fn is_question(&self, sentence: usize) -> bool {
        self.questions.get(sentence).copied().unwrap_or(false)
    }

    /// The text without its chatter: the sentences that ask nothing and share no content word
    /// with `other` ("Sorry, my dog is barking.", "Good call, hadn't thought of that."). Whose
    /// or what such a sentence talks about is not what the question is about. A sentence that
    /// says whom the question is for ("It's for my son.") is never chatter, and neither is a
    /// text's only sentence or a text made only of such sentences.
    pub fn without_chatter(&self, other: &Text) -> Option<Text> {
        let sentences = self.words.last().map_or(0, |w| w.sentence + 1);
        if sentences < 2 {
            return None;
        }
        let chatter: Vec<usize> = (0..sentences)
            .filter(|&s| !self.is_question(s) && self.is_aside(s, other))
            .collect();
        if chatter.is_empty() || chatter.len() == sentences {
            return None;
        }
        let words = self
            .words
            .iter()
            .filter(|w| !chatter.contains(&w.sentence))
            .cloned()
            .collect();
        Some(Self::from_words(words, self.questions.clone()))
    }

    /// Whether sentence `s` has content words, shares none of them with `other`, and names no
    /// one it is for. A bare "Yes." or "No." answers something: it is not an aside.
    fn is_aside(&self, s: usize, other: &Text) -> bool {
        let words: Vec<&Word> = self.words.iter().filter(|w| w.sentence == s).collect();
        let for_someone = words
            .windows(2)
            .any(|w| w[0].lower == "for" && FOR_WHOM.contains(&w[1].lower.as_str()));
        let mut content = words.iter().filter(|w| w.is_content()).peekable();
        !for_someone
            && content.peek().is_some()
            && content.all(|w| !other.has(&w.lower) && !other.has_stem(&w.stem))
    }

    pub fn has(&self, lower: &str) -> bool {
        self.lowers.contains(lower)
    }

    pub fn has_stem(&self, stem: &str) -> bool {
        self.stems.contains(stem)
    }

    /// Whether two adjacent words read `pair` ("last year").
    pub fn has_bigram(&self, pair: &str) -> bool {
        self.bigrams.contains(pair)
    }

    /// Every spelling of the words: as written (lower-cased) and stemmed.
    pub fn spellings(&self) -> impl Iterator<Item = &String> {
        self.lowers.iter().chain(&self.stems)
    }
}

/// The most words a heading before a question has ("Travel in Peru: ...").
const MAX_HEADING: usize = 4;

/// Words that say whom something is for, after "for": "for my son", "for her".
const FOR_WHOM: &[&str] = &[
    "my", "our", "your", "his", "her", "their", "him", "them", "us", "someone",
];

/// Words that carry no subject of their own: a sentence made of these and words the other
/// text lacks is an aside.
const FUNCTION_WORDS: &[&str] = &[
    "the", "and", "but", "for", "with", "this", "that", "these", "those", "there", "here", "then",
    "than", "just", "also", "too", "very", "really", "about", "from", "into", "onto", "what",
    "which", "who", "when", "where", "why", "how", "can", "could", "would", "should", "will",
    "shall", "may", "might", "must", "does", "did", "have", "has", "had", "was", "were", "are",
    "been", "being", "not", "you", "your", "yours", "she", "her", "him", "his", "they", "them",
    "their", "our", "ours", "its", "any", "all", "some", "one", "get", "got", "like", "know",
    "think", "thought", "say", "says", "said", "want", "need", "make", "yes", "okay", "well",
    "now", "still", "yet", "again", "anyway", "though", "mine", "myself", "thanks", "thank",
    "please", "sorry",
];

/// Currency and percent signs: tokens of their own, read by the quantities family.
const SYMBOLS: &[char] = &['$', '€', '£', '¥', '₹', '%'];

/// Words, numbers (with their decimal point) and sentence punctuation, in order.
fn split_tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        // "1,200" is 1200: a comma before exactly three digits groups thousands (a decimal
        // comma, "3,50", keeps its two).
        let thousands = c == ','
            && current.chars().last().is_some_and(|p| p.is_ascii_digit())
            && chars
                .get(i + 1..i + 4)
                .is_some_and(|n| n.iter().all(char::is_ascii_digit))
            && !chars.get(i + 4).is_some_and(char::is_ascii_digit);
        if thousands {
            continue;
        }
        // "38°C" and "°F": the degree sign opens its scale's unit ("°c"), not a separate name "C".
        if c == '°'
            && chars
                .get(i + 1)
                .is_some_and(|n| matches!(n, 'C' | 'c' | 'F' | 'f'))
        {
            flush(&mut current, &mut tokens);
            current.push(c);
            continue;
        }
        // "3.50", "3,50" and "21:00" stay one token, and so does "km/h".
        let inner_point = (matches!(c, '.' | ',' | ':')
            && current.chars().last().is_some_and(|p| p.is_ascii_digit())
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()))
            || (c == '/'
                && current.chars().last().is_some_and(|p| p.is_alphabetic())
                && chars.get(i + 1).is_some_and(|n| n.is_alphabetic()));
        let apostrophe = (c == '\'' || c == '’') && !current.is_empty();
        // "Wi-Fi" and "e-mail" are one word, written without the hyphen.
        // "two-year-old" is not: numbers and units stay words of their own.
        let joining_hyphen = c == '-'
            && current.chars().last().is_some_and(|p| p.is_alphabetic())
            && !super::quantities::is_number_word(&current)
            && !super::quantities::is_unit(&current.to_lowercase())
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic());
        if joining_hyphen {
            continue;
        }
        if SYMBOLS.contains(&c) || c == '(' || c == ')' {
            flush(&mut current, &mut tokens);
            tokens.push(c.to_string());
        } else if c.is_alphanumeric() || inner_point || apostrophe {
            current.push(match c {
                ',' => '.',
                '’' => '\'',
                other => other,
            });
        } else {
            flush(&mut current, &mut tokens);
            if matches!(c, '.' | '!' | '?' | ':' | '\n') {
                tokens.push(c.to_string());
            }
        }
    }
    flush(&mut current, &mut tokens);
    tokens
}

fn flush(current: &mut String, tokens: &mut Vec<String>) {
    let word = current.trim_end_matches('\'');
    if !word.is_empty() {
        tokens.push(word.to_string());
    }
    current.clear();
}

/// Holidays on a fixed date, as that date: "Christmas Day" is "December 25th", "New Year's
/// Eve" is "31 December".
const HOLIDAYS: &[(&[&str], [&str; 2])] = &[
    (&["christmas", "eve"], ["December", "24"]),
    (&["xmas", "eve"], ["December", "24"]),
    (&["christmas", "day"], ["December", "25"]),
    (&["xmas", "day"], ["December", "25"]),
    (&["christmas"], ["December", "25"]),
    (&["xmas"], ["December", "25"]),
    (&["boxing", "day"], ["December", "26"]),
    (&["new", "year's", "eve"], ["December", "31"]),
    (&["new", "years", "eve"], ["December", "31"]),
    (&["new", "year's", "day"], ["January", "1"]),
    (&["new", "years", "day"], ["January", "1"]),
    (&["valentine's", "day"], ["February", "14"]),
    (&["valentines", "day"], ["February", "14"]),
    (&["halloween"], ["October", "31"]),
];

fn canonical_holidays(tokens: Vec<String>) -> Vec<String> {
    let lower: Vec<String> = tokens.iter().map(|t| t.to_lowercase()).collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let holiday = HOLIDAYS
            .iter()
            .find(|(words, _)| lower.get(i..i + words.len()).is_some_and(|at| at == *words));
        match holiday {
            Some((words, date)) => {
                out.extend(date.iter().map(|w| w.to_string()));
                i += words.len();
            }
            None => {
                out.push(tokens[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// Clock times in one spelling: "9pm", "9 pm", "9:00 p.m." and "21:00" all become "21:00",
/// "half past seven" and "7:30" both "07:30".
fn canonical_times(tokens: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if let Some((hour, minute, used)) = spoken_clock(&tokens[i..]) {
            let trailing = suffix_after(&tokens[i + used..], Some(hour));
            let suffix = trailing.as_ref().map(|(suffix, _)| suffix.as_str());
            out.push(clock_token(hour, minute, suffix));
            i += used + trailing.map_or(0, |(_, words)| words);
            continue;
        }
        let token = tokens[i].to_lowercase();
        let (clock, glued) = match token
            .strip_suffix("am")
            .or_else(|| token.strip_suffix("pm"))
        {
            Some(clock) if !clock.is_empty() => {
                (clock.to_string(), Some(token[clock.len()..].to_string()))
            }
            _ => (token.clone(), None),
        };
        let trailing = match glued {
            None => suffix_after(&tokens[i + 1..], parse_clock(&clock).map(|(hour, _)| hour)),
            Some(_) => None,
        };
        let suffix = glued.or_else(|| trailing.as_ref().map(|(suffix, _)| suffix.clone()));
        match parse_clock(&clock) {
            Some((hour, minute)) if suffix.is_some() || clock.contains(':') => {
                out.push(clock_token(hour, minute, suffix.as_deref()));
                i += 1 + trailing.map_or(0, |(_, words)| words);
            }
            _ => {
                out.push(tokens[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// The "am" or "pm" the words after a clock time give, and how many words that takes: "pm"
/// (1), "in the evening" (3) after an hour from 1 to 12.
fn suffix_after(after: &[String], hour: Option<u32>) -> Option<(String, usize)> {
    match after.first().map(|t| t.to_lowercase()) {
        Some(suffix) if suffix == "am" || suffix == "pm" => Some((suffix, 1)),
        _ => part_of_day(after, hour).map(|(suffix, words)| (suffix.to_string(), words)),
    }
}

/// "21:00" for 9 and "pm", "00:30" for 12:30 and "am".
fn clock_token(hour: u32, minute: u32, suffix: Option<&str>) -> String {
    let hour = match suffix {
        Some("pm") if hour < 12 => hour + 12,
        Some("am") if hour == 12 => 0,
        _ => hour,
    };
    format!("{hour:02}:{minute:02}")
}

/// "half past seven" (7:30), "a quarter past nine" (9:15), "quarter to eight" (7:45): the hour,
/// the minute and how many words it takes. The hour is a digit or a word, one to twelve.
fn spoken_clock(tokens: &[String]) -> Option<(u32, u32, usize)> {
    const HOURS: &[&str] = &[
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve",
    ];
    let words: Vec<String> = tokens.iter().take(4).map(|t| t.to_lowercase()).collect();
    let article = usize::from(words.first().is_some_and(|w| w == "a"));
    let phrase: Vec<&str> = words[article..].iter().map(String::as_str).collect();
    let (minute, hour_word) = match phrase.as_slice() {
        ["half", "past", hour, ..] if article == 0 => (30, *hour),
        ["quarter", "past", hour, ..] => (15, *hour),
        ["quarter", "to", hour, ..] => (45, *hour),
        _ => return None,
    };
    let hour = HOURS
        .iter()
        .position(|h| *h == hour_word)
        .map(|at| at as u32 + 1)
        .or_else(|| hour_word.parse().ok())
        .filter(|h| (1..=12).contains(h))?;
    let hour = if minute == 45 {
        (hour + 10) % 12 + 1
    } else {
        hour
    };
    Some((hour, minute, article + 3))
}

/// "7 in the evening" is 7pm, "6 in the morning" 6am, "11 at night" 11pm: the suffix a part of
/// the day after an hour (1 to 12) stands for, and how many words it takes.
fn part_of_day(after: &[String], hour: Option<u32>) -> Option<(&'static str, usize)> {
    let hour = hour.filter(|h| (1..=12).contains(h))?;
    let words: Vec<String> = after.iter().take(3).map(|t| t.to_lowercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["in", "the", "morning", ..] => Some(("am", 3)),
        ["in", "the", "afternoon" | "evening", ..] => Some(("pm", 3)),
        ["at", "night", ..] if hour >= 6 => Some(("pm", 2)),
        ["at", "night", ..] => Some(("am", 2)),
        _ => None,
    }
}

fn parse_clock(text: &str) -> Option<(u32, u32)> {
    let (hour, minute) = match text.split_once(':') {
        Some((h, m)) => (h.parse().ok()?, m.parse().ok()?),
        None => (text.parse().ok()?, 0),
    };
    (hour <= 24 && minute < 60).then_some((hour, minute))
}

/// Words that say something is not done, before "to": "unable to log in" and "fails to boot"
/// are "can't log in" and "won't boot".
pub const NOT_DONE: &[&str] = &[
    "unable", "fail", "fails", "failed", "failing", "refuse", "refuses", "refused", "refusing",
];

/// Negative contractions as people type them without the apostrophe ("why doesnt it work"):
/// read as the contraction, since "dont" or "isnt" is nothing else. "cant" and "wont" are words
/// of their own too, but rare ones next to the contractions.
const NEGATIVES_WITHOUT_APOSTROPHE: &[&str] = &[
    "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "havent", "hasnt", "hadnt",
    "couldnt", "shouldnt", "wouldnt", "mustnt", "neednt",
];

/// "don't" → do + not, "can't"/"cannot" → can + not, "won't" → will + not, "it's" → it; the
/// same without the apostrophe ("doesnt", "cant").
fn expand_contraction(raw: &str) -> Vec<(String, String)> {
    let lower = raw.to_lowercase();
    let pair = |a: &str, b: &str| {
        vec![
            (a.to_string(), a.to_string()),
            (b.to_string(), b.to_string()),
        ]
    };
    match lower.as_str() {
        "cannot" | "can't" | "cant" => return pair("can", "not"),
        "won't" | "wont" => return pair("will", "not"),
        "shan't" => return pair("shall", "not"),
        _ => {}
    }
    let without_apostrophe = NEGATIVES_WITHOUT_APOSTROPHE
        .contains(&lower.as_str())
        .then(|| lower.strip_suffix("nt"))
        .flatten();
    if let Some(base) = lower.strip_suffix("n't").or(without_apostrophe) {
        let original = &raw[..base.len()];
        return vec![
            (base.to_string(), original.to_string()),
            ("not".into(), "not".into()),
        ];
    }
    // Possessives and short forms: "company's" → company, "it's" → it, "I'm" → i.
    match lower.find('\'') {
        Some(at) => vec![(lower[..at].to_string(), raw[..at].to_string())],
        None => vec![(lower, raw.to_string())],
    }
}

fn looks_like_name(original: &str, sentence_start: bool) -> bool {
    let mut chars = original.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest: Vec<char> = chars.collect();
    let letters = original.chars().filter(|c| c.is_alphabetic()).count();
    let acronym = letters >= 2 && original.chars().all(|c| !c.is_lowercase());
    let inner_capital =
        rest.iter().any(|c| c.is_uppercase()) && rest.iter().any(|c| c.is_lowercase());
    let capitalised = first.is_uppercase() && rest.iter().all(|c| !c.is_uppercase());
    if original == "I" || original.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    acronym || inner_capital || (capitalised && !sentence_start)
}

/// A light stemmer: enough for cue lists to match inflected forms, not a linguistic one.
pub fn stem(word: &str) -> String {
    let w = word;
    let n = w.chars().count();
    for (suffix, min_len, replacement) in [
        ("ies", 5, "y"),
        ("ing", 6, ""),
        ("ed", 5, ""),
        ("es", 5, ""),
        ("s", 4, ""),
    ] {
        if n >= min_len && w.ends_with(suffix) && !w.ends_with("ss") {
            let mut base = w[..w.len() - suffix.len()].to_string();
            base.push_str(replacement);
            // "closed" → "clos" → restore the silent e the cue lists use ("close").
            if (suffix == "ed" || suffix == "ing" || suffix == "es") && needs_e(&base) {
                base.push('e');
            }
            if suffix == "ed" || suffix == "ing" {
                undouble(&mut base);
            }
            return base;
        }
    }
    w.to_string()
}

/// Consonant-vowel-consonant endings that took an e before the suffix ("clos", "enabl", "allow"
/// no); "in" after a consonant too ("declin", "combin"; not "join", "explain").
fn needs_e(base: &str) -> bool {
    const E_ENDINGS: &[&str] = &[
        "os", "bl", "at", "iv", "ov", "ur", "uc", "ag", "ir", "ar", "us", "ac", "od", "id",
    ];
    let consonant_in = base
        .strip_suffix("in")
        .and_then(|rest| rest.chars().last())
        .is_some_and(|c| c.is_ascii_alphabetic() && !"aeiou".contains(c));
    (E_ENDINGS.iter().any(|e| base.ends_with(e)) || consonant_in) && !base.ends_with("ss")
}

/// "stopp" → "stop", "plann" → "plan".
fn undouble(base: &mut String) {
    let bytes = base.as_bytes();
    let n = bytes.len();
    if n >= 3
        && bytes[n - 1] == bytes[n - 2]
        && !matches!(bytes[n - 1], b'l' | b's' | b'z' | b'e' | b'o')
    {
        base.pop();
    }
}

/// True when `a` becomes `b` by at most one insertion, deletion, substitution or swap of
/// neighbours: the typos people make.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let skip = |s: &'_ [char], n: usize| s.get(n..).unwrap_or(&[]).to_vec();
    let swapped =
        a.len() >= 2 && b.len() >= 2 && a[0] == b[1] && a[1] == b[0] && skip(a, 2) == skip(b, 2);
    skip(a, 1) == skip(b, 1) || a == skip(b, 1).as_slice() || skip(a, 1).as_slice() == b || swapped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contractions_become_negations() {
        let t = Text::new("I can't log in and it doesn't work, won't retry");
        let words: Vec<&str> = t.words.iter().map(|w| w.lower.as_str()).collect();
        assert_eq!(
            words,
            [
                "i", "can", "not", "log", "in", "and", "it", "does", "not", "work", "will", "not",
                "retry"
            ]
        );
    }

    #[test]
    fn contractions_typed_without_apostrophe_are_negations_too() {
        let lowers = |text: &str| -> Vec<String> {
            Text::new(text).words.into_iter().map(|w| w.lower).collect()
        };
        assert_eq!(lowers("why doesnt it work"), lowers("why doesn't it work"));
        assert_eq!(
            lowers("I cant log in, it wont load"),
            lowers("I can't log in, it won't load")
        );
        assert_eq!(lowers("Isnt it open?"), ["is", "not", "it", "open"]);
        // Words that only end like one are left alone.
        assert_eq!(lowers("a font, a point"), ["a", "font", "a", "point"]);
    }

    #[test]
    fn names_are_told_from_sentence_starts() {
        let t = Text::new("Does the iPhone work in Paris? Yes. AWS too");
        let names: Vec<&str> = t
            .words
            .iter()
            .filter(|w| w.name_like)
            .map(|w| w.lower.as_str())
            .collect();
        assert_eq!(names, ["iphone", "paris", "aws"]);
    }

    #[test]
    fn stems_meet_the_cue_lists() {
        assert_eq!(stem("closed"), "close");
        assert_eq!(stem("enabled"), "enable");
        assert_eq!(stem("allowed"), "allow");
        assert_eq!(stem("stopping"), "stop");
        assert_eq!(stem("bans"), "ban");
        assert_eq!(stem("policies"), "policy");
        assert_eq!(stem("class"), "class");
        assert_eq!(stem("declining"), "decline");
        assert_eq!(stem("declined"), "decline");
        assert_eq!(stem("joining"), "join");
        assert_eq!(stem("explained"), "explain");
    }

    #[test]
    fn clock_times_have_one_spelling() {
        let times =
            |s: &str| -> Vec<String> { Text::new(s).words.into_iter().map(|w| w.lower).collect() };
        assert_eq!(times("at 9pm"), ["at", "21:00"]);
        assert_eq!(times("at 9 PM"), ["at", "21:00"]);
        assert_eq!(times("at 21:00"), ["at", "21:00"]);
        assert_eq!(times("2:30pm or 12am"), ["14:30", "or", "00:00"]);
        assert_eq!(times("I am 9 years old"), ["i", "am", "9", "years", "old"]);
        assert_eq!(times("at 7 in the evening"), ["at", "19:00"]);
        assert_eq!(times("at 6:30 in the morning"), ["at", "06:30"]);
        assert_eq!(times("11 at night or 2 at night"), ["23:00", "or", "02:00"]);
        assert_eq!(
            times("5 in the morning queue"),
            ["05:00", "queue"],
            "the words of the part of the day are the time's"
        );
        assert_eq!(
            times("gate 14 in the evening"),
            ["gate", "14", "in", "the", "evening"]
        );
    }

    #[test]
    fn spoken_clock_times_are_clock_times() {
        let times =
            |s: &str| -> Vec<String> { Text::new(s).words.into_iter().map(|w| w.lower).collect() };
        assert_eq!(times("at half past seven"), times("at 7:30"));
        assert_eq!(times("at a quarter past 9"), ["at", "09:15"]);
        assert_eq!(times("quarter to eight pm"), ["19:45"]);
        assert_eq!(times("quarter to one"), ["12:45"]);
        assert_eq!(times("half past ten in the evening"), ["22:30"]);
        // Not a time: no hour, or no clock hour.
        assert_eq!(times("half past midnight"), ["half", "past", "midnight"]);
        assert_eq!(times("a quarter to 40"), ["a", "quarter", "to", "40"]);
    }

    #[test]
    fn decimals_and_currency_symbols_are_tokens() {
        let t = Text::new("Is $3.50 or 3,50 € (5%) enough?");
        let words: Vec<&str> = t.words.iter().map(|w| w.lower.as_str()).collect();
        assert_eq!(
            words,
            ["is", "$", "3.50", "or", "3.50", "€", "5", "%", "enough"]
        );
    }

    #[test]
    fn sentences_are_numbered_and_questions_known() {
        let t = Text::new("Hi there! Is it raining? Tell me");
        let sentences: Vec<usize> = t.words.iter().map(|w| w.sentence).collect();
        assert_eq!(sentences, [0, 0, 1, 1, 1, 2, 2]);
        assert!(!t.is_question(0) && t.is_question(1) && !t.is_question(2));
        assert!(t.opens_sentence(2) && !t.opens_sentence(3));
    }

    #[test]
    fn chatter_is_what_shares_nothing_and_asks_nothing() {
        let other = Text::new("How do I descale my coffee machine?");
        let lean = Text::new(
            "Morning, the neighbours are drilling again. How do I descale my coffee machine?",
        )
        .without_chatter(&other)
        .expect("the first sentence is an aside");
        let words: Vec<&str> = lean.words.iter().map(|w| w.lower.as_str()).collect();
        assert_eq!(
            words,
            ["how", "do", "i", "descale", "my", "coffee", "machine"]
        );
        // Sharing a word, asking, being the only sentence, or a bare "No." keep a sentence.
        for text in [
            "The coffee machine beeps. How do I descale it?",
            "Is the neighbour drilling? How do I descale my coffee machine?",
            "Morning, the neighbours are drilling again.",
            "No. How do I descale my coffee machine?",
        ] {
            assert!(Text::new(text).without_chatter(&other).is_none(), "{text}");
        }
    }

    #[test]
    fn parentheses_and_headings_are_glosses() {
        let glosses = |s: &str| -> Vec<String> {
            Text::new(s)
                .words
                .into_iter()
                .filter(|w| w.gloss)
                .map(|w| w.lower)
                .collect()
        };
        assert_eq!(
            glosses("Is it safe (for a puppy) to swim?"),
            ["for", "a", "puppy"]
        );
        assert_eq!(
            glosses("Garden Birds: why do robins sing at night?"),
            ["garden", "birds"]
        );
        // Not a heading: too long, or no question after it.
        assert!(glosses("The thing my landlord said last week: can he do that?").is_empty());
        assert!(glosses("Note: the office is closed.").is_empty());
    }
}
