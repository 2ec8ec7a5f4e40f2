//! A softmax (multinomial logistic) regression on feature vectors, with L2 weight decay, fitted by full-batch Adam:
//! deterministic (no sampling), a few seconds for thousands of photos.

/// Row-major samples, `dim` features each.
pub struct Samples<'a> {
    pub x: &'a [f32],
    pub y: &'a [usize],
    pub dim: usize,
}

/// Fitting settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// L2 penalty on the weights (not the biases), added to the mean cross-entropy as `l2 / 2 * |W|^2`.
    pub l2: f32,
    pub steps: usize,
    pub learning_rate: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { l2: 3e-3, steps: 1000, learning_rate: 0.01 }
    }
}

/// Weights `[classes, dim]` (row-major) and biases of the fitted model.
pub struct Linear {
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub dim: usize,
}

impl Linear {
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.weights.chunks(self.dim).zip(&self.bias).map(|(w, b)| b + dot(w, x)).collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums: the compiler vectorises this, and the order is fixed (deterministic on every CPU).
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// Fits `classes` outputs to the samples.
pub fn fit(s: &Samples, classes: usize, settings: Settings) -> Linear {
    let (n, d) = (s.y.len(), s.dim);
    assert!(n > 0 && s.x.len() == n * d && s.y.iter().all(|&c| c < classes));
    let mut model = Linear { weights: vec![0.0; classes * d], bias: vec![0.0; classes], dim: d };
    let params = classes * (d + 1);
    let (mut m, mut v) = (vec![0f32; params], vec![0f32; params]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut grad = vec![0f32; params];
    let mut p = vec![0f32; classes];
    for step in 1..=settings.steps {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (x, &y) in s.x.chunks(d).zip(s.y) {
            let z = model.logits(x);
            softmax_into(&z, &mut p);
            p[y] -= 1.0;
            for c in 0..classes {
                let g = p[c] / n as f32;
                if g != 0.0 {
                    grad[c * d..(c + 1) * d].iter_mut().zip(x).for_each(|(gw, xi)| *gw += g * xi);
                    grad[classes * d + c] += g;
                }
            }
        }
        for (g, w) in grad[..classes * d].iter_mut().zip(&model.weights) {
            *g += settings.l2 * w;
        }
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        let lr = settings.learning_rate;
        let mut update = |param: &mut f32, i: usize| {
            m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
            v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
            *param -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        };
        for (i, w) in model.weights.iter_mut().enumerate() {
            update(w, i);
        }
        for (c, b) in model.bias.iter_mut().enumerate() {
            update(b, classes * d + c);
        }
    }
    model
}

fn softmax_into(z: &[f32], out: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, &v) in out.iter_mut().zip(z) {
        *o = (v - max).exp();
        sum += *o;
    }
    out.iter_mut().for_each(|o| *o /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_three_clusters_and_is_deterministic() {
        // Three clusters in 4-D, 30 points each, from a fixed xorshift.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let centres = [[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.0]];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..90 {
            let c = i % 3;
            x.extend(centres[c].iter().map(|v| v + next()));
            y.push(c);
        }
        let s = Samples { x: &x, y: &y, dim: 4 };
        let a = fit(&s, 3, Settings::default());
        let right = x.chunks(4).zip(&y).filter(|(p, &t)| {
            let z = a.logits(p);
            (0..3).max_by(|&i, &j| z[i].total_cmp(&z[j])) == Some(t)
        });
        assert_eq!(right.count(), 90);
        let b = fit(&s, 3, Settings::default());
        assert_eq!(a.weights, b.weights, "the same samples give the same weights");
    }
}
