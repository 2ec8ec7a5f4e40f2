//! Evaluation metrics of the SnakeCLEF papers: top-1 and top-5 accuracy, macro-F1 (as scikit-learn computes it),
//! per-class precision/recall/F1 and the most confused pairs.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Scores of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub class_index: usize,
    /// Photos whose true class this is.
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// A (true, predicted) pair that was mixed up, and how often.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    pub true_class: usize,
    pub predicted_class: usize,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub n: usize,
    pub top1: f64,
    pub top5: f64,
    /// Unweighted mean of per-class F1 over every class that is a true or a predicted label, as
    /// `sklearn.metrics.f1_score(y_true, y_pred, average="macro")` (0 where precision or recall is undefined).
    pub macro_f1: f64,
    /// The classes macro-F1 averages over, in class order.
    pub per_class: Vec<ClassScore>,
    /// Most frequent confusions first (ties by class order).
    pub confused: Vec<Confusion>,
}

/// `truth[i]` is photo i's true class; `ranked[i]` its predicted classes, best first (at least one).
pub fn evaluate(truth: &[usize], ranked: &[Vec<usize>]) -> Metrics {
    assert_eq!(truth.len(), ranked.len(), "one ranking per photo");
    let n = truth.len();
    let top1_pred: Vec<usize> = ranked.iter().map(|r| r[0]).collect();
    let hits = |k: usize| truth.iter().zip(ranked).filter(|(t, r)| r.iter().take(k).any(|p| p == *t)).count();
    let frac = |c: usize| if n == 0 { 0.0 } else { c as f64 / n as f64 };

    let classes: BTreeSet<usize> = truth.iter().chain(&top1_pred).copied().collect();
    let mut tp: BTreeMap<usize, usize> = BTreeMap::new();
    let mut fp: BTreeMap<usize, usize> = BTreeMap::new();
    let mut fneg: BTreeMap<usize, usize> = BTreeMap::new();
    let mut pairs: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (&t, &p) in truth.iter().zip(&top1_pred) {
        if t == p {
            *tp.entry(t).or_default() += 1;
        } else {
            *fp.entry(p).or_default() += 1;
            *fneg.entry(t).or_default() += 1;
            *pairs.entry((t, p)).or_default() += 1;
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassScore> = classes
        .iter()
        .map(|&c| {
            let (tp, fp, fneg) = (tp.get(&c).copied().unwrap_or(0), fp.get(&c).copied().unwrap_or(0), fneg.get(&c).copied().unwrap_or(0));
            ClassScore {
                class_index: c,
                support: tp + fneg,
                precision: ratio(tp, tp + fp),
                recall: ratio(tp, tp + fneg),
                f1: ratio(2 * tp, 2 * tp + fp + fneg),
            }
        })
        .collect();
    let macro_f1 = if per_class.is_empty() { 0.0 } else { per_class.iter().map(|c| c.f1).sum::<f64>() / per_class.len() as f64 };
    let mut confused: Vec<Confusion> =
        pairs.into_iter().map(|((t, p), count)| Confusion { true_class: t, predicted_class: p, count }).collect();
    confused.sort_by(|a, b| b.count.cmp(&a.count).then((a.true_class, a.predicted_class).cmp(&(b.true_class, b.predicted_class))));
    Metrics { n, top1: frac(hits(1)), top5: frac(hits(5)), macro_f1, per_class, confused }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_example() {
        // truth  0 0 1 1 2 ; top-1 0 1 1 1 0
        let truth = [0, 0, 1, 1, 2];
        let ranked = vec![vec![0, 1], vec![1, 0], vec![1, 2], vec![1, 0], vec![0, 2]];
        let m = evaluate(&truth, &ranked);
        assert_eq!(m.top1, 3.0 / 5.0);
        assert_eq!(m.top5, 1.0);
        // class 0: tp1 fp1 fn1 -> f1 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 fp0 fn1 -> 0.
        let f1: Vec<f64> = m.per_class.iter().map(|c| c.f1).collect();
        assert_eq!(f1, vec![0.5, 0.8, 0.0]);
        assert!((m.macro_f1 - 1.3 / 3.0).abs() < 1e-12);
        assert_eq!(m.confused[0], Confusion { true_class: 0, predicted_class: 1, count: 1 });
        assert_eq!(m.confused.len(), 2);
    }

    #[test]
    fn a_class_only_predicted_counts_in_the_macro_average() {
        // sklearn's labels = union of y_true and y_pred: class 9 (never true) scores 0 and halves the mean.
        let m = evaluate(&[1, 1], &[vec![1], vec![9]]);
        assert_eq!(m.per_class.len(), 2);
        assert!((m.macro_f1 - (2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
