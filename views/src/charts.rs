//! Charts drawn on the server as inline SVG: no chart library, no script, no external request.
//! Every label is escaped here, because the SVG is inserted into the page as markup.

use std::fmt::Write as _;

use closeloop_core::nps::Tally;
use crate::render::escape_html as escape;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;

/// A week's NPS with its 95 % margin.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    pub week: String,
    pub answers: u64,
    pub nps: f64,
    pub margin: f64,
}

pub fn trend_points(weeks: &[(String, Tally)]) -> Vec<TrendPoint> {
    weeks
        .iter()
        .filter_map(|(week, tally)| {
            let e = tally.estimate()?;
            Some(TrendPoint { week: week.clone(), answers: tally.answered(), nps: e.nps, margin: e.margin_95 })
        })
        .collect()
}

/// NPS by week as a line, its 95 % margin as a band around it.
pub fn trend_svg(points: &[TrendPoint]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="trend-title trend-desc" xmlns="http://www.w3.org/2000/svg"><title id="trend-title">NPS by week with its 95 % margin</title><desc id="trend-desc">{} weeks; the table below gives the same figures.</desc>"#,
        points.len()
    );
    if points.is_empty() {
        let _ = write!(svg, r#"<text x="{}" y="{}" text-anchor="middle">No answers yet</text></svg>"#, WIDTH / 2.0, HEIGHT / 2.0);
        return svg;
    }
    let low = points.iter().map(|p| p.nps - p.margin).fold(f64::INFINITY, f64::min).max(-100.0);
    let high = points.iter().map(|p| p.nps + p.margin).fold(f64::NEG_INFINITY, f64::max).min(100.0);
    let (low, high) = ((low / 25.0).floor() * 25.0, (high / 25.0).ceil() * 25.0);
    let (low, high) = if high - low < 25.0 { (low, low + 25.0) } else { (low, high) };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + (high - v.clamp(low, high)) / (high - low) * plot_h;
    let step = plot_w / points.len() as f64;
    let x = |i: usize| LEFT + step * (i as f64 + 0.5);

    let mut tick = low;
    while tick <= high + 0.1 {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="1"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#3d4650">{tick:+.0}</text>"##,
            WIDTH - RIGHT,
            if tick == 0.0 { "#59636e" } else { "#dde3e9" },
            LEFT - 6.0,
            y(tick) + 4.0,
            y = y(tick),
        );
        tick += 25.0;
    }
    let upper: Vec<String> = points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.nps + p.margin))).collect();
    let lower: Vec<String> = points.iter().enumerate().rev().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.nps - p.margin))).collect();
    if points.len() == 1 {
        let _ = write!(
            svg,
            r##"<rect class="band" x="{:.1}" y="{:.1}" width="24" height="{:.1}" fill="#9cc3e8" fill-opacity="0.5"/>"##,
            x(0) - 12.0,
            y(points[0].nps + points[0].margin),
            y(points[0].nps - points[0].margin) - y(points[0].nps + points[0].margin)
        );
    } else {
        let _ = write!(svg, r##"<polygon class="band" points="{} {}" fill="#9cc3e8" fill-opacity="0.5"/>"##, upper.join(" "), lower.join(" "));
    }
    let line: Vec<String> = points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.nps))).collect();
    let _ = write!(svg, r##"<polyline points="{}" fill="none" stroke="#0b5cad" stroke-width="2"/>"##, line.join(" "));
    let label_every = points.len().div_ceil(12);
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#0b5cad"><title>{}: NPS {:+.0} ± {:.0} ({} answers)</title></circle>"##,
            x(i),
            y(p.nps),
            escape(&p.week),
            p.nps,
            p.margin,
            p.answers
        );
        if i % label_every == 0 {
            let short = p.week.rsplit_once('-').map_or(p.week.as_str(), |(_, w)| w);
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#3d4650">{}</text>"##,
                x(i),
                HEIGHT - 12.0,
                escape(short)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One driver on the priority matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixPoint {
    pub label: String,
    pub mean: f64,
    pub correlation: f64,
}

/// Mean rating (1–5, up) against correlation with the score (right). The lower right quadrant,
/// rated low but moving the score most, is where improvement pays first.
pub fn priority_matrix_svg(points: &[MatrixPoint]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="matrix-title matrix-desc" xmlns="http://www.w3.org/2000/svg"><title id="matrix-title">Priority matrix: mean rating against correlation with the score</title><desc id="matrix-desc">{} drivers; the table below gives the same figures.</desc>"#,
        points.len()
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_low = points.iter().map(|p| p.correlation).fold(0.0_f64, f64::min).max(-1.0);
    let x = |c: f64| LEFT + (c.clamp(x_low, 1.0) - x_low) / (1.0 - x_low) * plot_w;
    let y = |m: f64| TOP + (5.0 - m.clamp(1.0, 5.0)) / 4.0 * plot_h;
    let avg = |f: fn(&MatrixPoint) -> f64| if points.is_empty() { None } else { Some(points.iter().map(f).sum::<f64>() / points.len() as f64) };
    let (mid_x, mid_y) = (avg(|p| p.correlation).unwrap_or(0.5), avg(|p| p.mean).unwrap_or(3.0));
    let _ = write!(
        svg,
        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#fde7e3"/><line x1="{:.1}" x2="{:.1}" y1="{TOP}" y2="{:.1}" stroke="#9aa5b1" stroke-dasharray="4 3"/><line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#9aa5b1" stroke-dasharray="4 3"/>"##,
        x(mid_x),
        y(mid_y),
        WIDTH - RIGHT - x(mid_x),
        TOP + plot_h - y(mid_y),
        x(mid_x),
        x(mid_x),
        TOP + plot_h,
        WIDTH - RIGHT,
        y(mid_y),
        y(mid_y)
    );
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#8a1c0b">fix first: matters most, rated lowest</text><text x="{:.1}" y="{}" text-anchor="middle" font-size="11" fill="#3d4650">correlation with the score →</text><text x="12" y="{:.1}" font-size="11" fill="#3d4650" transform="rotate(-90 12 {:.1})" text-anchor="middle">mean rating (1–5) →</text>"##,
        WIDTH - RIGHT - 4.0,
        TOP + plot_h - 6.0,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    for p in points {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="#0b5cad"><title>{}: mean {:.2}, correlation {:.2}</title></circle><text x="{:.1}" y="{:.1}" font-size="12" fill="#1d2329">{}</text>"##,
            x(p.correlation),
            y(p.mean),
            escape(&p.label),
            p.mean,
            p.correlation,
            x(p.correlation) + 8.0,
            y(p.mean) + 4.0,
            escape(&p.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trend_draws_one_point_per_answered_week_and_a_band() {
        let weeks = vec![
            ("2026-W45".to_owned(), Tally { promoters: 10, passives: 5, detractors: 5 }),
            ("2026-W46".to_owned(), Tally::default()),
            ("2026-W47".to_owned(), Tally { promoters: 30, passives: 5, detractors: 5 }),
        ];
        let points = trend_points(&weeks);
        assert_eq!(points.len(), 2, "a week without answers has no NPS to draw");
        let svg = trend_svg(&points);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("<polygon class=\"band\""));
        assert!(svg.contains("W47"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn labels_in_charts_are_escaped() {
        let svg = priority_matrix_svg(&[MatrixPoint { label: "<script>alert(1)</script>".into(), mean: 3.2, correlation: 0.4 }]);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(trend_svg(&[]).contains("No answers yet"));
    }
}
