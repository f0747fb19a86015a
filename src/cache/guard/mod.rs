//! Guards: checks between "similar enough" and "served" that refuse a candidate when the two
//! texts differ in a way that changes the answer, however close their embeddings are.
//!
//! Sentence embeddings barely notice such differences: "refund order 48213" and "refund order
//! 48231" sit at a cosine of 0.96, "open on Sundays" and "closed on Sundays" not far below.
//! Each family looks for one kind of difference, reads the words of both texts, and knows
//! nothing of the others; adding a family means adding a module and one line to [`FAMILIES`].
//! All of them together cost microseconds, against milliseconds for one embedding.

mod antonyms;
mod calendar;
mod details;
mod direction;
mod entities;
mod negation;
mod quantities;
mod scope;
mod text;
mod things;
mod wordnet;

pub use text::Text;
pub use wordnet::{install as install_wordnet, WordNetError};

use std::borrow::Cow;
use std::cell::OnceCell;

/// A kind of difference that changes the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Numbers, amounts, identifiers, versions, units and currencies.
    Quantities,
    /// One text negated, the other not.
    Negation,
    /// Open / closed, allowed / banned, turn on / turn off, ...
    Antonyms,
    /// Products, places, people, brands, languages.
    Names,
    /// Days, months, holidays, times of day.
    Calendar,
    /// Whose (mine / theirs), for whom, which period, one or all.
    Scope,
    /// The same things in swapped roles: from X to Y against from Y to X.
    Direction,
    /// A fact of the earlier turns restated with one detail swapped or denied.
    Details,
    /// One common noun in place of another: ants in the kitchen / in the garden.
    Things,
}

/// Which earlier turns of a chat a family compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turns {
    /// Every earlier turn, the assistant's included.
    All,
    /// Only what the user said: the facts, without the assistant's wording.
    User,
    /// None.
    None,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quantities => "quantities",
            Self::Negation => "negation",
            Self::Antonyms => "antonyms",
            Self::Names => "names",
            Self::Calendar => "calendar",
            Self::Scope => "scope",
            Self::Direction => "direction",
            Self::Details => "details",
            Self::Things => "things",
        }
    }

    /// Which earlier turns of a chat the family compares. Negation and scope words are
    /// everywhere in chatter ("no problem", "my partner says hi") and in the assistant's
    /// rewordings ("any transactions you don't recognise?"); details that change the answer
    /// (numbers, names, dates, opposites, direction) are what earlier turns carry, and the
    /// details family reads the user's statements only. Things reads a one-word swap in a
    /// question, which the details family reads in the earlier turns' statements.
    pub fn earlier_turns(self) -> Turns {
        match self {
            Self::Negation | Self::Scope | Self::Things => Turns::None,
            Self::Details => Turns::User,
            _ => Turns::All,
        }
    }

    /// Whether the family compares the last message. Details does not: a follow-up question
    /// that differs in a word is a different question, which the threshold and the other
    /// families judge.
    pub fn reads_last_message(self) -> bool {
        self != Self::Details
    }
}

type Check = fn(&Text, &Text) -> bool;

/// Every family with its check; a check returns true when the texts conflict. Cheapest first.
pub const FAMILIES: &[(Family, Check)] = &[
    (Family::Quantities, quantities::differ),
    (Family::Negation, negation::differ),
    (Family::Calendar, calendar::differ),
    (Family::Scope, scope::differ),
    (Family::Antonyms, antonyms::differ),
    (Family::Direction, direction::differ),
    (Family::Names, entities::differ),
    (Family::Things, things::differ),
    (Family::Details, details::differ),
];

/// The first family under which `a` and `b` must not share an answer, if any.
pub fn conflict(a: &str, b: &str) -> Option<Family> {
    conflict_in(&Text::new(a), &Text::new(b))
}

/// Runs `differ` on the texts with their asides left out (see [`Text::without_chatter`]).
/// Negation and scope read every text so, since their cue words are everywhere in chatter
/// ("my dog is barking", "hadn't thought of that"); every family reads earlier turns so, where
/// small talk ("Ugh, Mondays.") sits beside the facts the answer depends on.
/// Only one side's asides are left out: when both texts have one, the two may be the same
/// detail said differently ("I'd like to accept it." / "I'd like to turn it down."), which is
/// for the families to judge.
pub fn ignoring_chatter(a: &Text, b: &Text, differ: fn(&Text, &Text) -> bool) -> bool {
    let (a, b) = leaned(a, b);
    differ(&a, &b)
}

/// The two texts as [`ignoring_chatter`] compares them: one side's asides left out.
fn leaned<'t>(a: &'t Text, b: &'t Text) -> (Cow<'t, Text>, Cow<'t, Text>) {
    match (a.without_chatter(b), b.without_chatter(a)) {
        (Some(lean_a), None) => (Cow::Owned(lean_a), Cow::Borrowed(b)),
        (None, Some(lean_b)) => (Cow::Borrowed(a), Cow::Owned(lean_b)),
        _ => (Cow::Borrowed(a), Cow::Borrowed(b)),
    }
}

/// The earlier turns of a chat, cut into words as the families read them.
pub struct EarlierTurns {
    all: Text,
    user: Text,
}

impl EarlierTurns {
    /// `context` as the cache keeps it: "role: content" per turn.
    pub fn new(context: &str) -> Self {
        Self {
            all: Text::new(context),
            user: Text::new(&crate::scope::user_turns(context)),
        }
    }
}

/// What the families made of two chats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The families that compared something, in order, up to the one that objected.
    pub checked: Vec<Family>,
    /// The first family under which the chats must not share an answer.
    pub conflict: Option<Family>,
}

/// Compares two chats: their last messages and, unless they are identical (`None`), their
/// earlier turns as each family reads them, asides left out. Stops at the first family that
/// objects.
pub fn chat_conflict(
    last: (&Text, &Text),
    earlier: Option<(&EarlierTurns, &EarlierTurns)>,
) -> Judgement {
    // The earlier turns with their asides left out: worked out when a family first reads
    // them, once for all the families that do.
    let (all_turns, user_turns) = (OnceCell::new(), OnceCell::new());
    let mut checked = Vec::with_capacity(FAMILIES.len());
    for (family, differ) in FAMILIES {
        let reads_turns = earlier.is_some() && family.earlier_turns() != Turns::None;
        if !family.reads_last_message() && !reads_turns {
            continue;
        }
        checked.push(*family);
        let in_last = family.reads_last_message() && differ(last.0, last.1);
        let in_turns = || {
            let turns = earlier.and_then(|(a, b)| match family.earlier_turns() {
                Turns::All => Some(all_turns.get_or_init(|| leaned(&a.all, &b.all))),
                Turns::User => Some(user_turns.get_or_init(|| leaned(&a.user, &b.user))),
                Turns::None => None,
            });
            turns.is_some_and(|(a, b)| differ(a, b))
        };
        if in_last || in_turns() {
            return Judgement {
                checked,
                conflict: Some(*family),
            };
        }
    }
    Judgement {
        checked,
        conflict: None,
    }
}

/// As [`conflict`], for texts already cut into words (last messages).
pub fn conflict_in(a: &Text, b: &Text) -> Option<Family> {
    FAMILIES
        .iter()
        .find(|(family, differ)| family.reads_last_message() && differ(a, b))
        .map(|(family, _)| *family)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trap_is_caught_by_its_family() {
        let cases = [
            ("what is 2+2", "what is 2+3", Family::Quantities),
            (
                "Which foods should I eat with gout?",
                "Which foods should I not eat with gout?",
                Family::Negation,
            ),
            (
                "Is the clinic open on Sundays?",
                "Is the clinic closed on Sundays?",
                Family::Antonyms,
            ),
            (
                "Does the iPhone 15 support eSIM?",
                "Does the Galaxy 15 support eSIM?",
                Family::Names,
            ),
            (
                "Is the museum open on Monday?",
                "Is the museum open on Tuesday?",
                Family::Calendar,
            ),
            (
                "What was our revenue this year?",
                "What was our revenue last year?",
                Family::Scope,
            ),
            (
                "Convert 100 USD to EUR",
                "Convert 100 EUR to USD",
                Family::Direction,
            ),
        ];
        for (a, b, family) in cases {
            assert_eq!(conflict(a, b), Some(family), "{a} / {b}");
            assert_eq!(
                conflict(b, a),
                Some(family),
                "{b} / {a} (the check is symmetric)"
            );
        }
    }

    #[test]
    fn genuine_rewordings_pass_every_family() {
        let pairs = [
            ("How do I reset my password?", "How can I reset my password"),
            ("how do i reset my password", "HOW DO I RESET MY PASSWORD?"),
            (
                "Hi! Quick question: how do I reset my password? Thanks",
                "How do I reset my password?",
            ),
            (
                "What is your refund policy for annual plans?",
                "For annual plans, what is your refund policy?",
            ),
            (
                "Is the clinic closed on Sundays?",
                "Is the clinic shut on Sundays?",
            ),
            (
                "Can I bring my dog to the office?",
                "Am I allowed to bring my dog to the office?",
            ),
            (
                "Whats the capital of australia",
                "What is the capital of Australia?",
            ),
            ("Book a table for three at 7", "Reserve a table for 3 at 7"),
            (
                "Is the pharmacy open on Christmas Day?",
                "Will the pharmacy be open on December 25th?",
            ),
            ("Are you open on New Year's Eve?", "Are you open on 31 Dec?"),
        ];
        for (a, b) in pairs {
            assert_eq!(conflict(a, b), None, "{a} / {b}");
        }
    }

    #[test]
    fn holidays_are_their_dates() {
        for (a, b) in [
            (
                "Is the pharmacy open on Christmas Day?",
                "Is the pharmacy open on New Year's Day?",
            ),
            (
                "Are you open on Christmas Eve?",
                "Are you open on December 25?",
            ),
            ("Are you open on Halloween?", "Are you open on October 30?"),
        ] {
            assert!(conflict(a, b).is_some(), "{a} / {b}");
        }
    }

    /// Earlier turns as the cache joins them: one "role: content" line per turn.
    fn earlier_turns_conflict(a: &str, b: &str) -> Option<Family> {
        let question = Text::new("What should I do?");
        let (a, b) = (EarlierTurns::new(a), EarlierTurns::new(b));
        chat_conflict((&question, &question), Some((&a, &b))).conflict
    }

    #[test]
    fn the_judgement_names_the_families_that_compared_something() {
        let (a, b) = (Text::new("What next?"), Text::new("What should I do next?"));
        let single = chat_conflict((&a, &b), None);
        assert_eq!(single.conflict, None);
        assert!(
            !single.checked.contains(&Family::Details),
            "no earlier turns"
        );
        assert_eq!(single.checked.len(), FAMILIES.len() - 1);
        let earlier_a = EarlierTurns::new("user: My laptop won't turn on.");
        let earlier_b = EarlierTurns::new("user: The laptop I have does not turn on.");
        let chat = chat_conflict((&a, &b), Some((&earlier_a, &earlier_b)));
        assert_eq!(chat.conflict, None);
        assert_eq!(chat.checked.len(), FAMILIES.len());
        let swapped = EarlierTurns::new("user: My toaster won't turn on.");
        let trap = chat_conflict((&a, &b), Some((&earlier_a, &swapped)));
        assert_eq!(trap.conflict, Some(Family::Details));
        assert_eq!(trap.checked.last(), Some(&Family::Details));
    }

    #[test]
    fn small_talk_in_earlier_turns_is_not_a_detail() {
        let plain = "user: The boiler shows fault F28 and the radiators are cold.\n\
                     assistant: Is the gas supply on?";
        let chatty = "user: Brr, Fridays in November. The boiler shows fault F28 and the \
                      radiators are cold.\nassistant: Is the gas supply on?";
        assert_eq!(earlier_turns_conflict(plain, chatty), None);
        // A detail of the facts themselves changed still conflicts, chatter or not.
        let other_fault = "user: Brr, Fridays in November. The boiler shows fault F22 and \
                           the radiators are cold.\nassistant: Is the gas supply on?";
        assert_eq!(
            earlier_turns_conflict(plain, other_fault),
            Some(Family::Quantities)
        );
        let other_day = "user: The boiler shows fault F28 since Friday and the radiators \
                         are cold.\nassistant: Is the gas supply on?";
        let same_day = "user: The boiler shows fault F28 since Monday and the radiators \
                        are cold.\nassistant: Is the gas supply on?";
        assert_eq!(
            earlier_turns_conflict(other_day, same_day),
            Some(Family::Calendar)
        );
    }

    #[test]
    fn asides_on_both_sides_are_judged_not_dropped() {
        // Each sentence shares no word with the other text, so each alone would be an aside:
        // they are one detail said two ways.
        let accepted = "user: The shop offered store credit. I'll gladly accept.\n\
                        assistant: Shall I go ahead?";
        let declined = "user: The shop offered store credit. No thanks, I decline.\n\
                        assistant: Shall I go ahead?";
        assert_eq!(
            earlier_turns_conflict(accepted, declined),
            Some(Family::Antonyms)
        );
    }
}
