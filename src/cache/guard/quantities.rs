//! Numbers, amounts, identifiers, versions and units: "order 48213" is not "order 48231",
//! "3.11" is not "3.12", "5 km" is not "5 miles", "$20" is not "€20".

use super::text::{Text, Word};
use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

/// Number words read as their digits, so "three nights" still matches "3 nights". "one" is left
/// out: far more often a pronoun ("which one is better?") than a count.
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
    ("dozen", "12"),
    ("half", "0.5"),
    ("twice", "2"),
];

/// Ordinal words read as their digits, so "the third president" matches "the 3rd president"
/// ("3rd" is 3). "first" and "second" are left out: more often "earliest" and a unit of time
/// than a place in a count.
const ORDINAL_WORDS: &[(&str, &str)] = &[
    ("third", "3"),
    ("fourth", "4"),
    ("fifth", "5"),
    ("sixth", "6"),
    ("seventh", "7"),
    ("eighth", "8"),
    ("ninth", "9"),
    ("tenth", "10"),
    ("eleventh", "11"),
    ("twelfth", "12"),
    ("thirteenth", "13"),
    ("fourteenth", "14"),
    ("fifteenth", "15"),
    ("sixteenth", "16"),
    ("seventeenth", "17"),
    ("eighteenth", "18"),
    ("nineteenth", "19"),
    ("twentieth", "20"),
    ("thirtieth", "30"),
    ("fortieth", "40"),
    ("fiftieth", "50"),
    ("hundredth", "100"),
];

/// Units and currencies, by their canonical name.
const UNITS: &[(&str, &[&str])] = &[
    ("usd", &["$", "usd", "dollar", "dollars", "buck", "bucks"]),
    ("eur", &["€", "eur", "euro", "euros"]),
    ("gbp", &["£", "gbp", "quid", "sterling"]),
    // Money or weight: whichever the other text names (see `differ`).
    ("pound", &["pound", "pounds"]),
    ("jpy", &["¥", "jpy", "yen"]),
    ("inr", &["₹", "inr", "rs", "rupee", "rupees"]),
    (
        "km",
        &[
            "km",
            "kms",
            "kilometer",
            "kilometers",
            "kilometre",
            "kilometres",
        ],
    ),
    ("mile", &["mi", "mile", "miles"]),
    ("m", &["meter", "meters", "metre", "metres"]),
    (
        "cm",
        &[
            "cm",
            "centimeter",
            "centimeters",
            "centimetre",
            "centimetres",
        ],
    ),
    ("mm", &["mm", "millimeter", "millimeters"]),
    ("inch", &["inch", "inches"]),
    ("ft", &["ft", "foot", "feet"]),
    (
        "kg",
        &["kg", "kgs", "kilo", "kilos", "kilogram", "kilograms"],
    ),
    ("g", &["gram", "grams"]),
    ("lb", &["lb", "lbs"]),
    ("oz", &["oz", "ounce", "ounces"]),
    ("l", &["liter", "liters", "litre", "litres"]),
    (
        "ml",
        &[
            "ml",
            "milliliter",
            "milliliters",
            "millilitre",
            "millilitres",
        ],
    ),
    ("gallon", &["gallon", "gallons", "gal"]),
    ("celsius", &["celsius", "°c", "centigrade"]),
    ("fahrenheit", &["fahrenheit", "°f"]),
    ("kb", &["kb", "kilobyte", "kilobytes"]),
    ("mb", &["mb", "megabyte", "megabytes"]),
    ("gb", &["gb", "gig", "gigs", "gigabyte", "gigabytes"]),
    ("tb", &["tb", "terabyte", "terabytes"]),
    ("mbps", &["mbps"]),
    ("gbps", &["gbps"]),
    ("second", &["sec", "secs", "second", "seconds"]),
    ("minute", &["min", "mins", "minute", "minutes"]),
    ("hour", &["hr", "hrs", "hour", "hours"]),
    ("day", &["day", "days"]),
    ("week", &["week", "weeks"]),
    ("fortnight", &["fortnight", "fortnights"]),
    ("month", &["month", "months"]),
    ("year", &["year", "years"]),
    ("night", &["night", "nights"]),
    ("percent", &["%", "percent", "percentage"]),
    ("cup", &["cup", "cups"]),
    ("tbsp", &["tbsp", "tablespoon", "tablespoons"]),
    ("tsp", &["tsp", "teaspoon", "teaspoons"]),
    ("mph", &["mph"]),
    ("kmh", &["kmh", "kph", "km/h"]),
    ("mg", &["mg", "milligram", "milligrams"]),
    ("calorie", &["calorie", "calories", "kcal"]),
    ("watt", &["watt", "watts", "w"]),
    ("volt", &["volt", "volts", "v"]),
];

/// Units of time are everyday nouns too ("vacation days", "every year"): they count as units
/// only right after a number ("3 days").
const TIME_UNITS: &[&str] = &[
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "fortnight",
    "month",
    "year",
    "night",
];

/// Units that are an exact multiple of another of their dimension, so that one amount written
/// in two units is one amount: "18 months" is "a year and a half", "two weeks" is "a
/// fortnight" or "14 days", "1.5 kg" is "1500 g". Metric and imperial are not converted: "5
/// km" against "3.1 miles" is rounded, and a question about one is seldom about the other.
/// Months are not days: a month has no fixed length.
const IN_BASE_UNITS: &[(&str, &str, f64)] = &[
    ("minute", "second", 60.0),
    ("hour", "second", 3_600.0),
    ("day", "second", 86_400.0),
    ("week", "second", 604_800.0),
    ("fortnight", "second", 1_209_600.0),
    ("year", "month", 12.0),
    ("km", "m", 1_000.0),
    ("cm", "m", 0.01),
    ("mm", "m", 0.001),
    ("kg", "g", 1_000.0),
    ("mg", "g", 0.001),
    ("l", "ml", 1_000.0),
    ("ft", "inch", 12.0),
    ("kb", "b", 1e3),
    ("mb", "b", 1e6),
    ("gb", "b", 1e9),
    ("tb", "b", 1e12),
];

/// The unit an amount is compared in, and how many of it one `unit` is.
fn in_base(unit: &'static str) -> (&'static str, f64) {
    IN_BASE_UNITS
        .iter()
        .find(|(from, _, _)| *from == unit)
        .map_or((unit, 1.0), |(_, base, factor)| (*base, *factor))
}

/// The value of `word` if it is an identifier, letters and digits mixed ("P0420", "E1042",
/// "0x7B" = "0x0000007B"), as the family compares it; `None` for plain numbers ("5km", "4th",
/// "50k").
pub fn identifier(word: &str) -> Option<String> {
    let thousands = word
        .strip_suffix(['k', 'm'])
        .is_some_and(|n| n.parse::<f64>().is_ok());
    quantity(word).filter(|value| !thousands && value.chars().any(|c| c.is_ascii_alphabetic()))
}

/// Whether `word` names a unit or currency (other families leave those to this one).
pub fn is_unit(word: &str) -> bool {
    unit_of(word).is_some()
}

fn unit_of(word: &str) -> Option<&'static str> {
    UNIT_NAMES.get(word).copied()
}

/// Every spelling of every unit, to its canonical name.
static UNIT_NAMES: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    UNITS
        .iter()
        .flat_map(|(unit, names)| names.iter().map(move |name| (*name, *unit)))
        .collect()
});

/// Whether `word` is a number spelled out ("two", "twelve"), as the tokenizer needs to know
/// to keep "two-year-old" apart.
pub fn is_number_word(word: &str) -> bool {
    NUMBER_WORDS
        .iter()
        .any(|(w, _)| w.eq_ignore_ascii_case(word))
}

fn is_number(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_digit())
        || NUMBER_WORDS.iter().any(|(w, _)| *w == word)
}

/// The value a token with digits stands for: a number ("48213", "3.50", "21:00" → 2100, "4th"
/// → 4, "5km" → 5, "007" → 7) or an identifier, compared whole ("E1042", "0x7B" = "0x0000007B",
/// "C02XK1ZQJG5H"). `None` for a token without digits.
fn quantity(token: &str) -> Option<String> {
    if !token.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits_end = token
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(token.len());
    let (number, suffix) = token.split_at(digits_end);
    let is_plain_number = !number.is_empty()
        && (suffix.is_empty() || ["st", "nd", "rd", "th"].contains(&suffix) || is_unit(suffix));
    let strip_zeros = |s: &str| -> String {
        let trimmed = s.trim_start_matches('0');
        if trimmed.is_empty() || trimmed.starts_with('.') {
            format!("0{trimmed}")
        } else {
            trimmed.to_string()
        }
    };
    if is_plain_number {
        let number: String = number.chars().filter(|c| *c != ':').collect();
        return Some(strip_zeros(number.trim_end_matches('.')));
    }
    Some(strip_zeros(token.strip_prefix("0x").unwrap_or(token)))
}

/// Words that multiply the number before them: "2.5 million" is 2500000, "two hundred" 200.
const SCALES: &[(&str, f64)] = &[
    ("hundred", 1e2),
    ("thousand", 1e3),
    ("million", 1e6),
    ("billion", 1e9),
    ("trillion", 1e12),
];

/// The value the word at `at` says, its scale included: "15k" and "15 thousand" are 15000,
/// "$1.2m" and "$1.2 million" 1200000. A scale word after a number is part of that number.
fn value_at(words: &[Word], at: usize) -> Option<String> {
    let scale = |at: usize| {
        let word = words.get(at)?;
        SCALES
            .iter()
            .find(|(name, _)| *name == word.lower)
            .map(|(_, factor)| *factor)
    };
    if scale(at).is_some() && at > 0 && written_value(words, at - 1).is_some() {
        return None;
    }
    let (value, glued) = match glued_scale(words, at) {
        Some((number, factor)) => (number.to_string(), factor),
        None => (written_value(words, at)?, 1.0),
    };
    let factor = glued * (at + 1..).map_while(scale).product::<f64>();
    match value.parse::<f64>() {
        Ok(number) if factor != 1.0 => Some(format_amount(number * factor)),
        _ => Some(value),
    }
}

/// A number with its scale glued on, and the scale: "15k" (15 and 1000), "2bn"; "1.2m" only
/// after a currency sign ("$1.2m"), since "5m" is five metres.
fn glued_scale(words: &[Word], at: usize) -> Option<(f64, f64)> {
    let word = words[at].lower.as_str();
    let after_currency = at > 0 && CURRENCY_SIGNS.contains(&words[at - 1].lower.as_str());
    let (number, factor) = if let Some(number) = word.strip_suffix('k') {
        (number, 1e3)
    } else if let Some(number) = word.strip_suffix("bn") {
        (number, 1e9)
    } else {
        (word.strip_suffix('m').filter(|_| after_currency)?, 1e6)
    };
    Some((number.parse().ok()?, factor))
}

/// What follows the digits of the word at `at`: its unit if one is glued on ("5km" → "km"),
/// but not a scale ("15k", "$1.2m").
fn glued_unit(words: &[Word], at: usize) -> &str {
    if glued_scale(words, at).is_some() {
        return "";
    }
    words[at]
        .lower
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
}

const CURRENCY_SIGNS: &[&str] = &["$", "€", "£", "₹", "¥"];

/// The value the word at `at` says as written: a number word, an ordinal word ("fifth" is 5,
/// but a "third party" is no count), "one" before a unit ("one cup"), or a token with digits
/// ("4th" is 4, "007" is 7).
fn written_value(words: &[Word], at: usize) -> Option<String> {
    let word = words[at].lower.as_str();
    if let Some((_, digits)) = NUMBER_WORDS.iter().find(|(w, _)| *w == word) {
        return Some(digits.to_string());
    }
    let third_party = word == "third" && words.get(at + 1).is_some_and(|n| n.stem == "party");
    if let Some((_, digits)) = ORDINAL_WORDS.iter().find(|(w, _)| *w == word) {
        return (!third_party).then(|| digits.to_string());
    }
    let next_is_unit = words
        .get(at + 1)
        .is_some_and(|n| unit_of(&n.lower).is_some());
    if word == "one" && next_is_unit {
        return Some("1".into());
    }
    quantity(word)
}

/// Digit runs (with decimals) and number words, as written, as a multiset.
fn numbers(text: &Text) -> Vec<String> {
    let mut found: Vec<String> = (0..text.words.len())
        .filter_map(|at| value_at(&text.words, at))
        .collect();
    found.sort();
    found
}

/// [`numbers`], with each amount in a unit that converts counted in its base unit
/// ([`IN_BASE_UNITS`]), "and a half" and "a fortnight" included: "a year and a half" and "18
/// months" are both 18 (months), "half an hour" and "30 minutes" both 1800 (seconds).
fn amounts(text: &Text) -> Vec<String> {
    let words = &text.words;
    let lower = |at: usize| words.get(at).map_or("", |w: &Word| w.lower.as_str());
    let mut found: Vec<String> = Vec::new();
    let mut at = 0;
    while at < words.len() {
        let word = lower(at);
        // "a fortnight", "a year and a half": one of the unit.
        let one_of_unit = || {
            let unit = unit_of(lower(at + 1));
            (matches!(word, "a" | "an")
                && unit.is_some()
                && (unit == Some("fortnight") || and_a_half(words, at + 2)))
            .then(|| "1".to_string())
        };
        let Some(value) = value_at(words, at).or_else(one_of_unit) else {
            at += 1;
            continue;
        };
        // "half an hour": the unit comes after the article.
        let unit_at = if word == "half" && matches!(lower(at + 1), "a" | "an") {
            at + 2
        } else {
            at + 1
        };
        // The unit glued to the number ("5km"), or the word after it, maybe after "and a half"
        // ("two and a half hours").
        let glued = glued_unit(words, at);
        let half_before = and_a_half(words, unit_at) && unit_of(lower(unit_at + 3)).is_some();
        let unit_at = if half_before { unit_at + 3 } else { unit_at };
        let (unit, next) = match unit_of(glued).filter(|_| glued.len() < word.len()) {
            Some(unit) => (Some(unit), at + 1),
            None => (unit_of(lower(unit_at)), unit_at + 1),
        };
        let amount = unit.zip(value.parse::<f64>().ok()).map(|(unit, number)| {
            let half_after = and_a_half(words, next);
            let half = if half_before || half_after { 0.5 } else { 0.0 };
            let (_, factor) = in_base(unit);
            let next = if half_after { next + 3 } else { next };
            (format_amount((number + half) * factor), next)
        });
        match amount {
            Some((amount, next)) => {
                found.push(amount);
                at = next;
            }
            None => {
                found.push(value);
                at += 1;
            }
        }
    }
    found.sort();
    found
}

/// Whether "and a half" begins at `at`.
fn and_a_half(words: &[Word], at: usize) -> bool {
    let said: Vec<&str> = words
        .iter()
        .skip(at)
        .take(3)
        .map(|w| w.lower.as_str())
        .collect();
    said == ["and", "a", "half"]
}

/// An amount without float noise: 1.5 × 12 is "18", 0.001 × 5 is "0.005".
fn format_amount(value: f64) -> String {
    let rounded = (value * 1e6).round() / 1e6;
    format!("{rounded}")
}

fn units(text: &Text) -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    for (i, word) in text.words.iter().enumerate() {
        // "5km" and "20gb": a unit glued to its number.
        let glued = glued_unit(&text.words, i);
        let after_number =
            glued.len() < word.lower.len() || (i > 0 && is_number(&text.words[i - 1].lower));
        for candidate in [word.lower.as_str(), glued] {
            if let Some(unit) = unit_of(candidate) {
                if after_number || !TIME_UNITS.contains(&unit) {
                    found.insert(unit);
                }
            }
        }
    }
    found
}

/// Conflict when the numbers differ, or both texts name units and the units differ, both as
/// written and with amounts in their base units: "3 days a week" is "three times a week" as
/// written, "18 months" is "a year and a half" in months, but "3 days" is not "3 weeks" either
/// way.
pub fn differ(a: &Text, b: &Text) -> bool {
    let (ua, ub) = (units(a), units(b));
    let in_base_units =
        |units: &BTreeSet<&'static str>| units.iter().map(|u| in_base(u).0).collect();
    differ_in((numbers(a), &ua), (numbers(b), &ub))
        && differ_in(
            (amounts(a), &in_base_units(&ua)),
            (amounts(b), &in_base_units(&ub)),
        )
}

fn differ_in(
    (numbers_a, units_a): (Vec<String>, &BTreeSet<&'static str>),
    (numbers_b, units_b): (Vec<String>, &BTreeSet<&'static str>),
) -> bool {
    numbers_a != numbers_b
        || (!units_a.is_empty()
            && !units_b.is_empty()
            && read_pounds(units_a, units_b) != read_pounds(units_b, units_a))
}

/// "Pound" is a currency and a weight: it reads as whichever of the two the other text names
/// ("5 pounds" is "5 lbs", and "20 pounds" is "£20"), and stays ambiguous otherwise.
fn read_pounds(
    units: &BTreeSet<&'static str>,
    other: &BTreeSet<&'static str>,
) -> BTreeSet<&'static str> {
    let meaning = ["lb", "gbp"].into_iter().find(|m| other.contains(m));
    units
        .iter()
        .map(|&unit| match (unit, meaning) {
            ("pound", Some(meaning)) => meaning,
            _ => unit,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> bool {
        differ(&Text::new(a), &Text::new(b))
    }

    #[test]
    fn changed_quantities_conflict() {
        assert!(d("Track order 48213", "Track order 48231"));
        assert!(d(
            "What does error E1042 mean?",
            "What does error E1024 mean?"
        ));
        assert!(d("Is Python 3.11 supported?", "Is Python 3.12 supported?"));
        assert!(d("Book a table for 4", "Book a table for 6"));
        assert!(d("Convert 5 km to meters", "Convert 5 miles to meters"));
        assert!(d(
            "Can I withdraw $500 today?",
            "Can I withdraw €500 today?"
        ));
        assert!(d("top 10 films", "top films"));
        assert!(d("a 20GB plan", "a 50GB plan"));
        assert!(d("stop code 0x0000007B", "stop code 0x0000007E"));
        assert!(d("serial C02XK1ZQJG5H", "serial C02XK1ZQJG5J"));
        assert!(d(
            "Who was the 3rd US president?",
            "Who was the fourth US president?"
        ));
        assert!(d("Wake me at half past six", "Wake me at 6:15"));
    }

    #[test]
    fn scales_multiply_the_number_before_them() {
        assert!(!d(
            "Best phone under 15k rupees?",
            "Best phone under 15000 rupees?"
        ));
        assert!(!d("Is $85k a good salary?", "Is $85,000 a good salary?"));
        assert!(!d(
            "Is a $1.2m salary realistic?",
            "Is a $1.2 million salary realistic?"
        ));
        assert!(!d(
            "What is 2.5 million in euros?",
            "What is 2,500,000 in euros?"
        ));
        assert!(!d("two hundred people", "200 people"));
        assert!(d(
            "Best phone under 15k rupees?",
            "Best phone under 25k rupees?"
        ));
        assert!(d("2.5 million people", "2.5 billion people"));
        assert!(
            d("Is 5m deep enough?", "Is 5000000 deep enough?"),
            "5m is metres"
        );
    }

    #[test]
    fn ordinals_and_spoken_times_read_as_numbers() {
        assert!(!d(
            "Who was the third president of the United States?",
            "Who was the 3rd US president?"
        ));
        assert!(!d(
            "A gift for a fifth anniversary",
            "A gift for our 5th anniversary"
        ));
        assert!(!d("Wake me at half past six", "Wake me at 6:30"));
        assert!(!d(
            "Book a table at quarter to eight",
            "Book a table at 7:45"
        ));
        assert!(!d(
            "Can a third party see my data?",
            "Can third parties see my data?"
        ));
        assert!(d(
            "Can a third party see my data?",
            "Can 3 parties see my data?"
        ));
    }

    #[test]
    fn the_same_quantities_reworded_do_not() {
        assert!(!d("Book a table for three people", "Reserve a table for 3"));
        assert!(!d(
            "flights on 12 May from gate 4",
            "from gate 4, flights on 12 May"
        ));
        assert!(!d("costs 3,50 euros", "costs 3.50 EUR"));
        assert!(!d(
            "How do I reset my password?",
            "How can I reset my password"
        ));
        assert!(!d("Is 5km far?", "Is 5 kilometers far?"));
        assert!(!d("Set an alarm for 9pm", "Set an alarm for 21:00"));
        assert!(!d(
            "Can the courier come at 8pm?",
            "Can the courier come at 8 in the evening?"
        ));
        assert!(!d(
            "Is a 10 pound turkey enough?",
            "Is a 10 lb turkey enough?"
        ));
        assert!(!d("Send me 20 pounds", "Send me £20"));
        assert!(!d(
            "Minutes of the 12 June meeting",
            "the meeting on June 12th"
        ));
        assert!(!d("stop code 0x0000007B", "stop code 0x7B"));
        assert!(!d(
            "How many teaspoons are in 1 cup?",
            "How many tsp make up one cup?"
        ));
        assert!(!d(
            "How much is a 20% tip on $85?",
            "a twenty percent tip on an $85 bill"
        ));
        assert!(!d(
            "How many vacation days do I have left this year?",
            "How much leave do I still have this year?"
        ));
    }

    #[test]
    fn one_amount_in_other_units_or_spellings_does_not_conflict() {
        assert!(!d(
            "Will banning 500 and 1000 rupee notes hurt the economy?",
            "Will banning Rs. 500 and Rs 1000 notes hurt the economy?"
        ));
        assert!(!d("A phone under ₹15000?", "A phone under 15,000 rupees?"));
        assert!(!d(
            "Is 1200 mg of caffeine a day safe?",
            "Is drinking 1,200 milligrams of caffeine daily safe?"
        ));
        assert!(!d(
            "I've been here 18 months. Will my bonus be prorated?",
            "I've worked here a year and a half. Does my bonus get prorated?"
        ));
        assert!(!d("We're away for two weeks", "We're away for a fortnight"));
        assert!(!d("We're away for 14 days", "We're away for 2 weeks"));
        assert!(!d("Is half an hour enough?", "Is 30 minutes enough?"));
        assert!(!d("a 2.5 hour drive", "a two and a half hour drive"));
        assert!(!d("a 150 minute drive", "a drive of 2 hours and a half"));
        assert!(!d(
            "Is 1.5 kg of flour enough?",
            "Is 1500 g of flour enough?"
        ));
        assert!(!d("Is 38°C a fever?", "Is 38 degrees Celsius a fever?"));
        assert!(!d(
            "How much sleep does a two-year-old need?",
            "How much sleep does a 2-year-old need?"
        ));
        assert!(!d(
            "Can a 15-year-old invest in stocks?",
            "Can a 15 year old invest in stocks?"
        ));
        assert!(!d(
            "Give me a workout plan for 3 days a week.",
            "I can train three times a week. Suggest a workout plan."
        ));
    }

    #[test]
    fn other_amounts_in_other_units_conflict() {
        assert!(d("Book 3 days", "Book 3 weeks"));
        assert!(d("We're away for two weeks", "We're away for a week"));
        assert!(d("I've been here 18 months", "I've been here 2 years"));
        assert!(d("Is 1,200 mg safe?", "Is 1,500 mg safe?"));
        assert!(d("costs 3,50 euros", "costs 350 euros"));
        assert!(d("Is 1.5 kg enough?", "Is 1500 lb enough?"));
        assert!(d("Is 38°C a fever?", "Is 38°F a fever?"));
        assert!(d("a two and a half hour drive", "a two hour drive"));
        assert!(d("Take it twice a day", "Take it 3 times a day"));
    }

    #[test]
    fn clock_times_and_kitchen_units_conflict() {
        assert!(d("Set an alarm for 9am", "Set an alarm for 9pm"));
        assert!(d(
            "How many tablespoons are in 1 cup?",
            "How many teaspoons are in 1 cup?"
        ));
        assert!(d("Book 3 nights", "Book 3 weeks"));
        assert!(d(
            "Can the courier come at 8 in the morning?",
            "Can the courier come at 8 in the evening?"
        ));
        assert!(d(
            "Is a 10 pound turkey enough?",
            "Is a 10 kg turkey enough?"
        ));
        assert!(d("Send me 20 pounds", "Send me $20"));
    }
}
