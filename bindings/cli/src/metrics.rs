//! Evaluation metrics of the SnakeCLEF papers: top-1 and top-5 accuracy, macro-F1 (as scikit-learn computes it),
//! per-class precision/recall/F1, the most confused pairs, and the venomous/harmless confusions with the SnakeCLEF
//! 2023/2024 track-1 score that weighs them.

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

/// Mistakes between venomous and harmless species, each as a fraction of the photos of its true group (`None`
/// when the set has no photo of that group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VenomConfusion {
    pub venomous_photos: usize,
    pub harmless_photos: usize,
    /// A venomous snake called a harmless species: the error that kills.
    pub venomous_to_harmless: Option<f64>,
    pub harmless_to_venomous: Option<f64>,
    /// A venomous snake called another venomous species (the antivenom may still be wrong).
    pub venomous_to_other_venomous: Option<f64>,
    pub harmless_to_other_harmless: Option<f64>,
    /// SnakeCLEF 2023/2024 track 1 (0-100, higher is better), rounded at each step exactly as the organisers'
    /// `evaluate.py`: (F1 + 1·(100 − H→H) + 2·(100 − H→V) + 5·(100 − V→H) + 2·(100 − V→V)) / 11, with macro-F1 and
    /// the four rates in percent. `None` when either group is empty (their script divides by zero there).
    pub track1: Option<f64>,
}

/// The venomous/harmless confusions of top-1 predictions, and track 1 from them and `macro_f1` (in [0, 1]).
pub fn venom_confusion(
    truth: &[usize],
    top1: &[usize],
    venomous: impl Fn(usize) -> bool,
    macro_f1: f64,
) -> VenomConfusion {
    assert_eq!(truth.len(), top1.len(), "one prediction per photo");
    // [true group][predicted group], wrong species only; groups: 0 harmless, 1 venomous.
    let mut wrong = [[0usize; 2]; 2];
    let mut photos = [0usize; 2];
    for (&t, &p) in truth.iter().zip(top1) {
        let (gt, gp) = (venomous(t) as usize, venomous(p) as usize);
        photos[gt] += 1;
        if t != p {
            wrong[gt][gp] += 1;
        }
    }
    let rate = |g: usize, h: usize| (photos[g] > 0).then(|| wrong[g][h] as f64 / photos[g] as f64);
    // numpy's round(x, 2): scale, round half to even, unscale.
    let round2 = |x: f64| (x * 100.0).round_ties_even() / 100.0;
    let pct = |g: usize, h: usize| rate(g, h).map(|r| round2(r * 100.0));
    let track1 = match (pct(0, 0), pct(0, 1), pct(1, 0), pct(1, 1)) {
        (Some(hh), Some(hv), Some(vh), Some(vv)) => Some(round2(
            (round2(macro_f1 * 100.0) + (100.0 - hh) + 2.0 * (100.0 - hv) + 5.0 * (100.0 - vh) + 2.0 * (100.0 - vv))
                / 11.0,
        )),
        _ => None,
    };
    VenomConfusion {
        venomous_photos: photos[1],
        harmless_photos: photos[0],
        venomous_to_harmless: rate(1, 0),
        harmless_to_venomous: rate(0, 1),
        venomous_to_other_venomous: rate(1, 1),
        harmless_to_other_harmless: rate(0, 0),
        track1,
    }
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
            let (tp, fp, fneg) = (
                tp.get(&c).copied().unwrap_or(0),
                fp.get(&c).copied().unwrap_or(0),
                fneg.get(&c).copied().unwrap_or(0),
            );
            ClassScore {
                class_index: c,
                support: tp + fneg,
                precision: ratio(tp, tp + fp),
                recall: ratio(tp, tp + fneg),
                f1: ratio(2 * tp, 2 * tp + fp + fneg),
            }
        })
        .collect();
    let macro_f1 =
        if per_class.is_empty() { 0.0 } else { per_class.iter().map(|c| c.f1).sum::<f64>() / per_class.len() as f64 };
    let mut confused: Vec<Confusion> =
        pairs.into_iter().map(|((t, p), count)| Confusion { true_class: t, predicted_class: p, count }).collect();
    confused.sort_by(|a, b| {
        b.count.cmp(&a.count).then((a.true_class, a.predicted_class).cmp(&(b.true_class, b.predicted_class)))
    });
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
    fn venom_confusion_and_track1_by_hand() {
        // Classes 0, 1 venomous; 2, 3 harmless. 4 venomous photos, 5 harmless.
        let venomous = |c: usize| c < 2;
        let truth = [0, 0, 1, 1, 2, 2, 3, 3, 3];
        let top1 = [0, 2, 0, 1, 2, 3, 1, 3, 2];
        let v = venom_confusion(&truth, &top1, venomous, 0.5);
        assert_eq!((v.venomous_photos, v.harmless_photos), (4, 5));
        assert_eq!(v.venomous_to_harmless, Some(0.25)); // 0 -> 2
        assert_eq!(v.venomous_to_other_venomous, Some(0.25)); // 1 -> 0
        assert_eq!(v.harmless_to_venomous, Some(0.2)); // 3 -> 1
        assert_eq!(v.harmless_to_other_harmless, Some(0.4)); // 2 -> 3, 3 -> 2
                                                             // (50 + (100-40) + 2(100-20) + 5(100-25) + 2(100-25)) / 11 = 795 / 11 = 72.2727... -> 72.27
        assert_eq!(v.track1, Some(72.27));
        // Rounded at each step as numpy does: 1/3 of venomous photos -> 33.33%, macro-F1 2/3 -> 66.67.
        let v = venom_confusion(&[0, 0, 0, 2], &[0, 0, 2, 2], venomous, 2.0 / 3.0);
        // (66.67 + 100 + 2·100 + 5·(100-33.33) + 2·100) / 11 = 900.02 / 11 = 81.82
        assert_eq!(v.track1, Some(81.82));
        // No harmless photo: their script divides by zero; we give no score.
        assert_eq!(venom_confusion(&[0, 1], &[1, 1], venomous, 0.5).track1, None);
    }

    #[test]
    fn a_class_only_predicted_counts_in_the_macro_average() {
        // sklearn's labels = union of y_true and y_pred: class 9 (never true) scores 0 and halves the mean.
        let m = evaluate(&[1, 1], &[vec![1], vec![9]]);
        assert_eq!(m.per_class.len(), 2);
        assert!((m.macro_f1 - (2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
