//! Compact SVG output.
//!
//! Every fitted chain is snapped once to a grid of `1 / 10^decimals` px, in integers; both
//! regions beside a chain are written from the same integers, so their edges coincide exactly
//! in the file too. Path data uses relative commands (`l h v c`, implicit repeats, no needless
//! separators or zeros), the closing line of a ring is left to `z`, and colours are written as
//! `#rgb` where that is exact.

use std::fmt::Write as _;

use super::fit::{Curve, Seg};
use super::layers::Drawing;
use super::trace::Tracing;

type Q = [i64; 2];

#[derive(Clone, Copy, Debug, PartialEq)]
enum QSeg {
    Line(Q),
    Cubic(Q, Q, Q),
}

impl QSeg {
    fn end(self) -> Q {
        match self {
            QSeg::Line(p) | QSeg::Cubic(_, _, p) => p,
        }
    }
}

struct QCurve {
    start: Q,
    segs: Vec<QSeg>,
}

fn snap(curve: &Curve, scale: f64) -> QCurve {
    let q = |p: [f64; 2]| [(p[0] * scale).round() as i64, (p[1] * scale).round() as i64];
    QCurve {
        start: q(curve.start),
        segs: curve
            .segs
            .iter()
            .map(|s| match *s {
                Seg::Line(p) => QSeg::Line(q(p)),
                Seg::Cubic(a, b, p) => QSeg::Cubic(q(a), q(b), q(p)),
            })
            .collect(),
    }
}

/// Counts of what was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// `<path>` elements.
    pub paths: usize,
    /// Path segments (lines and curves).
    pub nodes: usize,
}

struct PathData {
    out: String,
    last_cmd: u8,
    /// The previous number had a decimal point (so a following ".5" needs no separator).
    last_had_point: bool,
    scale: i64,
}

impl PathData {
    fn cmd(&mut self, c: u8) {
        if self.last_cmd != c || c == b'm' || c == b'M' || c == b'z' {
            self.out.push(c as char);
            self.last_cmd = c;
            self.last_had_point = false;
        } else {
            self.last_cmd = c;
            // An implicit repeat: the next number needs a separator unless it starts with '-'.
            self.out.push('\u{0}');
        }
    }

    fn num(&mut self, v: i64) {
        let mut s = String::new();
        if v < 0 {
            s.push('-');
        }
        let a = v.unsigned_abs();
        let scale = self.scale as u64;
        let int = a / scale;
        let frac = a % scale;
        if int > 0 || frac == 0 {
            let _ = write!(s, "{int}");
        }
        if frac > 0 {
            let digits = scale.ilog10() as usize;
            let f = format!("{frac:0digits$}");
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
        }
        let ends_cmd = self
            .out
            .as_bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphabetic());
        if self.out.ends_with('\u{0}') {
            self.out.pop();
            if !(s.starts_with('-') || (s.starts_with('.') && self.last_had_point)) {
                self.out.push(' ');
            }
        } else if !(ends_cmd || s.starts_with('-') || (s.starts_with('.') && self.last_had_point)) {
            self.out.push(' ');
        }
        self.last_had_point = s.contains('.');
        self.out.push_str(&s);
    }

    fn seg(&mut self, from: Q, s: QSeg) {
        match s {
            QSeg::Line(p) => {
                let d = [p[0] - from[0], p[1] - from[1]];
                if d[1] == 0 {
                    self.cmd(b'h');
                    self.num(d[0]);
                } else if d[0] == 0 {
                    self.cmd(b'v');
                    self.num(d[1]);
                } else {
                    self.cmd(b'l');
                    self.num(d[0]);
                    self.num(d[1]);
                }
            }
            QSeg::Cubic(a, b, p) => {
                self.cmd(b'c');
                for q in [a, b, p] {
                    self.num(q[0] - from[0]);
                    self.num(q[1] - from[1]);
                }
            }
        }
    }
}

fn hex(c: [u8; 3]) -> String {
    if c.iter().all(|v| v >> 4 == v & 15) {
        format!("#{:x}{:x}{:x}", c[0] & 15, c[1] & 15, c[2] & 15)
    } else {
        format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
    }
}

/// Writes the drawing. `curves[i]` is the fitted form of `tracing.chains[i]`.
pub fn write(
    width: usize,
    height: usize,
    tracing: &Tracing,
    curves: &[Curve],
    drawing: &Drawing,
    palette: &[[u8; 3]],
    decimals: u32,
) -> (String, Written) {
    puffin::profile_function!();
    let scale = 10i64.pow(decimals);
    let snapped: Vec<QCurve> = curves.iter().map(|c| snap(c, scale as f64)).collect();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    let mut written = Written::default();
    if let Some(bg) = drawing.background {
        let _ = write!(
            svg,
            "<rect width=\"{width}\" height=\"{height}\" fill=\"{}\"/>",
            hex(palette[usize::from(bg)])
        );
    }
    let mut segs: Vec<(Q, QSeg)> = Vec::new();
    for layer in &drawing.layers {
        let mut d = PathData {
            out: String::new(),
            last_cmd: 0,
            last_had_point: false,
            scale,
        };
        let mut pen: Option<Q> = None;
        for &ring in &layer.rings {
            segs.clear();
            let mut start = None;
            for u in &tracing.rings[ring as usize].uses {
                let c = &snapped[u.chain as usize];
                if u.reversed {
                    // Walk the chain backwards: each piece from its end to its start.
                    let mut starts = Vec::with_capacity(c.segs.len());
                    let mut at = c.start;
                    for s in &c.segs {
                        starts.push(at);
                        at = s.end();
                    }
                    start.get_or_insert(at);
                    for (s, from) in c.segs.iter().zip(starts).rev() {
                        let end = s.end();
                        segs.push((
                            end,
                            match *s {
                                QSeg::Line(_) => QSeg::Line(from),
                                QSeg::Cubic(a, b, _) => QSeg::Cubic(b, a, from),
                            },
                        ));
                    }
                } else {
                    start.get_or_insert(c.start);
                    let mut at = c.start;
                    for &s in &c.segs {
                        segs.push((at, s));
                        at = s.end();
                    }
                }
            }
            let Some(start) = start else { continue };
            // The closing line is drawn by `z`; zero-length lines are dropped.
            while let Some(&(from, QSeg::Line(p))) = segs.last() {
                if p == start || p == from {
                    segs.pop();
                } else {
                    break;
                }
            }
            if segs.is_empty() {
                continue;
            }
            match pen {
                None => {
                    d.cmd(b'M');
                    d.num(start[0]);
                    d.num(start[1]);
                }
                Some(p) => {
                    d.cmd(b'm');
                    d.num(start[0] - p[0]);
                    d.num(start[1] - p[1]);
                }
            }
            pen = Some(start);
            for &(from, s) in &segs {
                if let QSeg::Line(p) = s
                    && p == from
                {
                    continue;
                }
                d.seg(from, s);
                written.nodes += 1;
            }
            d.cmd(b'z');
        }
        if d.out.is_empty() {
            continue;
        }
        let _ = write!(
            svg,
            "<path fill=\"{}\" d=\"{}\"/>",
            hex(palette[usize::from(layer.label)]),
            d.out
        );
        written.paths += 1;
    }
    svg.push_str("</svg>\n");
    (svg, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(scale: i64, f: impl FnOnce(&mut PathData)) -> String {
        let mut d = PathData {
            out: String::new(),
            last_cmd: 0,
            last_had_point: false,
            scale,
        };
        f(&mut d);
        d.out
    }

    #[test]
    fn numbers_are_short_and_unambiguous() {
        let s = data(10, |d| {
            d.cmd(b'M');
            d.num(15);
            d.num(-5);
            d.cmd(b'l');
            d.num(5);
            d.num(5);
            d.cmd(b'l');
            d.num(20);
            d.num(0);
        });
        assert_eq!(s, "M1.5-.5l.5.5 2 0");
    }

    #[test]
    fn colours_shorten_only_when_exact() {
        assert_eq!(hex([0xff, 0x00, 0x88]), "#f08");
        assert_eq!(hex([0xff, 0x01, 0x88]), "#ff0188");
    }
}
