//! A per-class F1 bar chart as a standalone SVG (no plotting dependency).

use snakeid::metrics::Metrics;
use std::fmt::Write;

/// One row per class: F1 without the prior (grey) and, when given, with it (green).
pub fn per_class_f1_svg(plain: &Metrics, prior: Option<&Metrics>, name: impl Fn(usize) -> String) -> String {
    let (row, label_w, bar_w, top) = (22.0, 260.0, 400.0, 40.0);
    let height = top + row * plain.per_class.len() as f64 + 30.0;
    let width = label_w + bar_w + 80.0;
    let mut s = String::new();
    let _ = writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#);
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = match prior {
        Some(m) => format!("Per-class F1 (macro-F1 {:.3} without prior, {:.3} with prior; n = {})", plain.macro_f1, m.macro_f1, plain.n),
        None => format!("Per-class F1 (macro-F1 {:.3}; n = {})", plain.macro_f1, plain.n),
    };
    let _ = writeln!(s, r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#, escape(&title));
    for (i, c) in plain.per_class.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end" font-style="italic">{}</text>"#, label_w - 8.0, y + 14.0, escape(&name(c.class_index)));
        let with = prior.and_then(|m| m.per_class.iter().find(|p| p.class_index == c.class_index)).map(|p| p.f1);
        let h = if with.is_some() { 9.0 } else { 16.0 };
        let _ = writeln!(s, r##"<rect x="{label_w}" y="{}" width="{:.1}" height="{h}" fill="#9e9e9e"/>"##, y + 2.0, c.f1 * bar_w);
        if let Some(f) = with {
            let _ = writeln!(s, r##"<rect x="{label_w}" y="{}" width="{:.1}" height="{h}" fill="#2e7d32"/>"##, y + 11.0, f * bar_w);
        }
        let _ = writeln!(s, r#"<text x="{}" y="{}">{:.2}</text>"#, label_w + bar_w + 6.0, y + 14.0, with.unwrap_or(c.f1));
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
