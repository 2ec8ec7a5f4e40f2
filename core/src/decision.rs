//! From logits to the answer a person reads: softmax, snake gate, country prior, top-k, venom warning, uncertainty, genus.

use crate::labels::Label;
use crate::manifest::DecisionSpec;
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

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub snake_detected: bool,
    /// Sum of the snake classes' probabilities (1 for a species-only model).
    pub snake_probability: f32,
    /// Total probability of venomous species (conditional on a snake), after the prior.
    pub venomous_probability: f32,
    /// A venomous species holds meaningful probability among the top-k (and a snake is plausible).
    pub venomous_warning: bool,
    pub uncertain: bool,
    pub genus: Option<GenusAnswer>,
    pub predictions: Vec<Prediction>,
}

/// Numerically stable softmax in f32.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut out: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = out.iter().sum();
    out.iter_mut().for_each(|p| *p /= sum);
    out
}

/// Turns class probabilities into a decision. `prior` (if any) gives p(s|c) per class index for snake classes.
pub fn decide(probs: &[f32], labels: &[Label], prior: Option<&[f32]>, top_k: usize, spec: &DecisionSpec) -> Decision {
    let snakes: Vec<&Label> = labels.iter().filter(|l| l.is_snake).collect();
    let snake_probability: f32 = snakes.iter().map(|l| probs[l.class_index]).sum::<f32>().clamp(0.0, 1.0);
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
        crate::prior::apply(&mut cond, &species_prior);
    }
    let mut order: Vec<usize> = (0..snakes.len()).collect();
    order.sort_by(|&a, &b| cond[b].total_cmp(&cond[a]).then(a.cmp(&b)));
    let predictions: Vec<Prediction> = order
        .iter()
        .take(top_k.max(1))
        .map(|&i| Prediction {
            class_index: snakes[i].class_index,
            label: snakes[i].label.clone(),
            scientific_name: snakes[i].scientific_name.clone(),
            probability: cond[i],
            venomous: snakes[i].venomous,
        })
        .collect();

    let snake_detected = snake_probability >= spec.snake_threshold;
    let gate_unclear = (snake_probability - spec.snake_threshold).abs() < spec.gate_margin;
    let snake_plausible = snake_detected || gate_unclear;
    let top1 = predictions.first().map_or(0.0, |p| p.probability);
    let venomous_probability: f32 = snakes.iter().zip(&cond).filter(|(l, _)| l.venomous).map(|(_, p)| p).sum();
    let venomous_warning =
        snake_plausible && predictions.iter().any(|p| p.venomous && p.probability >= spec.venom_threshold);

    let genus = (top1 < spec.uncertain_below).then(|| best_genus(&snakes, &cond)).flatten().filter(|g| g.probability >= spec.genus_at_least);
    let uncertain = gate_unclear || (snake_detected && top1 < spec.uncertain_below);
    Decision { snake_detected, snake_probability, venomous_probability, venomous_warning, uncertain, genus, predictions }
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
}
