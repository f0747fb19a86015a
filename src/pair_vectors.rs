//! `cachet embed-pairs`: the product's own embeddings of labelled pairs, for training and
//! checking the match scorer (`eval/train_scorer.py`) on exactly the vectors the sidecar
//! compares at match time.
//!
//! For each pair it embeds the last message of both sides with the real [`Embedder`] (spelling
//! repair included) and asks the guard families whether they would refuse the pair. It writes
//! two files: `PREFIX.f32`, the vectors as little-endian `f32`, `[pairs][2][DIMENSIONS]` (a
//! side too long to embed is all zeros), and `PREFIX.jsonl`, one line a pair in file order with
//! its label, category, split and the refusing guard family.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tracing::info;

use crate::cache::guard;
use crate::embed::{EmbedError, Embedder, DIMENSIONS};
use crate::pairs::{self, Pair, PairsError};

/// Texts sent to the embedder at once (the worker batches them further by `max_batch`).
const CHUNK: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum PairVectorsError {
    #[error(transparent)]
    Pairs(#[from] PairsError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One pair's line in `PREFIX.jsonl`.
#[derive(Debug, Serialize)]
struct PairInfo<'a> {
    same_answer: bool,
    category: &'a str,
    split: Option<&'a str>,
    /// The guard family that refuses the two last messages, if one does.
    guard: Option<&'static str>,
}

/// The text the matching path embeds for a side: its last message, trimmed.
fn query_text(side: &pairs::Side) -> String {
    side.last_text().trim().to_string()
}

/// Embeds every distinct last message of `pairs` once; returns each pair's two vectors.
async fn embed_all(
    embedder: &Embedder,
    pairs: &[Pair],
) -> Result<Vec<[Option<Vec<f32>>; 2]>, EmbedError> {
    let mut distinct: Vec<String> = Vec::new();
    let mut slot: HashMap<String, usize> = HashMap::new();
    for pair in pairs {
        for side in [&pair.a, &pair.b] {
            let text = query_text(side);
            if !slot.contains_key(&text) {
                slot.insert(text.clone(), distinct.len());
                distinct.push(text);
            }
        }
    }
    let mut vectors = Vec::with_capacity(distinct.len());
    for (n, chunk) in distinct.chunks(CHUNK).enumerate() {
        let embedded = embedder.embed(chunk.to_vec()).await?;
        vectors.extend(
            embedded
                .into_iter()
                .map(|e| (!e.truncated).then_some(e.vector)),
        );
        if n % 20 == 0 {
            info!(done = vectors.len(), of = distinct.len(), "embedding pairs");
        }
    }
    Ok(pairs
        .iter()
        .map(|p| [&p.a, &p.b].map(|side| vectors[slot[&query_text(side)]].clone()))
        .collect())
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> PairVectorsError + '_ {
    move |source| PairVectorsError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads `pairs_path`, embeds it and writes `PREFIX.f32` and `PREFIX.jsonl`. Returns the
/// number of pairs written.
pub async fn run(
    embedder: &Embedder,
    pairs_path: &Path,
    prefix: &Path,
) -> Result<usize, PairVectorsError> {
    let pairs = pairs::read(pairs_path)?;
    let vectors = embed_all(embedder, &pairs).await?;
    let vectors_path = prefix.with_extension("f32");
    let info_path = prefix.with_extension("jsonl");
    let open = |path: &Path| {
        std::fs::File::create(path)
            .map(BufWriter::new)
            .map_err(write_error(path))
    };
    let mut vectors_out = open(&vectors_path)?;
    let mut info_out = open(&info_path)?;
    let zeros = vec![0.0f32; DIMENSIONS];
    for (pair, sides) in pairs.iter().zip(&vectors) {
        for side in sides {
            for x in side.as_deref().unwrap_or(&zeros) {
                vectors_out
                    .write_all(&x.to_le_bytes())
                    .map_err(write_error(&vectors_path))?;
            }
        }
        let info = PairInfo {
            same_answer: pair.same_answer,
            category: &pair.category,
            split: pair.split.as_deref(),
            guard: guard::conflict(&query_text(&pair.a), &query_text(&pair.b))
                .map(guard::Family::as_str),
        };
        let line = serde_json::to_string(&info).expect("plain data serialises");
        writeln!(info_out, "{line}").map_err(write_error(&info_path))?;
    }
    vectors_out.flush().map_err(write_error(&vectors_path))?;
    info_out.flush().map_err(write_error(&info_path))?;
    Ok(pairs.len())
}
