//! cachet: a semantic-caching sidecar for LLM traffic.
//!
//! A request flows one way through these modules:
//!
//! ```text
//! server ──▶ cache ──▶ scope   (cut the chat: scope key, exact key, context, query)
//!                 ├──▶ store   (sled: exact keys, entries, vectors: the source of truth)
//!                 ├──▶ embed   (local MiniLM on ONNX Runtime, micro-batched)
//!                 ├──▶ index   (one HNSW graph per scope, checkpointed, rebuilt from sled)
//!                 └──▶ router  (tiers and prices, on a miss) ──▶ upstream (OpenAI-compatible)
//!                        └──▶ meter (ledger of spend and savings, showback)
//! ```
//!
//! `config` loads and checks the settings; `simulator` is a stand-in provider for demos and
//! tests; `demo` is the client the quick start runs; `loadgen` is the load generator behind
//! `cachet bench` (Lookup traffic over gRPC, client-observed latency and hit rates); `scale` fills a data folder with a million
//! synthetic entries and measures search, memory and restart (`cachet bench scale`); `tune`
//! measures hit and wrong-answer rates on labelled `pairs` across thresholds (`cachet tune`).

pub mod alert;
pub mod breaker;
pub mod budget;
pub mod cache;
pub mod config;
pub mod demo;
pub mod embed;
pub mod fleet;
pub mod histogram;
pub mod index;
pub mod loadgen;
pub mod meter;
pub mod metrics;
pub mod operate;
pub mod pair_vectors;
pub mod pairs;
pub mod proto;
pub mod router;
pub mod scale;
pub mod scope;
pub mod server;
pub mod showback;
pub mod simulator;
pub mod store;
pub mod synthetic;
pub mod telemetry;
pub mod tune;
pub mod upstream;
