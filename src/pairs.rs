//! Labelled pairs: the JSONL format that `cachet tune` and `cachet bench` read.
//!
//! One object a line: `{"a": ..., "b": ..., "same_answer": true|false, "category": "...",
//! "split": "tune"|"heldout"}`. A side is a question (a string) or a whole chat (a list of
//! `{"role", "content"}`). `same_answer` says whether serving a's answer for b is right.
//! Files ending in `.gz` are read through gzip.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::proto::Message;

#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Format {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One side of a pair.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Side {
    Question(String),
    Chat(Vec<Turn>),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pair {
    pub a: Side,
    pub b: Side,
    pub same_answer: bool,
    #[serde(default = "uncategorised")]
    pub category: String,
    #[serde(default)]
    pub split: Option<String>,
}

fn uncategorised() -> String {
    "uncategorised".to_string()
}

impl Side {
    /// The side as chat messages (a question becomes one user message).
    pub fn messages(&self) -> Vec<Message> {
        match self {
            Side::Question(text) => vec![Message {
                role: "user".into(),
                content: text.clone(),
            }],
            Side::Chat(turns) => turns
                .iter()
                .map(|t| Message {
                    role: t.role.clone(),
                    content: t.content.clone(),
                })
                .collect(),
        }
    }

    /// The question, or the chat's last message.
    pub fn last_text(&self) -> &str {
        match self {
            Side::Question(text) => text,
            Side::Chat(turns) => turns.last().map_or("", |t| t.content.as_str()),
        }
    }
}

/// Reads every pair of `path` (gzip if it ends in `.gz`).
pub fn read(path: &Path) -> Result<Vec<Pair>, PairsError> {
    let read_error = |source| PairsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut pairs = Vec::new();
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(read_error)?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(&line).map_err(|e| PairsError::Format {
            path: path.to_path_buf(),
            line: index + 1,
            message: e.to_string(),
        })?;
        pairs.push(pair);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_chats_both_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"a": "open on Sundays?", "b": "closed on Sundays?", "same_answer": false, "category": "antonym", "split": "heldout"}"#,
                "\n\n",
                r#"{"a": [{"role": "user", "content": "hi"}, {"role": "user", "content": "cancel it"}], "b": "cancel it", "same_answer": false}"#,
                "\n"
            ),
        )
        .unwrap();
        let pairs = read(&path).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].split.as_deref(), Some("heldout"));
        assert_eq!(pairs[1].category, "uncategorised");
        assert_eq!(pairs[1].a.messages().len(), 2);
        assert_eq!(pairs[1].a.last_text(), "cancel it");
        std::fs::write(&path, "{\"a\": 1}\n").unwrap();
        assert!(read(&path)
            .unwrap_err()
            .to_string()
            .contains("pairs.jsonl:1"));
    }
}
