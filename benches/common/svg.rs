//! A small SVG line-chart writer for `benches/report.rs`: two panels side by side, log
//! axes, one polyline per series, single points for peers, a legend under each panel.

use std::fmt::Write as _;

pub const BLUE: &str = "#1f77b4";
pub const ORANGE: &str = "#ff7f0e";
pub const PURPLE: &str = "#9467bd";
pub const GREY: &str = "#7f7f7f";
pub const RED: &str = "#d62728";
pub const GREEN: &str = "#2ca02c";

/// A line: `(x, y)` points, drawn in order of x.
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A single point with a legend entry (a peer's figure).
pub struct Mark {
    pub name: String,
    pub color: &'static str,
    pub at: (f64, f64),
}

type Panel<'a> = (&'a str, &'a [Series], &'a [Mark]);

const PANEL_W: f64 = 500.0;
const HEIGHT: f64 = 470.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const PLOT_H: f64 = 280.0;

/// Two panels side by side, each with keys on x and seconds on y.
pub fn two_panels(left: Panel<'_>, right: Panel<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{HEIGHT}" viewBox="0 0 {w} {HEIGHT}" font-family="sans-serif" font-size="12">"#,
        w = 2.0 * PANEL_W
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    panel(&mut s, 0.0, left);
    panel(&mut s, PANEL_W, right);
    s.push_str("</svg>\n");
    s
}

/// Powers of ten covering `values` (at least one decade).
fn decades(values: impl Iterator<Item = f64>, default: (i32, i32)) -> (i32, i32) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v.log10());
        hi = hi.max(v.log10());
    }
    if !lo.is_finite() {
        return default;
    }
    let (lo, hi) = (lo.floor() as i32, hi.ceil() as i32);
    (lo, hi.max(lo + 1))
}

fn x_label(e: i32) -> String {
    match e {
        e if e >= 6 => format!("{}M", 10u64.pow((e - 6) as u32)),
        e if e >= 3 => format!("{}k", 10u64.pow((e - 3) as u32)),
        e => format!("{}", 10f64.powi(e)),
    }
}

fn y_label(e: i32) -> String {
    match e {
        e if e >= 0 => format!("{} s", 10u64.pow(e as u32)),
        e if e >= -3 => format!("{} ms", 10u64.pow((e + 3) as u32)),
        e if e >= -6 => format!("{} µs", 10u64.pow((e + 6) as u32)),
        e => format!("1e{e} s"),
    }
}

fn panel(s: &mut String, x0: f64, (title, series, marks): Panel<'_>) {
    let all = || {
        series
            .iter()
            .flat_map(|l| l.points.iter().copied())
            .chain(marks.iter().map(|m| m.at))
    };
    let (xl, xh) = decades(all().map(|p| p.0), (4, 6));
    let (yl, yh) = decades(all().map(|p| p.1), (-3, 0));
    let w = PANEL_W - LEFT - RIGHT;
    let px = |x: f64| x0 + LEFT + (x.log10() - f64::from(xl)) / f64::from(xh - xl) * w;
    let py = |y: f64| TOP + PLOT_H - (y.log10() - f64::from(yl)) / f64::from(yh - yl) * PLOT_H;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>"#,
        x0 + LEFT + w / 2.0
    );
    // Grid, ticks and labels.
    for e in xl..=xh {
        let x = px(10f64.powi(e));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + PLOT_H,
            TOP + PLOT_H + 16.0,
            x_label(e)
        );
    }
    for e in yl..=yh {
        let y = py(10f64.powi(e));
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + LEFT,
            x0 + LEFT + w,
            x0 + LEFT - 6.0,
            y + 4.0,
            y_label(e)
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{}" y="{TOP}" width="{w}" height="{PLOT_H}" fill="none" stroke="black"/>"#,
        x0 + LEFT
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">keys (log)</text>"#,
        x0 + LEFT + w / 2.0,
        TOP + PLOT_H + 34.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">time (log)</text>"#,
        x0 + 16.0,
        TOP + PLOT_H / 2.0
    );
    // Lines, points, legend (two entries a row).
    let mut legend = Legend {
        left: x0 + LEFT,
        half: w / 2.0,
        n: 0,
    };
    for l in series.iter().filter(|l| !l.points.is_empty()) {
        let dash = if l.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            pts.join(" "),
            l.color
        );
        for &(x, y) in &l.points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                px(x),
                py(y),
                l.color
            );
        }
        let (lx, ly) = legend.next();
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 22.0,
            l.color,
            lx + 28.0,
            ly + 4.0,
            escape(&l.name)
        );
    }
    for m in marks {
        let (x, y) = (px(m.at.0), py(m.at.1));
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{}" transform="rotate(45 {x:.1} {y:.1})"/>"#,
            x - 4.5,
            y - 4.5,
            m.color
        );
        let (lx, ly) = legend.next();
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 6.0,
            ly - 4.5,
            m.color,
            lx + 28.0,
            ly + 4.0,
            escape(&m.name)
        );
    }
}

/// Where the next legend entry goes.
struct Legend {
    left: f64,
    half: f64,
    n: usize,
}

impl Legend {
    fn next(&mut self) -> (f64, f64) {
        let at = (
            self.left + (self.n % 2) as f64 * self.half,
            TOP + PLOT_H + 56.0 + (self.n / 2) as f64 * 18.0,
        );
        self.n += 1;
        at
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
