//! Typed operation parameters: the spec every operation declares once, and the validated values.
//!
//! A [`ParamSpec`] carries the key, label, range, default, unit and whether the value is a
//! spatial quantity in full-resolution pixels (so that a preview at pyramid scale `s` can use
//! `value * s`). Chain-file loading, the CLI and (later) the GUI all validate through
//! [`Params::from_raw`], so every front end reports the same errors.
//!
//! Depends on nothing but `chain::raw` (the format-neutral parsed tree).

use std::collections::BTreeMap;
use std::fmt;

use crate::chain::raw::RawValue;

/// The unit a numeric parameter is expressed in; shown in `opossum ops` and UI labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// No unit (a factor or a count).
    None,
    /// Pixels at full resolution.
    Px,
    /// Exposure value (stops).
    Ev,
    /// Degrees.
    Deg,
    /// Percent (0..100).
    Percent,
    /// 8-bit levels (0..255).
    Levels,
}

impl Unit {
    /// Short suffix for display, empty for [`Unit::None`].
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Px => "px",
            Unit::Ev => "EV",
            Unit::Deg => "°",
            Unit::Percent => "%",
            Unit::Levels => "levels",
        }
    }
}

/// The type, range and default of one parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamKind {
    /// A real number in `min..=max`.
    Float {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
        /// Default value.
        default: f64,
        /// Unit of the value.
        unit: Unit,
        /// Scales with the rendering scale (a length in full-resolution pixels).
        spatial: bool,
    },
    /// An integer in `min..=max`.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
        /// Default value.
        default: i64,
        /// Unit of the value.
        unit: Unit,
        /// Scales with the rendering scale (a length in full-resolution pixels).
        spatial: bool,
    },
    /// A switch.
    Bool {
        /// Default value.
        default: bool,
    },
    /// One of a fixed list of names.
    Choice {
        /// Allowed names, in display order.
        choices: &'static [&'static str],
        /// Default name.
        default: &'static str,
    },
    /// An sRGB colour with alpha, written `"#rrggbb"` or `"#rrggbbaa"`.
    Color {
        /// Default colour, RGBA.
        default: [u8; 4],
    },
    /// Free text (e.g. a watermark).
    Text {
        /// Default text.
        default: &'static str,
        /// Longest accepted text, in characters.
        max_chars: usize,
    },
}

/// Declaration of one parameter of an operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    /// Stable key used in chain files and on the command line.
    pub key: &'static str,
    /// Human label (sentence case, no trailing period).
    pub label: &'static str,
    /// One-line help, used as tooltip and in `opossum ops`.
    pub doc: &'static str,
    /// Type, range and default.
    pub kind: ParamKind,
}

impl ParamSpec {
    /// The default value of this parameter.
    pub fn default_value(&self) -> ParamValue {
        match self.kind {
            ParamKind::Float { default, .. } => ParamValue::Float(default),
            ParamKind::Int { default, .. } => ParamValue::Int(default),
            ParamKind::Bool { default } => ParamValue::Bool(default),
            ParamKind::Choice { default, .. } => ParamValue::Choice(default.to_owned()),
            ParamKind::Color { default } => ParamValue::Color(default),
            ParamKind::Text { default, .. } => ParamValue::Text(default.to_owned()),
        }
    }

    /// Human description of the allowed values, e.g. `0..=250 px` or `one of fit, fill, exact`.
    pub fn range_text(&self) -> String {
        match self.kind {
            ParamKind::Float { min, max, unit, .. } => format!("{min}..={max} {}", unit.suffix())
                .trim_end()
                .to_owned(),
            ParamKind::Int { min, max, unit, .. } => format!("{min}..={max} {}", unit.suffix())
                .trim_end()
                .to_owned(),
            ParamKind::Bool { .. } => "true or false".to_owned(),
            ParamKind::Choice { choices, .. } => format!("one of {}", choices.join(", ")),
            ParamKind::Color { .. } => "a colour \"#rrggbb\" or \"#rrggbbaa\"".to_owned(),
            ParamKind::Text { max_chars, .. } => format!("text of at most {max_chars} characters"),
        }
    }

    /// Validate and convert one raw value against this spec.
    pub fn parse(&self, raw: &RawValue) -> Result<ParamValue, String> {
        match self.kind {
            ParamKind::Float { min, max, .. } => {
                let v = match raw {
                    RawValue::Int(i) => *i as f64,
                    RawValue::Float(f) => *f,
                    other => return Err(format!("expected a number, found {}", other.type_name())),
                };
                if !v.is_finite() {
                    return Err(format!(
                        "{v} is not a finite number; allowed: {}",
                        self.range_text()
                    ));
                }
                if v < min || v > max {
                    return Err(format!(
                        "{v} is out of range; allowed: {}",
                        self.range_text()
                    ));
                }
                Ok(ParamValue::Float(v))
            }
            ParamKind::Int { min, max, .. } => {
                let v = match raw {
                    RawValue::Int(i) => *i,
                    RawValue::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        *f as i64
                    }
                    RawValue::Float(f) => {
                        return Err(format!(
                            "expected a whole number, found {f}; allowed: {}",
                            self.range_text()
                        ));
                    }
                    other => {
                        return Err(format!(
                            "expected a whole number, found {}",
                            other.type_name()
                        ));
                    }
                };
                if v < min || v > max {
                    return Err(format!(
                        "{v} is out of range; allowed: {}",
                        self.range_text()
                    ));
                }
                Ok(ParamValue::Int(v))
            }
            ParamKind::Bool { .. } => match raw {
                RawValue::Bool(b) => Ok(ParamValue::Bool(*b)),
                other => Err(format!(
                    "expected true or false, found {}",
                    other.type_name()
                )),
            },
            ParamKind::Choice { choices, .. } => {
                let name = match raw {
                    RawValue::String(s) => s.clone(),
                    // Allow `angle = 90` where the choices are "90", "180", ….
                    RawValue::Int(i) => i.to_string(),
                    other => {
                        return Err(format!(
                            "expected a name, found {}; allowed: {}",
                            other.type_name(),
                            self.range_text()
                        ));
                    }
                };
                if choices.contains(&name.as_str()) {
                    Ok(ParamValue::Choice(name))
                } else {
                    Err(format!(
                        "unknown value {name:?}; allowed: {}",
                        self.range_text()
                    ))
                }
            }
            ParamKind::Color { .. } => match raw {
                RawValue::String(s) => parse_color(s).map(ParamValue::Color).ok_or_else(|| {
                    format!("{s:?} is not a colour; allowed: {}", self.range_text())
                }),
                other => Err(format!(
                    "expected a colour string, found {}",
                    other.type_name()
                )),
            },
            ParamKind::Text { max_chars, .. } => match raw {
                RawValue::String(s) => {
                    let n = s.chars().count();
                    if n > max_chars {
                        Err(format!(
                            "text has {n} characters; at most {max_chars} allowed"
                        ))
                    } else if s.chars().any(|c| c.is_control() && c != '\n') {
                        Err("text contains control characters".to_owned())
                    } else {
                        Ok(ParamValue::Text(s.clone()))
                    }
                }
                other => Err(format!("expected text, found {}", other.type_name())),
            },
        }
    }

    /// Whether this parameter is a length that scales with the rendering scale.
    pub fn is_spatial(&self) -> bool {
        matches!(
            self.kind,
            ParamKind::Float { spatial: true, .. } | ParamKind::Int { spatial: true, .. }
        )
    }
}

/// A length in full-resolution pixels, `0..=65535`, default 0, that scales with the rendering
/// scale (crop edges, resize targets, …).
pub const fn px_param(key: &'static str, label: &'static str, doc: &'static str) -> ParamSpec {
    ParamSpec {
        key,
        label,
        doc,
        kind: ParamKind::Int {
            min: 0,
            max: 65_535,
            default: 0,
            unit: Unit::Px,
            spatial: true,
        },
    }
}

/// Parse `#rgb`, `#rrggbb` or `#rrggbbaa` into RGBA.
pub fn parse_color(text: &str) -> Option<[u8; 4]> {
    let hex = text.trim().strip_prefix('#')?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    match hex.len() {
        3 => {
            let nib = |i: usize| u8::from_str_radix(&hex[i..=i], 16).ok().map(|v| v * 17);
            Some([nib(0)?, nib(1)?, nib(2)?, 255])
        }
        6 => Some([byte(0)?, byte(2)?, byte(4)?, 255]),
        8 => Some([byte(0)?, byte(2)?, byte(4)?, byte(6)?]),
        _ => None,
    }
}

/// Format RGBA as `#rrggbb` (or `#rrggbbaa` when not opaque).
pub fn format_color(c: [u8; 4]) -> String {
    if c[3] == 255 {
        format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
    } else {
        format!("#{:02x}{:02x}{:02x}{:02x}", c[0], c[1], c[2], c[3])
    }
}

/// One validated parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// A real number.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A switch.
    Bool(bool),
    /// A choice name.
    Choice(String),
    /// RGBA colour.
    Color([u8; 4]),
    /// Text.
    Text(String),
}

impl ParamValue {
    /// Convert to the format-neutral tree (for saving chain files).
    pub fn to_raw(&self) -> RawValue {
        match self {
            ParamValue::Float(v) => RawValue::Float(*v),
            ParamValue::Int(v) => RawValue::Int(*v),
            ParamValue::Bool(v) => RawValue::Bool(*v),
            ParamValue::Choice(v) | ParamValue::Text(v) => RawValue::String(v.clone()),
            ParamValue::Color(c) => RawValue::String(format_color(*c)),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Choice(v) => write!(f, "{v}"),
            ParamValue::Color(c) => write!(f, "{}", format_color(*c)),
            ParamValue::Text(v) => write!(f, "{v:?}"),
        }
    }
}

/// A complete, validated set of parameter values for one operation: every key of the spec is
/// present, every value is in range.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Params {
    values: BTreeMap<&'static str, ParamValue>,
}

impl Params {
    /// All defaults of `specs`.
    pub fn defaults(specs: &'static [ParamSpec]) -> Self {
        Self {
            values: specs.iter().map(|s| (s.key, s.default_value())).collect(),
        }
    }

    /// Validate `raw` (key → value) against `specs`, filling missing keys with defaults.
    /// Errors carry the offending key and a reason that names the allowed values.
    pub fn from_raw<'a>(
        specs: &'static [ParamSpec],
        raw: impl IntoIterator<Item = (&'a str, &'a RawValue)>,
    ) -> Result<Self, (String, String)> {
        let mut params = Self::defaults(specs);
        for (key, value) in raw {
            let Some(spec) = specs.iter().find(|s| s.key == key) else {
                let known: Vec<&str> = specs.iter().map(|s| s.key).collect();
                let known = if known.is_empty() {
                    "this operation has no parameters".to_owned()
                } else {
                    format!("known fields: enabled, {}", known.join(", "))
                };
                return Err((key.to_owned(), format!("unknown field; {known}")));
            };
            let parsed = spec.parse(value).map_err(|e| (key.to_owned(), e))?;
            params.values.insert(spec.key, parsed);
        }
        Ok(params)
    }

    /// Set one value, validating it against its spec.
    pub fn set(
        &mut self,
        specs: &'static [ParamSpec],
        key: &str,
        raw: &RawValue,
    ) -> Result<(), String> {
        let spec = specs
            .iter()
            .find(|s| s.key == key)
            .ok_or_else(|| format!("unknown field `{key}`"))?;
        self.values.insert(spec.key, spec.parse(raw)?);
        Ok(())
    }

    /// Iterate over (key, value) in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ParamValue)> {
        self.values.iter().map(|(k, v)| (*k, v))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        self.values.get(key)
    }

    /// A float parameter (ints are widened).
    pub fn float(&self, key: &str) -> f64 {
        match self.values.get(key) {
            Some(ParamValue::Float(v)) => *v,
            Some(ParamValue::Int(v)) => *v as f64,
            _ => 0.0,
        }
    }

    /// An integer parameter.
    pub fn int(&self, key: &str) -> i64 {
        match self.values.get(key) {
            Some(ParamValue::Int(v)) => *v,
            Some(ParamValue::Float(v)) => v.round() as i64,
            _ => 0,
        }
    }

    /// A boolean parameter.
    pub fn bool(&self, key: &str) -> bool {
        matches!(self.values.get(key), Some(ParamValue::Bool(true)))
    }

    /// A choice parameter's name.
    pub fn choice(&self, key: &str) -> &str {
        match self.values.get(key) {
            Some(ParamValue::Choice(v)) => v,
            _ => "",
        }
    }

    /// A colour parameter.
    pub fn color(&self, key: &str) -> [u8; 4] {
        match self.values.get(key) {
            Some(ParamValue::Color(c)) => *c,
            _ => [0, 0, 0, 255],
        }
    }

    /// A text parameter.
    pub fn text(&self, key: &str) -> &str {
        match self.values.get(key) {
            Some(ParamValue::Text(v)) => v,
            _ => "",
        }
    }

    /// These parameters with every spatial value multiplied by `scale` (for rendering at a
    /// pyramid level). Integers are rounded, and a positive length never drops to zero.
    pub fn scaled(&self, specs: &'static [ParamSpec], scale: f64) -> Self {
        if scale == 1.0 {
            return self.clone();
        }
        let mut out = self.clone();
        for spec in specs.iter().filter(|s| s.is_spatial()) {
            let Some(value) = out.values.get_mut(spec.key) else {
                continue;
            };
            match value {
                ParamValue::Float(v) => *v *= scale,
                ParamValue::Int(v) => {
                    let scaled = (*v as f64 * scale).round() as i64;
                    *v = if *v > 0 { scaled.max(1) } else { scaled };
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            key: "sigma",
            label: "Sigma",
            doc: "",
            kind: ParamKind::Float {
                min: 0.0,
                max: 10.0,
                default: 1.0,
                unit: Unit::Px,
                spatial: true,
            },
        },
        ParamSpec {
            key: "mode",
            label: "Mode",
            doc: "",
            kind: ParamKind::Choice {
                choices: &["a", "90"],
                default: "a",
            },
        },
    ];

    #[test]
    fn colors_parse_and_format() {
        assert_eq!(parse_color("#000000"), Some([0, 0, 0, 255]));
        assert_eq!(parse_color("#ff000080"), Some([255, 0, 0, 128]));
        assert_eq!(parse_color("#fff"), Some([255, 255, 255, 255]));
        assert_eq!(parse_color("red"), None);
        assert_eq!(parse_color("#12345"), None);
        assert_eq!(format_color([1, 2, 3, 255]), "#010203");
    }

    #[test]
    fn rejects_out_of_range_and_nan() {
        let bad = RawValue::Float(11.0);
        let err = Params::from_raw(SPECS, [("sigma", &bad)]).unwrap_err();
        assert_eq!(err.0, "sigma");
        assert!(err.1.contains("0..=10 px"), "{}", err.1);
        let nan = RawValue::Float(f64::NAN);
        assert!(Params::from_raw(SPECS, [("sigma", &nan)]).is_err());
        let unknown = RawValue::Int(1);
        let err = Params::from_raw(SPECS, [("sigmaa", &unknown)]).unwrap_err();
        assert!(err.1.contains("known fields"), "{}", err.1);
    }

    #[test]
    fn integer_choice_and_scaling() {
        let ninety = RawValue::Int(90);
        let p = Params::from_raw(SPECS, [("mode", &ninety)]).unwrap();
        assert_eq!(p.choice("mode"), "90");
        let s = p.scaled(SPECS, 0.5);
        assert_eq!(s.float("sigma"), 0.5);
    }
}
