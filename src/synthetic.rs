//! Synthetic embeddings for index-only benchmarks (`cachet bench scale`, the criterion benches).
//!
//! Embedding a million real prompts would take an hour on two cores and measure the model, not
//! the index, so scale figures use generated vectors. They are SYNTHETIC, and every figure built
//! on them says so. Two shapes ([`Shape`]):
//!
//! - **calibrated** (the default): shaped like the product's own embeddings of real questions.
//!   Fitted to 16,000 Quora questions embedded by cachet's model: the variance spectrum of
//!   those vectors (a power law over about 230 directions, then a fast fall; participation
//!   ratio 149 against 140 measured), their common offset (mean norm 0.21), and how close each
//!   question's nearest other question is (nearest-neighbour cosine, percentiles 5/25/50/75:
//!   0.35/0.52/0.65/0.76 here against 0.44/0.54/0.64/0.78 measured at 16,000 points). Points
//!   come in many small topics (4 points a topic on average), each point at its own distance
//!   from its topic's centre. `eval/fit_synthetic.py` reproduces the fit.
//! - **isotropic**: topic centres plus noise spread evenly over all 384 dimensions. Points of a
//!   topic are then all nearly equidistant, which leaves a graph search little to follow: a
//!   hard case that real embeddings do not look like, kept to compare with earlier figures.
//!
//! Every vector is a pure function of (seed, index), so a benchmark can regenerate point `i` or
//! its queries on any thread, or in a later process, without keeping the data in memory.

/// Deterministic xorshift64* generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for stream `stream` of `seed` (splitmix64 of both, so nearby streams are
    /// unrelated).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1].
    fn unit_f64(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// `dims` standard normal values (Box-Muller, both outputs used).
    pub fn normals(&mut self, dims: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(dims + 1);
        while out.len() < dims {
            let (u, v) = (self.unit_f64(), self.unit_f64());
            let r = (-2.0 * u.ln()).sqrt();
            let angle = std::f64::consts::TAU * v;
            out.push((r * angle.cos()) as f32);
            out.push((r * angle.sin()) as f32);
        }
        out.truncate(dims);
        out
    }

    /// A direction uniform on the unit sphere.
    pub fn unit_vector(&mut self, dims: usize) -> Vec<f32> {
        normalised(self.normals(dims))
    }
}

pub fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// `a + scale * b`, normalised.
fn blend(a: &[f32], b: &[f32], scale: f32) -> Vec<f32> {
    normalised(a.iter().zip(b).map(|(x, y)| x + scale * y).collect())
}

/// How synthetic points spread around their topics (see the module docs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Fitted to the product's embeddings of real questions.
    Calibrated,
    /// Noise spread evenly over every dimension: a hard case.
    Isotropic,
}

impl Shape {
    /// Topics when none are asked for: calibrated points come about 4 to a topic (so topics
    /// grow with the data, as questions do); isotropic ones keep the 1,000 topics earlier
    /// figures were measured with.
    pub fn default_topics(self, points: u64) -> usize {
        match self {
            Shape::Calibrated => (points / 4).max(1) as usize,
            Shape::Isotropic => 1_000,
        }
    }
}

/// Clustered unit vectors: point `i` is its topic's centre plus noise.
#[derive(Debug, Clone)]
pub struct Clustered {
    seed: u64,
    dims: usize,
    topics: usize,
    spread: Spread,
}

#[derive(Debug, Clone)]
enum Spread {
    /// Point `i` belongs to topic `i mod topics`; centres are kept.
    Isotropic { centres: Vec<Vec<f32>> },
    /// Point `i` belongs to a topic picked by hash; a centre is regenerated when needed (a
    /// million topics would not fit in memory). `scales[k]` is the standard deviation along
    /// dimension `k` (the fitted spectrum; the axes stand for any orthonormal basis, which
    /// dot products cannot tell apart).
    Calibrated { scales: Vec<f32> },
}

/// Isotropic: norm of the noise added to a topic centre: cosine point–centre ~0.71,
/// point–point in a topic ~0.5.
const SPREAD: f32 = 1.0;
/// Isotropic: norm of the noise that turns a stored point into a query "asking the same
/// thing": cosine ~0.9 to its source, about what a paraphrase reaches with MiniLM.
const PARAPHRASE: f32 = 0.5;

/// Calibrated: variance along the k-th direction (1-based) is proportional to
/// `(k + K0)^-POWER`, times `exp(-(k - CUT) / FALL)` past `CUT` (fitted for 384 dims; other
/// dimensions scale `K0`, `CUT` and `FALL`).
const SPECTRUM_K0: f64 = 18.0;
const SPECTRUM_POWER: f64 = 1.039;
const SPECTRUM_CUT: f64 = 228.0;
const SPECTRUM_FALL: f64 = 74.6;
/// Calibrated: a point's distance from its centre, relative to the centres' own spread, is
/// log-normal with this median and log-standard deviation: some questions nearly repeat
/// another, others are loosely related to anything stored.
const TOPIC_SPREAD_MEDIAN: f64 = 0.9;
const TOPIC_SPREAD_SIGMA: f64 = 0.6;
/// Calibrated: the offset every embedding shares (the norm of their mean).
const COMMON_OFFSET: f32 = 0.21;
/// Calibrated: noise of a paraphrase relative to the spectrum: cosine ~0.9 to its source.
const PARAPHRASE_CALIBRATED: f32 = 0.48;

/// Salts that keep the generator's streams apart.
const TOPIC_STREAM: u64 = 0x0070_91c5;
const CENTRE_STREAM: u64 = 0x00ce_477e;
const PARAPHRASE_STREAM: u64 = 0x0051_7e57;

impl Clustered {
    pub fn new(seed: u64, dims: usize, topics: usize, shape: Shape) -> Self {
        let topics = topics.max(1);
        let spread = match shape {
            Shape::Isotropic => {
                let mut rng = Rng::new(seed, u64::MAX);
                Spread::Isotropic {
                    centres: (0..topics).map(|_| rng.unit_vector(dims)).collect(),
                }
            }
            Shape::Calibrated => Spread::Calibrated {
                scales: spectrum_scales(dims),
            },
        };
        Self {
            seed,
            dims,
            topics,
            spread,
        }
    }

    /// Point `i` (stored points are 0..N; points past N are fresh draws never stored).
    pub fn point(&self, i: u64) -> Vec<f32> {
        match &self.spread {
            Spread::Isotropic { centres } => {
                let centre = &centres[(i % self.topics as u64) as usize];
                let noise = Rng::new(self.seed, i).unit_vector(self.dims);
                blend(centre, &noise, SPREAD)
            }
            Spread::Calibrated { scales } => {
                let topic = Rng::new(self.seed ^ TOPIC_STREAM, i).next_u64() % self.topics as u64;
                let mut centre = Rng::new(self.seed ^ CENTRE_STREAM, topic).normals(self.dims);
                let mut rng = Rng::new(self.seed, i);
                let distance = (TOPIC_SPREAD_MEDIAN.ln()
                    + TOPIC_SPREAD_SIGMA * f64::from(rng.normals(1)[0]))
                .exp() as f32;
                let noise = rng.normals(self.dims);
                for ((c, n), s) in centre.iter_mut().zip(&noise).zip(scales) {
                    *c = (*c + distance * n) * s;
                }
                let mut point = normalised(centre);
                if let Some(last) = point.last_mut() {
                    *last += COMMON_OFFSET;
                }
                normalised(point)
            }
        }
    }

    /// A query close to point `i`, the way a paraphrase is close to the stored prompt
    /// (`variant` picks one of many such queries).
    pub fn paraphrase_of(&self, i: u64, variant: u64) -> Vec<f32> {
        let mut rng = Rng::new(self.seed ^ PARAPHRASE_STREAM, i ^ (variant << 40));
        match &self.spread {
            Spread::Isotropic { .. } => {
                blend(&self.point(i), &rng.unit_vector(self.dims), PARAPHRASE)
            }
            Spread::Calibrated { scales } => {
                let noise: Vec<f32> = rng
                    .normals(self.dims)
                    .iter()
                    .zip(scales)
                    .map(|(n, s)| n * s)
                    .collect();
                blend(&self.point(i), &noise, PARAPHRASE_CALIBRATED)
            }
        }
    }
}

/// Standard deviations along each dimension for the calibrated shape, scaled to a total
/// variance of 1.
fn spectrum_scales(dims: usize) -> Vec<f32> {
    let stretch = dims as f64 / 384.0;
    let variances: Vec<f64> = (1..=dims)
        .map(|k| {
            let k = k as f64;
            let past_cut = (k - SPECTRUM_CUT * stretch).max(0.0);
            (k + SPECTRUM_K0 * stretch).powf(-SPECTRUM_POWER)
                * (-past_cut / (SPECTRUM_FALL * stretch)).exp()
        })
        .collect();
    let total: f64 = variances.iter().sum();
    variances
        .iter()
        .map(|v| (v / total).sqrt() as f32)
        .collect()
}

/// For each query, the index (in 0..points) of the point with the highest dot product, and that
/// similarity: exact nearest neighbours by brute force on `threads` threads. `point(i)` gives
/// point `i`: a regenerated synthetic point (`|i| data.point(i)`) or a stored row.
pub fn brute_force_nearest<P: AsRef<[f32]>>(
    point: impl Fn(u64) -> P + Sync,
    points: u64,
    queries: &[Vec<f32>],
    threads: usize,
) -> Vec<(u64, f32)> {
    let threads = threads.max(1) as u64;
    let per_thread: Vec<Vec<(f32, u64)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let point = &point;
                s.spawn(move || {
                    let mut best = vec![(f32::NEG_INFINITY, 0u64); queries.len()];
                    let mut i = t;
                    while i < points {
                        let p = point(i);
                        for (slot, q) in best.iter_mut().zip(queries) {
                            let d = crate::embed::similarity(p.as_ref(), q);
                            if d > slot.0 {
                                *slot = (d, i);
                            }
                        }
                        i += threads;
                    }
                    best
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("brute force worker"))
            .collect()
    });
    (0..queries.len())
        .map(|q| {
            per_thread
                .iter()
                .map(|best| best[q])
                .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(similarity, i)| (i, similarity))
                .expect("at least one thread")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_reproducible_unit_vectors_clustered_by_topic() {
        let data = Clustered::new(7, 64, 10, Shape::Isotropic);
        let again = Clustered::new(7, 64, 10, Shape::Isotropic);
        assert_eq!(data.point(123), again.point(123));
        let norm: f32 = data.point(5).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        let sim = |a: &[f32], b: &[f32]| crate::embed::similarity(a, b);
        // Same topic (5 and 15) against other topics (5 and 16).
        assert!(sim(&data.point(5), &data.point(15)) > 0.3);
        assert!(sim(&data.point(5), &data.point(16)).abs() < 0.3);
        let q = data.paraphrase_of(5, 0);
        assert!(sim(&q, &data.point(5)) > 0.8);
        assert_eq!(brute_force_nearest(|i| data.point(i), 100, &[q], 2)[0].0, 5);
    }

    #[test]
    fn calibrated_points_have_close_relatives_and_paraphrases_near_their_source() {
        let points = 4_000;
        let data = Clustered::new(
            7,
            384,
            Shape::Calibrated.default_topics(points),
            Shape::Calibrated,
        );
        assert_eq!(
            data.point(123),
            Clustered::new(7, 384, 1_000, Shape::Calibrated).point(123)
        );
        let norm: f32 = data.point(5).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        let vectors: Vec<Vec<f32>> = (0..points).map(|i| data.point(i)).collect();
        let sim = |a: &[f32], b: &[f32]| crate::embed::similarity(a, b);
        // Unrelated pairs sit near the shared offset; each point's nearest other point is far
        // closer (the fit's median at 16,000 points is 0.65; fewer points, fewer relatives).
        let unrelated: f32 = (0..200)
            .map(|i| sim(&vectors[i], &vectors[i + 1_000]))
            .sum::<f32>()
            / 200.0;
        assert!((0.0..0.15).contains(&unrelated), "unrelated {unrelated}");
        let mut nearest: Vec<f32> = (0..200)
            .map(|i| {
                (0..points as usize)
                    .filter(|&j| j != i)
                    .map(|j| sim(&vectors[i], &vectors[j]))
                    .fold(f32::MIN, f32::max)
            })
            .collect();
        nearest.sort_by(f32::total_cmp);
        let median = nearest[100];
        assert!(
            (0.45..0.8).contains(&median),
            "nearest-neighbour median {median}"
        );
        for i in [3, 99, 2_500] {
            let q = data.paraphrase_of(i, 1);
            let s = sim(&q, &vectors[i as usize]);
            assert!((0.85..0.95).contains(&s), "paraphrase of {i} at {s}");
            assert_eq!(
                brute_force_nearest(|i| data.point(i), points, &[q], 2)[0].0,
                i
            );
        }
    }
}
