//! Named things: products, places, people, brands, languages. "Does the iPhone 15 support eSIM?"
//! is not "Does the Pixel 8 support eSIM?", and "flights to Paris" is not "flights to Lyon".
//!
//! A name is a word written like one (capitalised mid-sentence, inner capital, acronym) or a
//! word from a list of common names typed in lower case. Two texts conflict when either names
//! something the other does not mention at all, in any casing, with one exception: a name that
//! only qualifies a name both mention, written right next to it ("Microsoft Bing" / "Bing",
//! "President Putin" / "Putin", "the FIFA World Cup" / "the World Cup"), names the same thing
//! more fully. Product variants ("iPhone 15 Pro" / "iPhone 15") are never such qualifiers.

use std::collections::HashSet;
use std::sync::LazyLock;

use super::text::{within_one_edit, Text};

/// Common names people type in lower case: places, languages, platforms, brands. Names that are
/// also everyday words ("switch", "edge", "target", "nice") are left out: written capitalised
/// mid-sentence they are still caught as names.
const KNOWN_NAMES: &[&str] = &[
    // countries and regions
    "afghanistan",
    "albania",
    "algeria",
    "argentina",
    "australia",
    "austria",
    "bangladesh",
    "belgium",
    "brazil",
    "bulgaria",
    "canada",
    "chile",
    "china",
    "colombia",
    "croatia",
    "cuba",
    "czechia",
    "denmark",
    "egypt",
    "england",
    "estonia",
    "ethiopia",
    "europe",
    "finland",
    "france",
    "germany",
    "ghana",
    "greece",
    "hungary",
    "iceland",
    "india",
    "indonesia",
    "iran",
    "iraq",
    "ireland",
    "israel",
    "italy",
    "jamaica",
    "japan",
    "jordan",
    "kenya",
    "korea",
    "latvia",
    "lebanon",
    "lithuania",
    "luxembourg",
    "malaysia",
    "mexico",
    "morocco",
    "nepal",
    "netherlands",
    "holland",
    "nigeria",
    "norway",
    "pakistan",
    "peru",
    "philippines",
    "poland",
    "portugal",
    "qatar",
    "romania",
    "russia",
    "scotland",
    "serbia",
    "singapore",
    "slovakia",
    "slovenia",
    "spain",
    "sweden",
    "switzerland",
    "syria",
    "taiwan",
    "thailand",
    "turkey",
    "ukraine",
    "uk",
    "usa",
    "us",
    "vietnam",
    "wales",
    "africa",
    "asia",
    "america",
    "antarctica",
    // cities
    "amsterdam",
    "athens",
    "atlanta",
    "austin",
    "bangkok",
    "barcelona",
    "beijing",
    "berlin",
    "boston",
    "brussels",
    "budapest",
    "cairo",
    "chicago",
    "copenhagen",
    "dallas",
    "delhi",
    "denver",
    "dubai",
    "dublin",
    "edinburgh",
    "frankfurt",
    "geneva",
    "hamburg",
    "helsinki",
    "houston",
    "istanbul",
    "jakarta",
    "lagos",
    "lisbon",
    "london",
    "madrid",
    "manchester",
    "melbourne",
    "miami",
    "milan",
    "montreal",
    "moscow",
    "mumbai",
    "munich",
    "nairobi",
    "oslo",
    "paris",
    "prague",
    "rome",
    "seattle",
    "seoul",
    "shanghai",
    "stockholm",
    "sydney",
    "tokyo",
    "toronto",
    "vancouver",
    "vienna",
    "warsaw",
    "zurich",
    "lyon",
    "marseille",
    "porto",
    "seville",
    "valencia",
    "florence",
    "venice",
    "naples",
    "osaka",
    "kyoto",
    "phoenix",
    "portland",
    "brooklyn",
    "manhattan",
    "bristol",
    "glasgow",
    "leeds",
    "liverpool",
    // languages
    "english",
    "french",
    "german",
    "spanish",
    "italian",
    "portuguese",
    "dutch",
    "russian",
    "chinese",
    "mandarin",
    "cantonese",
    "japanese",
    "korean",
    "arabic",
    "hindi",
    "turkish",
    "polish",
    "swedish",
    "greek",
    "hebrew",
    "vietnamese",
    "thai",
    "urdu",
    "bengali",
    "swahili",
    // programming languages, platforms, tools
    "python",
    "rust",
    "java",
    "javascript",
    "typescript",
    "golang",
    "kotlin",
    "ruby",
    "php",
    "perl",
    "scala",
    "haskell",
    "elixir",
    "erlang",
    "clojure",
    "c++",
    "c#",
    "csharp",
    "fortran",
    "cobol",
    "sql",
    "mysql",
    "postgres",
    "postgresql",
    "sqlite",
    "mongodb",
    "redis",
    "kafka",
    "docker",
    "kubernetes",
    "k8s",
    "terraform",
    "ansible",
    "nginx",
    "apache",
    "react",
    "angular",
    "vue",
    "django",
    "flask",
    "rails",
    "nodejs",
    "deno",
    "linux",
    "ubuntu",
    "debian",
    "fedora",
    "centos",
    "windows",
    "macos",
    "ios",
    "android",
    "chrome",
    "firefox",
    "safari",
    "excel",
    "powerpoint",
    "outlook",
    "slack",
    "zoom",
    "gmail",
    "github",
    "gitlab",
    "bitbucket",
    "jira",
    "aws",
    "azure",
    "gcp",
    "heroku",
    "vercel",
    "netlify",
    "git",
    "vim",
    "emacs",
    "vscode",
    "pytorch",
    "tensorflow",
    "pandas",
    "numpy",
    // brands and products
    "apple",
    "google",
    "microsoft",
    "amazon",
    "facebook",
    "instagram",
    "whatsapp",
    "twitter",
    "tiktok",
    "youtube",
    "netflix",
    "spotify",
    "uber",
    "lyft",
    "airbnb",
    "paypal",
    "venmo",
    "stripe",
    "visa",
    "mastercard",
    "amex",
    "samsung",
    "iphone",
    "ipad",
    "macbook",
    "xbox",
    "playstation",
    "nintendo",
    "kindle",
    "alexa",
    "siri",
    "tesla",
    "toyota",
    "honda",
    "ford",
    "bmw",
    "audi",
    "volkswagen",
    "ikea",
    "nike",
    "adidas",
    "starbucks",
    "mcdonalds",
    "walmart",
    "costco",
    "ebay",
    "etsy",
    "shopify",
    "dell",
    "lenovo",
    "hp",
    "asus",
    "acer",
    "sony",
    "lg",
    "huawei",
    "xiaomi",
    "oneplus",
    "nokia",
    "motorola",
    "verizon",
    "comcast",
    "vodafone",
    "lufthansa",
    "ryanair",
    "easyjet",
    "emirates",
    "hilton",
    "marriott",
    "chatgpt",
    "openai",
    "claude",
    "gemini",
    "bitcoin",
    "ethereum",
];

/// Spellings of the same name, folded to one before comparing.
const ALIASES: &[(&str, &str)] = &[
    ("new york city", "nyc"),
    ("new york", "nyc"),
    ("los angeles", "la"),
    ("san francisco", "sf"),
    ("united kingdom", "uk"),
    ("great britain", "uk"),
    ("britain", "uk"),
    ("united states", "usa"),
    ("us", "usa"),
    ("america", "usa"),
    ("american", "usa"),
    ("americans", "usa"),
    ("british", "uk"),
    ("js", "javascript"),
    ("ts", "typescript"),
    ("go", "golang"),
    ("k8s", "kubernetes"),
    ("postgresql", "postgres"),
    ("node.js", "node"),
    ("nodejs", "node"),
    ("mac os", "macos"),
    ("osx", "macos"),
    ("holland", "netherlands"),
    ("american express", "amex"),
    ("whats app", "whatsapp"),
];

/// Words that name a variant of the product beside them, not the same product more fully.
const VARIANTS: &[&str] = &[
    "pro", "max", "plus", "mini", "ultra", "lite", "air", "se", "xl", "xr", "edge", "neo", "fe",
    "note", "fold", "flip", "jr", "junior", "sr", "senior", "ii", "iii", "iv",
];

/// Acronyms that are ordinary vocabulary, not names of anything in particular.
const GENERIC_ACRONYMS: &[&str] = &[
    "http", "https", "api", "url", "pdf", "usb", "pin", "id", "faq", "tv", "pc", "ok", "vpn",
    "sms", "gps", "ai", "it", "hr", "ceo", "cto", "cfo", "sku", "eta", "asap", "fyi", "diy",
    "rsvp", "atm", "dm", "pm", "am", "vip", "q&a", "csv", "json", "xml", "html", "css", "ui", "ux",
    "os", "cpu", "gpu", "ram", "ssd", "hdd", "wifi", "lan", "dns", "ip", "tcp", "udp", "ssh",
    "ssl", "tls", "otp", "2fa", "mfa", "sso", "kyc", "iban", "swift", "vat", "gst", "tax", "eu",
    "uk", "usa",
];

static KNOWN: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| KNOWN_NAMES.iter().copied().collect());
static GENERIC: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| GENERIC_ACRONYMS.iter().copied().collect());

/// Words the other guard families own: units, currencies, identifiers ("0x7B" is "0x0000007B"
/// to the quantities family), days and months.
fn owned_elsewhere(word: &str) -> bool {
    super::quantities::is_unit(word)
        || super::quantities::identifier(word).is_some()
        || super::calendar::is_calendar_word(word)
}

/// A name a text mentions: lower-cased and folded through [`ALIASES`], with the words it spans.
#[derive(Debug)]
struct Name {
    folded: String,
    start: usize,
    end: usize,
}

/// The names a text mentions, in order.
fn names(text: &Text) -> Vec<Name> {
    let words: Vec<&str> = text.words.iter().map(|w| w.lower.as_str()).collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < words.len() {
        // Multi-word aliases first ("new york city").
        let alias = (2..=3).rev().find_map(|n| {
            let phrase = words.get(i..i + n)?.join(" ");
            ALIASES
                .iter()
                .find(|(from, _)| *from == phrase)
                .map(|(_, to)| (n, *to))
        });
        if let Some((n, canonical)) = alias {
            found.push(Name {
                folded: canonical.to_string(),
                start: i,
                end: i + n,
            });
            i += n;
            continue;
        }
        let word = &text.words[i];
        // "us" is only a name when written US.
        let known = KNOWN.contains(word.lower.as_str()) && (word.lower != "us" || word.name_like);
        let generic = GENERIC.contains(word.lower.as_str()) && !KNOWN.contains(word.lower.as_str());
        let before_unit = text
            .words
            .get(i + 1)
            .is_some_and(|n| owned_elsewhere(&n.lower));
        if (word.name_like || known)
            && !generic
            && !owned_elsewhere(&word.lower)
            && !(word.lower == "us" && before_unit)
        {
            let folded = ALIASES
                .iter()
                .find(|(from, _)| *from == word.lower)
                .map_or(word.lower.clone(), |(_, to)| to.to_string());
            found.push(Name {
                folded,
                start: i,
                end: i + 1,
            });
        }
        i += 1;
    }
    found
}

/// Every spelling of `text`'s words (plain, stemmed, folded like names are) to look a name up in.
fn vocabulary(text: &Text, text_names: &[Name]) -> HashSet<String> {
    let mut all: HashSet<String> = text.spellings().cloned().collect();
    // Two words written as one elsewhere: "Times Now" mentions "TimesNow".
    all.extend(
        text.words
            .windows(2)
            .map(|pair| format!("{}{}", pair[0].lower, pair[1].lower)),
    );
    all.extend(text_names.iter().map(|n| n.folded.clone()));
    all.extend(text.words.iter().filter_map(|w| {
        ALIASES
            .iter()
            .find(|(from, _)| *from == w.lower)
            .map(|(_, to)| to.to_string())
    }));
    all
}

/// Whether `name` is mentioned in `text`: as a word, a stem, a typo of a long word
/// ("Outlok"), or spelled out by the initials of consecutive words ("IBM").
fn mentions(text: &Text, vocabulary: &HashSet<String>, name: &str) -> bool {
    if vocabulary.contains(name) || vocabulary.contains(&super::text::stem(name)) {
        return true;
    }
    let long = name.chars().count() >= 6;
    if vocabulary
        .iter()
        .any(|w| (long && within_one_edit(w, name)) || derived(w, name))
    {
        return true;
    }
    let letters: Vec<char> = name.chars().collect();
    (2..=5).contains(&letters.len())
        && text.words.windows(letters.len()).any(|run| {
            run.iter()
                .zip(&letters)
                .all(|(w, l)| w.lower.starts_with(*l))
                && run
                    .iter()
                    .all(|w| w.name_like || w.lower.chars().count() > 3)
        })
}

/// Endings that make a people, a language or an adjective of a place's name.
const DERIVING_ENDINGS: &[&str] = &[
    "n", "an", "ian", "ns", "ans", "ians", "ese", "i", "is", "ic", "ish", "k", "ks", "ite", "ites",
];

/// Whether one word is derived from the other, a name of five letters or more: "India" /
/// "Indian", "China" / "Chinese", "Greece" / "Greek". After their common beginning (four
/// letters at least), one goes on with one of [`DERIVING_ENDINGS`] and the other with at most
/// two letters ("Indiana" is not derived from "India", nor "Australian" from "Austrian").
fn derived(a: &str, b: &str) -> bool {
    if !(a.is_ascii() && b.is_ascii()) || a.len().min(b.len()) < 5 || a == b {
        return false;
    }
    let shared = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let (rest_a, rest_b) = (&a[shared..], &b[shared..]);
    let ends = |this: &str, that: &str| DERIVING_ENDINGS.contains(&this) && that.len() <= 2;
    shared >= 4 && (ends(rest_a, rest_b) || ends(rest_b, rest_a))
}

/// Words of `text` that spell out an acronym of `other` ("International Business Machines"
/// when the other says "IBM").
fn spelled_out(text: &Text, other: &Text) -> Vec<String> {
    let mut covered = Vec::new();
    for acronym in other
        .words
        .iter()
        .filter(|w| w.name_like && w.lower.chars().all(|c| c.is_alphabetic()))
    {
        let letters: Vec<char> = acronym.lower.chars().collect();
        if !(2..=5).contains(&letters.len()) {
            continue;
        }
        for run in text.words.windows(letters.len()) {
            if run
                .iter()
                .zip(&letters)
                .all(|(w, l)| w.lower.starts_with(*l) && w.lower.chars().count() > 1)
            {
                covered.extend(run.iter().map(|w| w.lower.clone()));
            }
        }
    }
    covered
}

/// Words of `text` that `other` writes as one ("Times Now" / "TimesNow", "M.S." / "MS").
fn written_together(text: &Text, other: &Text) -> Vec<String> {
    text.words
        .windows(2)
        .filter(|pair| other.has(&format!("{}{}", pair[0].lower, pair[1].lower)))
        .flat_map(|pair| [pair[0].lower.clone(), pair[1].lower.clone()])
        .collect()
}

/// Names in `a` that `b` never mentions.
fn unmatched<'n>(a: &Text, names_a: &'n [Name], b: &Text, names_b: &[Name]) -> Vec<&'n Name> {
    let mut covered = spelled_out(a, b);
    covered.extend(written_together(a, b));
    let vocab_b = vocabulary(b, names_b);
    names_a
        .iter()
        .filter(|n| !covered.contains(&n.folded) && !mentions(b, &vocab_b, &n.folded))
        .collect()
}

/// Whether `name` only qualifies a neighbouring name of the same text that the other text
/// mentions too ("Microsoft" in "Microsoft Bing" against "Bing").
fn qualifies_shared(name: &Name, names: &[Name], missing: &[&Name]) -> bool {
    !VARIANTS.contains(&name.folded.as_str())
        && names.iter().any(|other| {
            (other.end == name.start || other.start == name.end)
                && !missing.iter().any(|m| std::ptr::eq(*m, other))
        })
}

/// Conflict when either text names something the other never mentions, unless only one side
/// adds names and each of them qualifies a name both share, is said in passing or labels an
/// identifier both give.
pub fn differ(a: &Text, b: &Text) -> bool {
    let (names_a, names_b) = (names(a), names(b));
    if names_a.is_empty() && names_b.is_empty() {
        return false;
    }
    let missing_in_b = unmatched(a, &names_a, b, &names_b);
    let missing_in_a = unmatched(b, &names_b, a, &names_a);
    let (text, other, names, missing) = match (missing_in_b.is_empty(), missing_in_a.is_empty()) {
        (true, true) => return false,
        (false, false) => return true,
        (false, true) => (a, b, &names_a, &missing_in_b),
        (true, false) => (b, a, &names_b, &missing_in_a),
    };
    !missing.iter().all(|n| {
        qualifies_shared(n, names, missing)
            || said_in_passing(text, n)
            || labels_shared_identifier(text, n, other)
    })
}

/// Whether `name` stands within three words of an identifier both texts give ("OBD code
/// P0420" / "P0420", "Windows stop code 0x0000007B" / "stop code 0x7B"): the identifier
/// already says which thing it is, the name only what kind. The quantities family checks
/// the identifiers are the same.
fn labels_shared_identifier(text: &Text, name: &Name, other: &Text) -> bool {
    let words = &text.words;
    let shared = |at: usize| {
        super::quantities::identifier(&words[at].lower).is_some_and(|id| {
            other
                .words
                .iter()
                .any(|o| super::quantities::identifier(&o.lower).as_ref() == Some(&id))
        })
    };
    // Only words of the same phrase in between: "Windows stop code 0x7B", not "A1234 to the
    // Lisbon store".
    let joined = |between: &[super::text::Word]| {
        between
            .iter()
            .all(|w| !w.name_like && !PHRASE_BREAKS.contains(&w.lower.as_str()))
    };
    let after = (name.end..(name.end + 3).min(words.len()))
        .find(|&at| shared(at))
        .is_some_and(|at| joined(&words[name.end..at]));
    let before = (name.start.saturating_sub(3)..name.start)
        .rev()
        .find(|&at| shared(at))
        .is_some_and(|at| joined(&words[at + 1..name.start]));
    !VARIANTS.contains(&name.folded.as_str()) && (after || before)
}

/// Words that end a noun phrase: a name on their far side labels something else.
const PHRASE_BREAKS: &[&str] = &[
    "to", "the", "a", "an", "in", "at", "on", "for", "from", "of", "with", "and", "or", "if", "by",
    "my", "your", "is", "are", "was", "does", "do", "did",
];

/// Whether `name` is only a gloss of the text: in parentheses ("Seinfeld (TV series)") or in a
/// heading before the question ("Travel in Peru: ...").
fn said_in_passing(text: &Text, name: &Name) -> bool {
    text.words[name.start..name.end].iter().all(|w| w.gloss)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> bool {
        differ(&Text::new(a), &Text::new(b))
    }

    #[test]
    fn swapped_names_conflict() {
        assert!(d(
            "Does the iPhone 15 support eSIM?",
            "Does the Pixel 8 support eSIM?"
        ));
        assert!(d(
            "Cheap flights to Paris in May",
            "Cheap flights to Lyon in May"
        ));
        assert!(d(
            "How do I read a file in python?",
            "How do I read a file in rust?"
        ));
        assert!(d("Can I pay with Visa?", "Can I pay with Mastercard?"));
        assert!(d(
            "What did Obama say about healthcare?",
            "What did Trump say about healthcare?"
        ));
        assert!(d(
            "How do I reset my password?",
            "How do I reset my password on Windows?"
        ));
        // A variant of the product is another product, even written beside it.
        assert!(d(
            "Does the Galaxy S23 Ultra have a headphone jack?",
            "Does the Galaxy S23 have a headphone jack?"
        ));
        // A qualifier on one side does not excuse a swap on the other.
        assert!(d(
            "Will Microsoft Bing beat Google?",
            "Will Bing beat DuckDuckGo?"
        ));
        // A name beside a name the other text lacks qualifies nothing shared.
        assert!(d("Flights to Paris Orly", "Flights to Lyon"));
    }

    #[test]
    fn a_name_qualifying_a_shared_name_does_not() {
        assert!(!d(
            "Will Microsoft Bing beat Google?",
            "Can Bing beat Google?"
        ));
        assert!(!d(
            "What are the achievements of President Vladimir Putin?",
            "What has Vladimir Putin achieved?"
        ));
        assert!(!d(
            "Who won the FIFA World Cup in 2018?",
            "Who won the World Cup in 2018?"
        ));
    }

    #[test]
    fn the_same_names_written_as_one_word_or_with_dots_do_not() {
        assert!(!d(
            "Why did Arnab Goswami resign from Times Now?",
            "Why Arnab Goswami resigned from TimesNow?"
        ));
        assert!(!d(
            "Your review of M.S. Dhoni: The Untold Story?",
            "Your review of MS Dhoni: The untold story?"
        ));
        assert!(d(
            "Is Java the same language as Python?",
            "Is JavaScript the same language as Python?"
        ));
    }

    #[test]
    fn the_same_names_reworded_or_recased_do_not() {
        assert!(!d("do you ship to canada", "Do you ship to Canada?"));
        // A unit, not the language C.
        assert!(!d(
            "Is 38 degrees Celsius a fever?",
            "Is a temperature of 38°C considered a fever?"
        ));
        assert!(!d("Hotels near New York City", "hotels near NYC"));
        assert!(!d("Is the iPhone waterproof?", "Can an iphone get wet?"));
        assert!(!d(
            "How Do I Reset My Password",
            "how do i reset my password"
        ));
        assert!(!d(
            "Where can I buy an ikea sofa?",
            "Where do I buy a sofa from IKEA?"
        ));
        assert!(!d("Can you help us?", "Could you help us?"));
        assert!(!d(
            "How do I turn on dark mode in Outlook?",
            "How do I trun on dark mode in Outlok?"
        ));
        assert!(!d(
            "Tell me about the history of IBM.",
            "Give me a history of International Business Machines."
        ));
        assert!(!d(
            "What does a 502 Bad Gateway error mean?",
            "Explain an HTTP 502 Bad Gateway response."
        ));
        assert!(!d(
            "Convert 100 USD to EUR",
            "What is 100 US dollars in euros?"
        ));
        assert!(!d(
            "When is the library open on Sunday?",
            "library opening hours on Sundays"
        ));
    }

    #[test]
    fn a_people_or_language_named_after_a_place_is_that_place() {
        assert!(!d(
            "What is the typical Kenyan breakfast?",
            "What do people in Kenya eat for breakfast?"
        ));
        assert!(!d(
            "Is Japanese cuisine healthy?",
            "Is the cuisine of Japan healthy?"
        ));
        assert!(!d(
            "Why is Greek yoghurt thick?",
            "Why is yoghurt from Greece thick?"
        ));
        // A different place that begins alike, and a different people, still conflict.
        assert!(d(
            "What is the minimum wage in India?",
            "What is the minimum wage in Indiana?"
        ));
        assert!(d("Is Austrian food spicy?", "Is Australian food spicy?"));
        assert!(d("Do Canadians need a visa?", "Do Mexicans need a visa?"));
        assert!(!d(
            "Do I need a visa for Japan as a US citizen?",
            "As an American, do I need a visa for Japan?"
        ));
        assert!(d(
            "Do I need a visa for Japan as a US citizen?",
            "As a British citizen, do I need a visa for Japan?"
        ));
    }

    #[test]
    fn a_name_said_in_passing_is_an_added_gloss() {
        assert!(!d(
            "How do I mute a group chat (Telegram)?",
            "How do I mute a group chat?"
        ));
        assert!(!d(
            "Home Brewing: how long should beer ferment?",
            "How long should beer ferment?"
        ));
        // A gloss that changes, or a name in the question itself, still conflicts.
        assert!(d(
            "How do I mute a group chat (Telegram)?",
            "How do I mute a group chat (Signal)?"
        ));
        assert!(d(
            "How do I mute a group chat in Telegram?",
            "How do I mute a group chat?"
        ));
        assert!(d(
            "Travel in Peru: do I need a visa?",
            "Travel in Chile: do I need a visa?"
        ));
    }

    #[test]
    fn a_name_that_labels_a_shared_identifier_adds_nothing() {
        assert!(!d(
            "What does Bosch dishwasher code E15 mean?",
            "My dishwasher shows E15, what does that mean?"
        ));
        // Another identifier, or a name far from it, is not such a label.
        assert!(d(
            "What does Bosch dishwasher code E15 mean?",
            "My dishwasher shows E24, what does that mean?"
        ));
        assert!(d(
            "Can I return order A1234 to the Lisbon store if it was bought online?",
            "Can I return order A1234 if it was bought online?"
        ));
    }
}
