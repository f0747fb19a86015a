//! How a chat is cut up for caching: the part that must match exactly (the scope), the earlier
//! turns that must match in meaning (the context), and the last message (the query).
//!
//! Isolation is by construction: the scope key is a hash of the tenant, the model, the system
//! prompt and the answer-changing sampling parameters, and every lookup searches one scope's
//! index only. The scope is never mixed into the text that is embedded, so no similarity, however
//! high, can carry an answer across a scope boundary.

use std::fmt;

/// The role of one chat message. Unknown roles are refused rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "system" => Self::System,
            "developer" => Self::Developer,
            "user" => Self::User,
            "assistant" => Self::Assistant,
            "tool" => Self::Tool,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Developer => "developer",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }

    /// System and developer messages set the behaviour of the model: they belong to the scope.
    fn is_instruction(self) -> bool {
        matches!(self, Self::System | Self::Developer)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// Sampling parameters that change the answer. `None` means "the upstream's default".
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingParams {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    pub seed: Option<i64>,
    pub stop: Vec<String>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
}

/// 128-bit key of one scope.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ScopeKey(pub [u8; 16]);

impl fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeKey({self})")
    }
}

/// 128-bit hash of normalised text, for exact matching.
pub type TextHash = [u8; 16];

/// A chat cut into its cache-relevant parts.
#[derive(Debug, Clone)]
pub struct ScopedChat {
    pub scope: ScopeKey,
    /// Hash of every non-instruction turn, normalised: equal hashes make an exact hit.
    pub exact_key: TextHash,
    /// The last message: what is embedded and searched for.
    pub query: String,
    /// The earlier non-instruction turns as one text (`role: content` lines), empty if none.
    pub context: String,
    /// Hash of the normalised context, for contexts too long to compare by meaning.
    pub context_hash: TextHash,
}

/// Computes the scope key.
pub fn scope_key(
    tenant: &str,
    model: &str,
    messages: &[ChatMessage],
    params: &SamplingParams,
) -> ScopeKey {
    let mut h = blake3::Hasher::new();
    h.update(b"cachet.scope.v1\0");
    field(&mut h, tenant.as_bytes());
    field(&mut h, model.as_bytes());
    for m in messages.iter().filter(|m| m.role.is_instruction()) {
        field(&mut h, m.role.as_str().as_bytes());
        field(&mut h, normalise_whitespace(&m.content).as_bytes());
    }
    // Parameters go in by their canonical encoding, so 0.7 and 0.70 agree.
    field(
        &mut h,
        &postcard::to_allocvec(params).expect("params serialise"),
    );
    ScopeKey(truncate(h.finalize()))
}

impl ScopedChat {
    /// Cuts `messages` into scope, context and query. `messages` must hold at least one
    /// non-instruction message (checked by the caller's validation).
    pub fn new(
        tenant: &str,
        model: &str,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Self {
        let turns: Vec<&ChatMessage> = messages
            .iter()
            .filter(|m| !m.role.is_instruction())
            .collect();
        let (last, earlier) = turns.split_last().expect("validated: at least one turn");
        let context = earlier
            .iter()
            .map(|m| format!("{}: {}", m.role.as_str(), m.content.trim()))
            .collect::<Vec<_>>()
            .join("\n");
        let exact_key = hash_turns(&turns);
        Self {
            scope: scope_key(tenant, model, messages, params),
            exact_key,
            query: last.content.trim().to_string(),
            context_hash: hash_turns(earlier),
            context,
        }
    }
}

/// What the user said in a context as [`ScopedChat::new`] writes it ("role: content" per turn,
/// a turn's own line breaks kept), without the role names.
pub fn user_turns(context: &str) -> String {
    let mut said = Vec::new();
    let mut by_user = false;
    for line in context.lines() {
        let turn = line
            .split_once(": ")
            .and_then(|(name, rest)| Some((Role::parse(name)?, rest)));
        let text = match turn {
            Some((role, rest)) => {
                by_user = role == Role::User;
                rest
            }
            None => line,
        };
        if by_user {
            said.push(text);
        }
    }
    said.join("\n")
}

fn hash_turns(turns: &[&ChatMessage]) -> TextHash {
    let mut h = blake3::Hasher::new();
    h.update(b"cachet.turns.v1\0");
    for m in turns {
        field(&mut h, m.role.as_str().as_bytes());
        field(&mut h, normalise_for_exact(&m.content).as_bytes());
    }
    truncate(h.finalize())
}

/// Length-prefixed so that ("ab", "c") and ("a", "bc") hash differently.
fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn truncate(hash: blake3::Hash) -> [u8; 16] {
    hash.as_bytes()[..16].try_into().expect("16 of 32 bytes")
}

/// Collapses runs of white space and trims: formatting noise that never changes an answer.
pub fn normalise_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the exact path compares: white space collapsed and letters lower-cased. Punctuation is
/// kept, since in code and numbers it carries meaning.
pub fn normalise_for_exact(text: &str) -> String {
    normalise_whitespace(text).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }

    fn chat(messages: &[ChatMessage]) -> ScopedChat {
        ScopedChat::new("t", "m", messages, &SamplingParams::default())
    }

    #[test]
    fn casing_and_spacing_do_not_change_the_exact_key() {
        let a = chat(&[msg(Role::User, "What is  Rust?")]);
        let b = chat(&[msg(Role::User, " what is rust?\n")]);
        assert_eq!(a.exact_key, b.exact_key);
        assert_eq!(a.scope, b.scope);
    }

    #[test]
    fn every_scope_field_separates_scopes() {
        let m = [msg(Role::System, "be brief"), msg(Role::User, "hi")];
        let p = SamplingParams::default();
        let base = scope_key("t", "m", &m, &p);
        assert_ne!(base, scope_key("u", "m", &m, &p));
        assert_ne!(base, scope_key("t", "n", &m, &p));
        let other_system = [msg(Role::System, "be verbose"), msg(Role::User, "hi")];
        assert_ne!(base, scope_key("t", "m", &other_system, &p));
        let hot = SamplingParams {
            temperature: Some(1.0),
            ..p.clone()
        };
        assert_ne!(base, scope_key("t", "m", &m, &hot));
        // Field boundaries matter: tenant "tm" + model "" is not tenant "t" + model "m".
        assert_ne!(base, scope_key("tm", "", &m, &p));
    }

    #[test]
    fn user_turns_keep_what_the_user_said() {
        let context = "user: I booked a double room.\nIt's for two nights.\n\
                       assistant: Thanks! How can I help?\nuser: Note: it's in Lisbon.";
        assert_eq!(
            user_turns(context),
            "I booked a double room.\nIt's for two nights.\nNote: it's in Lisbon."
        );
    }

    #[test]
    fn earlier_turns_are_context_not_query() {
        let c = chat(&[
            msg(Role::System, "s"),
            msg(Role::User, "I have a gym membership"),
            msg(Role::Assistant, "Noted."),
            msg(Role::User, "yes, cancel it"),
        ]);
        assert_eq!(c.query, "yes, cancel it");
        assert_eq!(
            c.context,
            "user: I have a gym membership\nassistant: Noted."
        );
        let single = chat(&[msg(Role::User, "yes, cancel it")]);
        assert_ne!(c.exact_key, single.exact_key);
        assert_ne!(c.context_hash, single.context_hash);
    }
}
