//! `eval`'s charts as standalone SVG (no plotting dependency): per-class F1 bars and the reliability diagram.

use crate::metrics::Metrics;
use snakeid::internals::calibration::Reliability;
use std::fmt::Write;

/// One row per class: F1 without the prior (grey) and, when given, with it (green).
pub fn per_class_f1_svg(plain: &Metrics, prior: Option<&Metrics>, name: impl Fn(usize) -> String) -> String {
    let (row, label_w, bar_w, top) = (22.0, 260.0, 400.0, 40.0);
    let height = top + row * plain.per_class.len() as f64 + 30.0;
    let width = label_w + bar_w + 80.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = match prior {
        Some(m) => format!(
            "Per-class F1 (macro-F1 {:.3} without prior, {:.3} with prior; n = {})",
            plain.macro_f1, m.macro_f1, plain.n
        ),
        None => format!("Per-class F1 (macro-F1 {:.3}; n = {})", plain.macro_f1, plain.n),
    };
    let _ = writeln!(s, r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#, escape(&title));
    for (i, c) in plain.per_class.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" font-style="italic">{}</text>"#,
            label_w - 8.0,
            y + 14.0,
            escape(&name(c.class_index))
        );
        let with = prior.and_then(|m| m.per_class.iter().find(|p| p.class_index == c.class_index)).map(|p| p.f1);
        let h = if with.is_some() { 9.0 } else { 16.0 };
        let _ = writeln!(
            s,
            r##"<rect x="{label_w}" y="{}" width="{:.1}" height="{h}" fill="#9e9e9e"/>"##,
            y + 2.0,
            c.f1 * bar_w
        );
        if let Some(f) = with {
            let _ = writeln!(
                s,
                r##"<rect x="{label_w}" y="{}" width="{:.1}" height="{h}" fill="#2e7d32"/>"##,
                y + 11.0,
                f * bar_w
            );
        }
        let _ =
            writeln!(s, r#"<text x="{}" y="{}">{:.2}</text>"#, label_w + bar_w + 6.0, y + 14.0, with.unwrap_or(c.f1));
    }
    let _ = writeln!(s, "</svg>");
    s
}

/// Accuracy against confidence per bin (bars, with the count above each), and the diagonal a calibrated model follows.
pub fn reliability_svg(r: &Reliability, which: &str, n: usize) -> String {
    let (side, left, top) = (400.0, 60.0, 40.0);
    let (width, height) = (left + side + 30.0, top + side + 50.0);
    let (x, y) = (|v: f64| left + v * side, |v: f64| top + (1.0 - v) * side);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title =
        format!("Reliability of the top-1 probability, {which} (ECE {:.3}; n = {n}; {} bins)", r.ece, r.bins.len());
    let _ = writeln!(s, r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#, escape(&title));
    for b in r.bins.iter().filter(|b| b.count > 0) {
        let (x0, x1) = (x(b.lo), x(b.hi));
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#1565c0" stroke="white"/>"##,
            y(b.accuracy),
            x1 - x0,
            b.accuracy * side
        );
        let _ = writeln!(
            s,
            r##"<line x1="{x0:.1}" y1="{:.1}" x2="{x1:.1}" y2="{:.1}" stroke="#c62828" stroke-width="2"/>"##,
            y(b.confidence),
            y(b.confidence)
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
            (x0 + x1) / 2.0,
            y(b.accuracy) - 3.0,
            b.count
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#616161" stroke-dasharray="4 3"/>"##,
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    let _ =
        writeln!(s, r##"<rect x="{left}" y="{top}" width="{side}" height="{side}" fill="none" stroke="#424242"/>"##);
    for t in [0.0, 0.5, 1.0] {
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#, x(t), top + side + 16.0);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{t}</text>"#, left - 6.0, y(t) + 4.0);
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">confidence (blue: accuracy; red: mean confidence)</text>"#,
        x(0.5),
        top + side + 36.0
    );
    let _ = writeln!(s, "</svg>");
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
