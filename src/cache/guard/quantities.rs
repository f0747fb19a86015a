//! Numbers, amounts, identifiers, versions and units: "order 48213" is not "order 48231",
//! "3.11" is not "3.12", "5 km" is not "5 miles", "$20" is not "€20".

use super::text::Text;
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

/// Units and currencies, by their canonical name.
const UNITS: &[(&str, &[&str])] = &[
    ("usd", &["$", "usd", "dollar", "dollars", "buck", "bucks"]),
    ("eur", &["€", "eur", "euro", "euros"]),
    ("gbp", &["£", "gbp", "quid", "sterling"]),
    // Money or weight: whichever the other text names (see `differ`).
    ("pound", &["pound", "pounds"]),
    ("jpy", &["¥", "jpy", "yen"]),
    ("inr", &["inr", "rupee", "rupees"]),
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
    "second", "minute", "hour", "day", "week", "month", "year", "night",
];

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

/// Digit runs (with decimals) and number words, as a multiset. "4th" counts as 4, "007" as 7,
/// "one" only before a unit ("one cup").
fn numbers(text: &Text) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (i, word) in text.words.iter().enumerate() {
        if let Some((_, digits)) = NUMBER_WORDS.iter().find(|(w, _)| *w == word.lower) {
            found.push(digits.to_string());
            continue;
        }
        let next_is_unit = text
            .words
            .get(i + 1)
            .is_some_and(|n| unit_of(&n.lower).is_some());
        if word.lower == "one" && next_is_unit {
            found.push("1".into());
            continue;
        }
        if let Some(value) = quantity(&word.lower) {
            found.push(value);
        }
    }
    found.sort();
    found
}

fn units(text: &Text) -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    for (i, word) in text.words.iter().enumerate() {
        // "5km" and "20gb": a unit glued to its number.
        let glued = word
            .lower
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
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

/// Conflict when the numbers differ, or both texts name units and the units differ.
pub fn differ(a: &Text, b: &Text) -> bool {
    if numbers(a) != numbers(b) {
        return true;
    }
    let (ua, ub) = (units(a), units(b));
    !ua.is_empty() && !ub.is_empty() && read_pounds(&ua, &ub) != read_pounds(&ub, &ua)
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
