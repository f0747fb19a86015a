//! Synthetic embeddings for index-only benchmarks (`cachet bench scale`, the criterion benches).
//!
//! Embedding a million real prompts would take an hour on two cores and measure the model, not
//! the index, so scale figures use generated vectors. They are SYNTHETIC, and every figure built
//! on them says so. To keep recall meaningful they are not uniform on the sphere (where every
//! point is about equally far from every other and "the nearest" means little) but clustered
//! like sentence embeddings: each point is a topic centre plus Gaussian noise, so neighbours
//! within a topic sit at cosine ~0.5 and across topics near 0.
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

/// Clustered unit vectors: point `i` is topic `i mod topics` plus noise.
#[derive(Debug, Clone)]
pub struct Clustered {
    seed: u64,
    dims: usize,
    centres: Vec<Vec<f32>>,
}

/// Norm of the noise added to a topic centre: cosine point–centre ~0.71, point–point in a
/// topic ~0.5.
const SPREAD: f32 = 1.0;
/// Norm of the noise that turns a stored point into a query "asking the same thing": cosine
/// ~0.9 to its source, about what a paraphrase reaches with MiniLM.
const PARAPHRASE: f32 = 0.5;

impl Clustered {
    pub fn new(seed: u64, dims: usize, topics: usize) -> Self {
        let mut rng = Rng::new(seed, u64::MAX);
        let centres = (0..topics.max(1)).map(|_| rng.unit_vector(dims)).collect();
        Self {
            seed,
            dims,
            centres,
        }
    }

    /// Point `i` (stored points are 0..N; points past N are fresh draws never stored).
    pub fn point(&self, i: u64) -> Vec<f32> {
        let centre = &self.centres[(i % self.centres.len() as u64) as usize];
        let noise = Rng::new(self.seed, i).unit_vector(self.dims);
        blend(centre, &noise, SPREAD)
    }

    /// A query close to point `i`, the way a paraphrase is close to the stored prompt
    /// (`variant` picks one of many such queries).
    pub fn paraphrase_of(&self, i: u64, variant: u64) -> Vec<f32> {
        let noise = Rng::new(self.seed ^ 0x0051_7e57, i ^ (variant << 40)).unit_vector(self.dims);
        blend(&self.point(i), &noise, PARAPHRASE)
    }
}

/// For each query, the index (in 0..points) of the point with the highest dot product: exact
/// nearest neighbours by brute force, regenerating the points on `threads` threads.
pub fn brute_force_nearest(
    data: &Clustered,
    points: u64,
    queries: &[Vec<f32>],
    threads: usize,
) -> Vec<u64> {
    let threads = threads.max(1) as u64;
    let per_thread: Vec<Vec<(f32, u64)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut best = vec![(f32::NEG_INFINITY, 0u64); queries.len()];
                    let mut i = t;
                    while i < points {
                        let p = data.point(i);
                        for (slot, q) in best.iter_mut().zip(queries) {
                            let d = crate::embed::similarity(&p, q);
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
                .map(|(_, i)| i)
                .expect("at least one thread")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_reproducible_unit_vectors_clustered_by_topic() {
        let data = Clustered::new(7, 64, 10);
        let again = Clustered::new(7, 64, 10);
        assert_eq!(data.point(123), again.point(123));
        let norm: f32 = data.point(5).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        let sim = |a: &[f32], b: &[f32]| crate::embed::similarity(a, b);
        // Same topic (5 and 15) against other topics (5 and 16).
        assert!(sim(&data.point(5), &data.point(15)) > 0.3);
        assert!(sim(&data.point(5), &data.point(16)).abs() < 0.3);
        let q = data.paraphrase_of(5, 0);
        assert!(sim(&q, &data.point(5)) > 0.8);
        assert_eq!(brute_force_nearest(&data, 100, &[q], 2), vec![5]);
    }
}
