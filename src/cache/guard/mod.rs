//! Guards: checks between "similar enough" and "served" that refuse a candidate when the two
//! texts differ in a way that changes the answer, however close their embeddings are.
//!
//! Sentence embeddings barely notice a changed number: "refund order 48213" and "refund order
//! 48231" sit at a cosine of about 0.99. Each guard family looks for one kind of such difference
//! and is independent of the others; adding a family means adding one function to [`FAMILIES`].

/// A kind of difference that changes the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Different numbers, amounts, identifiers, dates written with digits.
    Numbers,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Numbers => "numbers",
        }
    }
}

type Check = fn(&str, &str) -> bool;

/// Every guard family with its check; a check returns true when the texts conflict.
const FAMILIES: &[(Family, Check)] = &[(Family::Numbers, numbers_differ)];

/// The first family under which `a` and `b` must not share an answer, if any.
pub fn conflict(a: &str, b: &str) -> Option<Family> {
    FAMILIES
        .iter()
        .find(|(_, differ)| differ(a, b))
        .map(|(family, _)| *family)
}

/// Numbers are compared as the multiset of digit runs (with their decimal parts), so that
/// reordering a sentence keeps a hit but any changed, added or dropped number refuses it.
fn numbers_differ(a: &str, b: &str) -> bool {
    numbers(a) != numbers(b)
}

fn numbers(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let decimal_point = (c == '.' || c == ',')
            && !current.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() || decimal_point {
            current.push(if c == ',' { '.' } else { c });
        } else if !current.is_empty() {
            found.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        found.push(current);
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_numbers_conflict() {
        assert_eq!(
            conflict("what is 2+2", "what is 2+3"),
            Some(Family::Numbers)
        );
        assert_eq!(
            conflict("Track order 48213", "Track order 48231"),
            Some(Family::Numbers)
        );
        assert_eq!(
            conflict("convert 3.5 km", "convert 35 km"),
            Some(Family::Numbers)
        );
        assert_eq!(conflict("top 10 films", "top films"), Some(Family::Numbers));
    }

    #[test]
    fn same_numbers_in_other_words_do_not() {
        assert_eq!(
            conflict("How do I reset my password?", "How can I reset my password"),
            None
        );
        assert_eq!(
            conflict(
                "flights on 12 May from gate 4",
                "from gate 4, flights on 12 May"
            ),
            None
        );
        assert_eq!(conflict("costs 3,5 euros", "costs 3.5 euros"), None);
    }
}
