//! Calibration: fitting the bundle's temperature by negative log-likelihood, and measuring how well probabilities
//! match reality (expected calibration error and the reliability diagram's bins), after Guo et al. 2017.

use serde::Serialize;

/// Bins of the expected calibration error, as Guo et al. use.
pub const ECE_BINS: usize = 15;
/// Photos `snakeid calibrate` needs at least: fewer fit noise.
pub const MIN_PHOTOS: usize = 20;
/// The range the fitted temperature is searched in.
const T_RANGE: (f64, f64) = (0.05, 20.0);

/// One bin of a reliability diagram: predictions with confidence in `(lo, hi]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    /// Mean confidence of the bin's predictions (0 when empty).
    pub confidence: f64,
    /// Fraction of the bin's predictions that were right (0 when empty).
    pub accuracy: f64,
}

/// How well confidences match accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reliability {
    /// Σ_b |B_b|/n · |accuracy(B_b) − confidence(B_b)|.
    pub ece: f64,
    pub bins: Vec<Bin>,
}

/// Equal-width bins over (0, 1]; a confidence of exactly 0 goes to the first bin.
pub fn reliability(confidence: &[f64], correct: &[bool], bins: usize) -> Reliability {
    assert_eq!(confidence.len(), correct.len(), "one outcome per confidence");
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&c, &ok) in confidence.iter().zip(correct) {
        // Bin b holds (b/B, (b+1)/B]: ceil, not floor, so a confidence on an edge goes to the lower bin.
        let b = ((c * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        sums[b].0 += 1;
        sums[b].1 += c;
        sums[b].2 += ok as usize;
    }
    let n = confidence.len().max(1) as f64;
    let mut ece = 0.0;
    let bins = sums
        .iter()
        .enumerate()
        .map(|(b, &(count, conf, right))| {
            let (confidence, accuracy) =
                if count == 0 { (0.0, 0.0) } else { (conf / count as f64, right as f64 / count as f64) };
            ece += count as f64 / n * (accuracy - confidence).abs();
            Bin {
                lo: b as f64 / sums.len() as f64,
                hi: (b + 1) as f64 / sums.len() as f64,
                count,
                confidence,
                accuracy,
            }
        })
        .collect();
    Reliability { ece, bins }
}

/// Mean negative log-likelihood of the true classes under softmax(logits / t). `logits[i]` are photo i's scores of
/// the classes its truth `truth[i]` indexes into.
pub fn nll(logits: &[Vec<f32>], truth: &[usize], t: f64) -> f64 {
    assert_eq!(logits.len(), truth.len(), "one truth per photo");
    let total: f64 = logits
        .iter()
        .zip(truth)
        .map(|(z, &y)| {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let log_sum = z.iter().map(|&l| ((l as f64 - max) / t).exp()).sum::<f64>().ln();
            log_sum - (z[y] as f64 - max) / t
        })
        .sum();
    total / logits.len().max(1) as f64
}

/// The temperature minimising [`nll`]: golden-section search over log t. The NLL is convex in 1/t, so unimodal
/// in log t, and the search finds its minimum to ~1e-9 in log t.
pub fn fit_temperature(logits: &[Vec<f32>], truth: &[usize]) -> f64 {
    let f = |log_t: f64| nll(logits, truth, log_t.exp());
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (T_RANGE.0.ln(), T_RANGE.1.ln());
    let (mut c, mut d) = (b - phi * (b - a), a + phi * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 1e-9 {
        if fc <= fd {
            (b, d, fd) = (d, c, fc);
            c = b - phi * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + phi * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp()
}

/// The reliability of the top-1 probability of softmax(logits / t), against `truth`.
pub fn reliability_at(logits: &[Vec<f32>], truth: &[usize], t: f64) -> Reliability {
    let (confidence, correct): (Vec<f64>, Vec<bool>) = logits
        .iter()
        .zip(truth)
        .map(|(z, &y)| {
            let p = crate::decision::softmax_tempered(z, t as f32);
            let top = (0..p.len()).fold(0, |best, i| if p[i] > p[best] { i } else { best });
            (p[top] as f64, top == y)
        })
        .unzip();
    reliability(&confidence, &correct, ECE_BINS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_by_hand() {
        // 3 bins: (0, 1/3], (1/3, 2/3], (2/3, 1].
        let conf = [0.2, 0.3, 0.5, 0.9, 0.8, 1.0];
        let ok = [false, true, true, true, false, true];
        let r = reliability(&conf, &ok, 3);
        assert_eq!(r.bins.iter().map(|b| b.count).collect::<Vec<_>>(), [2, 1, 3]);
        // bin 0: conf 0.25 acc 0.5; bin 1: conf 0.5 acc 1; bin 2: conf 0.9 acc 2/3.
        let want = 2.0 / 6.0 * 0.25 + 1.0 / 6.0 * 0.5 + 3.0 / 6.0 * (0.9 - 2.0 / 3.0);
        assert!((r.ece - want).abs() < 1e-12, "{} vs {want}", r.ece);
        // An edge value belongs to the lower bin, zero to the first.
        let r = reliability(&[1.0 / 3.0, 0.0], &[true, true], 3);
        assert_eq!(r.bins[0].count, 2);
    }

    #[test]
    fn perfectly_calibrated_predictions_have_zero_ece() {
        let conf = [0.75; 8];
        let ok = [true, true, false, true, true, true, false, true];
        assert!(reliability(&conf, &ok, ECE_BINS).ece.abs() < 1e-12);
    }

    #[test]
    fn the_fitted_temperature_minimises_the_nll() {
        // Overconfident logits: right 2 times in 3 with ~99% confidence; the fit must soften them (t > 1).
        let logits: Vec<Vec<f32>> = (0..30).map(|i| vec![6.0, 0.0, (i % 5) as f32 * 0.1]).collect();
        let truth: Vec<usize> = (0..30).map(|i| if i % 3 == 0 { 1 } else { 0 }).collect();
        let t = fit_temperature(&logits, &truth);
        assert!(t > 1.0, "{t}");
        let at = nll(&logits, &truth, t);
        for dt in [0.99, 1.01, 0.9, 1.1] {
            assert!(at < nll(&logits, &truth, t * dt), "t {t} is not the minimum");
        }
        // t = 1 is the plain softmax's NLL.
        let plain: f64 =
            logits.iter().zip(&truth).map(|(z, &y)| -(crate::decision::softmax(z)[y] as f64).ln()).sum::<f64>() / 30.0;
        assert!((nll(&logits, &truth, 1.0) - plain).abs() < 1e-5);
    }
}
