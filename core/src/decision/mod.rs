//! From logits to the answer a person reads: softmax, snake gate, country prior, top-k, venom warning, uncertainty, genus.

pub mod calibration;

use crate::bundle::labels::Label;
use crate::bundle::manifest::DecisionSpec;
use serde::Serialize;

/// One ranked species.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The model output index.
    pub class_index: usize,
    pub label: String,
    pub scientific_name: String,
    /// P(species | snake, photo[, country]).
    pub probability: f32,
    pub venomous: bool,
}

/// A genus-level answer, given when the species are split but their genus is clear.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenusAnswer {
    pub genus: String,
    pub probability: f32,
    /// Whether any species of the genus in the bundle is venomous.
    pub venomous: bool,
}

/// What the snake gate says, in three words that mean the same in every front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnakeVerdict {
    /// P(snake) is at or above `snake_threshold + gate_margin`.
    Snake,
    /// Neither `snake` nor `none`: P(snake) is in the band around the threshold, or the photo looks like what real
    /// snakes are taken for (a lizard, a newt, a slug...). The gate itself cannot tell.
    Possible,
    /// P(snake) + P(look-alikes) is below the `none` line.
    #[serde(rename = "none")]
    NoSnake,
}

/// The snake gate's two sums over a photo's class probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// Sum of the snake classes.
    pub snake: f32,
    /// Sum of the look-alike classes (`decision.lookalike_classes`).
    pub lookalike: f32,
}

impl Gate {
    pub fn of(probs: &[f32], labels: &[Label], spec: &DecisionSpec) -> Gate {
        let snake = labels.iter().filter(|l| l.is_snake).map(|l| probs[l.class_index]).sum::<f32>().clamp(0.0, 1.0);
        let lookalike = spec.lookalike_classes.iter().map(|&c| probs[c]).sum::<f32>().clamp(0.0, 1.0);
        Gate { snake, lookalike }
    }

    /// Whether a `none` view is worth another view: its snakes and look-alikes reach `decision.more_views_above`.
    pub fn worth_another_view(self, spec: &DecisionSpec) -> bool {
        self.snake + self.lookalike >= spec.more_views_above
    }

    /// `snake` above the band; `none` only when snakes and look-alikes together are under the `none` line; else
    /// `possible`. Never `none` for a P(snake) inside the band.
    pub fn verdict(self, spec: &DecisionSpec) -> SnakeVerdict {
        if self.snake >= spec.snake_threshold + spec.gate_margin {
            SnakeVerdict::Snake
        } else if self.snake + self.lookalike < spec.none_line()
            && self.snake <= spec.snake_threshold - spec.gate_margin
        {
            SnakeVerdict::NoSnake
        } else {
            SnakeVerdict::Possible
        }
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// P(snake) at or above the threshold (kept for compatibility: `snake_verdict` is what to show, and a photo in
    /// the band is `possible` whichever side of the threshold it falls).
    pub snake_detected: bool,
    pub snake_verdict: SnakeVerdict,
    /// Sum of the snake classes' probabilities (1 for a species-only model).
    pub snake_probability: f32,
    /// Sum of the look-alike classes' probabilities (lizards, newts...: counted toward `possible`).
    pub lookalike_probability: f32,
    /// Total probability of venomous species (conditional on a snake), after the prior.
    pub venomous_probability: f32,
    /// A venomous species holds at least `venom_threshold` (and the verdict is `snake` or `possible`).
    pub venomous_warning: bool,
    /// The venomous species the warning names: each holding at least `venom_threshold`, most likely first; empty
    /// without a warning. Not limited to the top-k, so asking for fewer species never hides a warning.
    pub warning_species: Vec<Prediction>,
    pub uncertain: bool,
    pub genus: Option<GenusAnswer>,
    pub predictions: Vec<Prediction>,
}

/// Numerically stable softmax in f32.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    softmax_tempered(logits, 1.0)
}

/// Softmax of `logits / temperature` (temperature scaling, Guo et al. 2017: the bundle's calibration).
pub fn softmax_tempered(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut out: Vec<f32> = logits.iter().map(|&l| ((l - max) / temperature).exp()).collect();
    let sum: f32 = out.iter().sum();
    out.iter_mut().for_each(|p| *p /= sum);
    out
}

/// Turns class probabilities into a decision. `prior` (if any) gives p(s|c) per class index for snake classes.
pub fn decide(probs: &[f32], labels: &[Label], prior: Option<&[f32]>, top_k: usize, spec: &DecisionSpec) -> Decision {
    let snakes: Vec<&Label> = labels.iter().filter(|l| l.is_snake).collect();
    let gate = Gate::of(probs, labels, spec);
    // Species distribution conditional on "this is a snake".
    let mut cond: Vec<f32> = snakes.iter().map(|l| probs[l.class_index]).collect();
    let total: f32 = cond.iter().sum();
    if total > 0.0 {
        cond.iter_mut().for_each(|p| *p /= total);
    } else {
        cond.iter_mut().for_each(|p| *p = 1.0 / snakes.len() as f32);
    }
    if let Some(prior) = prior {
        let species_prior: Vec<f32> = snakes.iter().map(|l| prior[l.class_index]).collect();
        crate::bundle::prior::apply(&mut cond, &species_prior);
    }
    let mut order: Vec<usize> = (0..snakes.len()).collect();
    order.sort_by(|&a, &b| cond[b].total_cmp(&cond[a]).then(a.cmp(&b)));
    let prediction = |i: usize| Prediction {
        class_index: snakes[i].class_index,
        label: snakes[i].label.clone(),
        scientific_name: snakes[i].scientific_name.clone(),
        probability: cond[i],
        venomous: snakes[i].venomous,
    };
    let predictions: Vec<Prediction> = order.iter().take(top_k.max(1)).map(|&i| prediction(i)).collect();

    let snake_detected = gate.snake >= spec.snake_threshold;
    let snake_verdict = gate.verdict(spec);
    let gate_unclear = snake_verdict == SnakeVerdict::Possible;
    let top1 = predictions.first().map_or(0.0, |p| p.probability);
    let venomous_probability: f32 = snakes.iter().zip(&cond).filter(|(l, _)| l.venomous).map(|(_, p)| p).sum();
    // No warning beside "no snake": the reader would have to choose which line to believe.
    let warning_species: Vec<Prediction> = if snake_verdict == SnakeVerdict::NoSnake {
        Vec::new()
    } else {
        order
            .iter()
            .filter(|&&i| snakes[i].venomous && cond[i] >= spec.venom_threshold)
            .map(|&i| prediction(i))
            .collect()
    };
    let venomous_warning = !warning_species.is_empty();

    let genus = (top1 < spec.uncertain_below)
        .then(|| best_genus(&snakes, &cond))
        .flatten()
        .filter(|g| g.probability >= spec.genus_at_least);
    let uncertain = gate_unclear || (snake_detected && top1 < spec.uncertain_below);
    Decision {
        snake_detected,
        snake_verdict,
        snake_probability: gate.snake,
        lookalike_probability: gate.lookalike,
        venomous_probability,
        venomous_warning,
        warning_species,
        uncertain,
        genus,
        predictions,
    }
}

/// The genus with the most probability, if it has at least two species in the bundle.
fn best_genus(snakes: &[&Label], cond: &[f32]) -> Option<GenusAnswer> {
    let mut by_genus: std::collections::BTreeMap<&str, (f32, usize, bool)> = Default::default();
    for (l, &p) in snakes.iter().zip(cond) {
        if l.genus.is_empty() {
            continue;
        }
        let e = by_genus.entry(&l.genus).or_default();
        e.0 += p;
        e.1 += 1;
        e.2 |= l.venomous;
    }
    by_genus
        .into_iter()
        .filter(|(_, (_, n, _))| *n >= 2)
        .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
        .map(|(g, (p, _, v))| GenusAnswer { genus: g.to_string(), probability: p, venomous: v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(i: usize, name: &str, genus: &str, venomous: bool, is_snake: bool) -> Label {
        Label {
            class_index: i,
            label: name.into(),
            scientific_name: if is_snake { format!("{genus} {name}") } else { String::new() },
            genus: genus.into(),
            family: String::new(),
            venomous,
            is_snake,
        }
    }

    fn labels() -> Vec<Label> {
        vec![
            label(0, "cat", "", false, false),
            label(1, "adamanteus", "Crotalus", true, true),
            label(2, "cerastes", "Crotalus", true, true),
            label(3, "sirtalis", "Thamnophis", false, true),
        ]
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] == 0.0);
        let q = softmax(&[1.0, 2.0, 3.0]);
        let e: Vec<f32> = [1.0f32, 2.0, 3.0].iter().map(|x| x.exp()).collect();
        let s: f32 = e.iter().sum();
        assert!(q.iter().zip(&e).all(|(a, b)| (a - b / s).abs() < 1e-6));
    }

    #[test]
    fn gate_prior_topk_and_genus() {
        let spec = DecisionSpec::default();
        let d = decide(&[0.1, 0.35, 0.35, 0.2], &labels(), None, 2, &spec);
        assert!(d.snake_detected && (d.snake_probability - 0.9).abs() < 1e-6);
        assert_eq!(d.predictions.len(), 2);
        assert!((d.predictions[0].probability - 0.35 / 0.9).abs() < 1e-6);
        assert!(d.venomous_warning && d.uncertain);
        let g = d.genus.unwrap();
        assert_eq!(g.genus, "Crotalus");
        assert!((g.probability - 0.7 / 0.9).abs() < 1e-6 && g.venomous);

        // A prior that excludes both rattlesnakes leaves the garter snake.
        let prior = [0.0, 0.0, 0.0, 1.0];
        let d = decide(&[0.1, 0.35, 0.35, 0.2], &labels(), Some(&prior), 3, &spec);
        assert_eq!(d.predictions[0].class_index, 3);
        assert!((d.predictions[0].probability - 1.0).abs() < 1e-6);
        assert!(!d.venomous_warning && !d.uncertain && d.genus.is_none());
    }

    #[test]
    fn no_snake_means_no_warning() {
        let d = decide(&[0.97, 0.01, 0.01, 0.01], &labels(), None, 3, &DecisionSpec::default());
        assert!(!d.snake_detected && !d.venomous_warning && !d.uncertain);
        let d = decide(&[0.55, 0.15, 0.15, 0.15], &labels(), None, 3, &DecisionSpec::default());
        assert!(!d.snake_detected && d.uncertain && d.venomous_warning, "an unclear gate still warns");
    }

    #[test]
    fn the_verdict_is_possible_anywhere_in_the_band() {
        let spec = DecisionSpec::default(); // threshold 0.5, margin 0.2: the band is (0.3, 0.7)
        let verdict = |p_snake: f32| {
            let rest = p_snake / 3.0;
            decide(&[1.0 - p_snake, rest, rest, rest], &labels(), None, 3, &spec).snake_verdict
        };
        for (p, want) in [
            (0.02, SnakeVerdict::NoSnake),
            (0.29, SnakeVerdict::NoSnake),
            (0.31, SnakeVerdict::Possible),
            (0.44, SnakeVerdict::Possible), // below the threshold (snake_detected false)
            (0.5, SnakeVerdict::Possible),
            (0.69, SnakeVerdict::Possible), // above it (snake_detected true)
            (0.71, SnakeVerdict::Snake),
            (0.99, SnakeVerdict::Snake),
        ] {
            assert_eq!(verdict(p), want, "P(snake) = {p}");
        }
    }

    // Regression (green mamba photo at P(snake) = 0.44): "no snake detected" printed above a venom warning.
    #[test]
    fn no_snake_is_never_said_beside_a_warning() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        for _ in 0..10_000 {
            let raw: Vec<f32> = (0..4).map(|_| next().powi(3)).collect();
            let sum: f32 = raw.iter().sum();
            let probs: Vec<f32> = raw.iter().map(|p| p / sum.max(1e-9)).collect();
            let spec = DecisionSpec { snake_threshold: next(), gate_margin: next() * 0.3, ..DecisionSpec::default() };
            let d = decide(&probs, &labels(), None, 1 + (next() * 3.0) as usize, &spec);
            assert_eq!(d.venomous_warning, !d.warning_species.is_empty());
            if d.snake_verdict == SnakeVerdict::NoSnake {
                assert!(!d.venomous_warning && !d.snake_detected, "{probs:?} {spec:?}");
            }
            // Without look-alikes the band is [threshold - margin, threshold + margin).
            let unclear = d.snake_probability >= spec.snake_threshold - spec.gate_margin
                && d.snake_probability < spec.snake_threshold + spec.gate_margin;
            assert_eq!(d.snake_verdict == SnakeVerdict::Snake, d.snake_detected && !unclear);
            assert_eq!(d.snake_verdict == SnakeVerdict::Possible, unclear);
        }
    }

    // Regression (issue 33: 18% of real field photos of snakes answered `none`, mostly taken for lizards, newts and
    // frogs): a look-alike's probability makes the verdict `possible`, never `snake`, and never names a species.
    #[test]
    fn a_photo_taken_for_a_lizard_is_possible_not_none() {
        let spec = DecisionSpec { lookalike_classes: vec![0], none_below: Some(0.15), ..DecisionSpec::default() };
        // "cat" stands for a lizard here: 0.85 of it, 0.05 on each snake.
        let d = decide(&[0.85, 0.05, 0.05, 0.05], &labels(), None, 3, &spec);
        assert_eq!(d.snake_verdict, SnakeVerdict::Possible);
        assert!(
            (d.lookalike_probability - 0.85).abs() < 1e-6 && !d.snake_detected && d.uncertain && d.venomous_warning
        );
        assert!(d.predictions.iter().all(|p| p.class_index != 0), "a look-alike is never a species");
        // The same photo without look-alikes: `none`, and no warning.
        let d = decide(&[0.85, 0.05, 0.05, 0.05], &labels(), None, 3, &DecisionSpec::default());
        assert_eq!(d.snake_verdict, SnakeVerdict::NoSnake);
        assert!(!d.venomous_warning);
        // The `none` line alone: P(snake) 0.10 is under it, 0.20 (under the band's lower edge, 0.3) is not.
        let spec = DecisionSpec { none_below: Some(0.15), ..DecisionSpec::default() };
        assert_eq!(decide(&[0.9, 0.04, 0.02, 0.04], &labels(), None, 3, &spec).snake_verdict, SnakeVerdict::NoSnake);
        assert_eq!(decide(&[0.8, 0.1, 0.05, 0.05], &labels(), None, 3, &spec).snake_verdict, SnakeVerdict::Possible);
        // A look-alike never lifts a photo to `snake`: P(snake) 0.6 with 0.4 of lizard is still `possible`.
        let spec = DecisionSpec { lookalike_classes: vec![0], ..DecisionSpec::default() };
        assert_eq!(decide(&[0.4, 0.3, 0.3, 0.0], &labels(), None, 3, &spec).snake_verdict, SnakeVerdict::Possible);
    }

    // Regression (Indian cobra photo): the warning named the sea snake at 0.0% because it was venomous and in the top-k.
    #[test]
    fn the_warning_names_only_species_above_the_threshold_even_outside_the_top_k() {
        let spec = DecisionSpec::default();
        // Given a snake: adamanteus 0.62, sirtalis 0.30, cerastes 0.08 (venomous, under 0.1).
        let d = decide(&[0.0, 0.62, 0.08, 0.30], &labels(), None, 3, &spec);
        let named: Vec<&str> = d.warning_species.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(named, ["adamanteus"]);
        assert!((d.warning_species[0].probability - 0.62).abs() < 1e-6);
        // top_k = 1 shows only the harmless garter snake, yet the rattlesnake's 35% still warns.
        let d = decide(&[0.0, 0.35, 0.0, 0.65], &labels(), None, 1, &spec);
        assert_eq!(d.predictions.len(), 1);
        assert!(!d.predictions[0].venomous && d.venomous_warning);
        assert_eq!(d.warning_species[0].label, "adamanteus");
    }

    #[test]
    fn temperature_scales_the_logits() {
        let logits = [2.0f32, 0.5, -1.0];
        assert_eq!(softmax_tempered(&logits, 1.0), softmax(&logits));
        let hot = softmax_tempered(&logits, 2.0);
        let want = softmax(&[1.0, 0.25, -0.5]);
        assert!(hot.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-7));
        assert!(hot[0] < softmax(&logits)[0], "a temperature above 1 softens");
    }
}
