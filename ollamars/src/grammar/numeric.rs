//! Numeric bounds as grammar: `minimum`, `maximum`, `exclusiveMinimum` and `exclusiveMaximum`
//! on `integer` and `number` schemas.
//!
//! Integers are exact: the decimal texts of a range are split into runs of equal length and
//! matched digit by digit (e.g. 7..=123 is `[7-9] | [1-9] [0-9] | "1" [0-1] [0-9] | "12" [0-3]`).
//!
//! A number is a sign, an integer part `I` and an optional fraction `F` (no exponent when
//! bounded). `I.F` lies in `[I, I+1)` and `-I.F` in `(-(I+1), -I]`, so the allowed values become
//! integer ranges of `I` with any fraction, plus boundary values of `I` whose fraction must be
//! zero (an inclusive integral bound) or must not be (an exclusive one). A bound that is not an
//! integer is tightened inward to one, so the grammar allows a subset of the schema's values;
//! when that leaves nothing and both bounds lie in one unit interval `[I, I+1)` with `I >= 0`,
//! the fraction's first digit is bounded instead (e.g. 0.1..=0.9 gives `"0." [1-8] [0-9]{0,15}`).
//! Fractions have at most 16 digits, as in the unbounded `number` rule.

/// Integer parts longer than this are left to the unbounded rule (as `integral`, 16 digits).
const MAX_DIGITS: usize = 16;
/// Bounds beyond this magnitude are treated as absent.
const LIMIT: f64 = 1e15;

/// One bound: its value and whether it is exclusive.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bound {
    pub(super) value: f64,
    pub(super) exclusive: bool,
}

/// The GBNF expression (without trailing whitespace) of the integers in `lo..=hi`; `None` when
/// the range is empty. Either side may be open.
pub(super) fn integers(lo: Option<Bound>, hi: Option<Bound>) -> Option<String> {
    let lo = lo.filter(|b| b.value.abs() < LIMIT).map(|b| {
        let c = b.value.ceil();
        (if b.exclusive && c == b.value {
            c + 1.0
        } else {
            c
        }) as i64
    });
    let hi = hi.filter(|b| b.value.abs() < LIMIT).map(|b| {
        let f = b.value.floor();
        (if b.exclusive && f == b.value {
            f - 1.0
        } else {
            f
        }) as i64
    });
    if let (Some(l), Some(h)) = (lo, hi)
        && l > h
    {
        return None;
    }
    let mut alts = Vec::new();
    // Negative values: "-" then the magnitudes in [max(1, -hi), -lo].
    if lo.is_none_or(|l| l < 0) {
        let top = lo.map(|l| l.unsigned_abs());
        let bottom = hi.map_or(1, |h| if h < 0 { h.unsigned_abs() } else { 1 });
        if top.is_none_or(|t| t >= bottom) {
            let mags = naturals(bottom, top);
            alts.push(format!("\"-\" {}", group_alts(&mags)));
        }
    }
    // Zero and positive values: [max(0, lo), hi].
    if hi.is_none_or(|h| h >= 0) {
        let bottom = lo.map_or(0, |l| l.max(0) as u64);
        alts.extend(naturals(bottom, hi.map(|h| h as u64)));
    }
    Some(group_alts(&alts))
}

/// The GBNF expression (without trailing whitespace) of the decimal numbers between the bounds;
/// `None` when no value is left.
pub(super) fn numbers(lo: Option<Bound>, hi: Option<Bound>) -> Option<String> {
    let lo = lo.filter(|b| b.value.abs() < LIMIT);
    let hi = hi.filter(|b| b.value.abs() < LIMIT);
    let any = r#"("." [0-9]{1,16})?"#;
    let zero = r#"("." "0"{1,16})?"#;
    let nonzero = r#""." "0"{0,15} [1-9] [0-9]{0,15}"#;
    // Tighten non-integral bounds inward to integers (inclusive).
    let tight = |b: Bound, up: bool| -> Bound {
        if b.value.fract() == 0.0 {
            b
        } else {
            Bound {
                value: if up { b.value.ceil() } else { b.value.floor() },
                exclusive: false,
            }
        }
    };
    let (tlo, thi) = (lo.map(|b| tight(b, true)), hi.map(|b| tight(b, false)));
    if let (Some(l), Some(h)) = (tlo, thi)
        && (l.value > h.value || (l.value == h.value && (l.exclusive || h.exclusive)))
    {
        return first_digit(lo?, hi?);
    }
    let mut alts = Vec::new();
    let mut side = |sign: &str, full: Option<(u64, Option<u64>)>, edges: &[(u64, &str)]| {
        let mut parts = Vec::new();
        if let Some((a, b)) = full
            && b.is_none_or(|b| b >= a)
        {
            parts.push(format!("{} {any}", group_alts(&naturals(a, b))));
        }
        for &(i, frac) in edges {
            parts.push(format!("\"{i}\" {frac}"));
        }
        if !parts.is_empty() {
            alts.push(format!("{sign}{}", group_alts(&parts)));
        }
    };
    let lo_i = tlo.map(|b| (b.value as i64, b.exclusive));
    let hi_i = thi.map(|b| (b.value as i64, b.exclusive));
    // Positive side, v = I.F in [I, I+1).
    if hi_i.is_none_or(|(h, x)| h > 0 || (h == 0 && !x)) {
        let mut edges = Vec::new();
        let mut start = 0u64;
        if let Some((l, x)) = lo_i
            && l >= 0
        {
            start = l as u64;
            if x {
                edges.push((start, nonzero));
                start += 1;
            }
        }
        let mut end = None;
        if let Some((h, x)) = hi_i {
            // I = h: only h itself (zero fraction), when inclusive.
            end = Some(h - 1);
            if !x && h as u64 >= start {
                edges.push((h as u64, zero));
            }
        }
        let full = match end {
            Some(e) if e < start as i64 => None,
            Some(e) => Some((start, Some(e as u64))),
            None => Some((start, None)),
        };
        side("", full, &edges);
    }
    // Negative side, v = -(I.F) in (-(I+1), -I]; only when values below zero are allowed.
    if lo_i.is_none_or(|(l, _)| l < 0) {
        let mut edges = Vec::new();
        // From below: I + F <= -lo (inclusive) or < -lo.
        let mut end = None;
        if let Some((l, x)) = lo_i {
            let m = l.unsigned_abs();
            end = Some(m as i64 - 1);
            if !x {
                edges.push((m, zero));
            }
        }
        // From above: -(I+F) <= hi (or <): only binds when hi <= 0.
        let mut start = 0u64;
        if let Some((h, x)) = hi_i
            && h <= 0
        {
            start = h.unsigned_abs();
            if x {
                edges.retain(|&(i, _)| i != start);
                if end.is_none_or(|e| e >= start as i64) {
                    edges.push((start, nonzero));
                }
                start += 1;
            }
        }
        edges.retain(|&(i, _)| i >= start || end.is_none_or(|e| (i as i64) > e));
        let full = match end {
            Some(e) if e < start as i64 => None,
            Some(e) => Some((start, Some(e as u64))),
            None => Some((start, None)),
        };
        side("\"-\" ", full, &edges);
    }
    if alts.is_empty() {
        None
    } else {
        Some(group_alts(&alts))
    }
}

/// Both bounds inside one unit interval `[I, I+1)`, `I >= 0`: bound the first fractional digit.
fn first_digit(lo: Bound, hi: Bound) -> Option<String> {
    let i = lo.value.floor();
    if i < 0.0 || hi.value >= i + 1.0 || hi.value < lo.value {
        return None;
    }
    // Digits d with [i + d/10, i + (d+1)/10) inside the bounds (an exclusive lower bound on
    // a tenth moves up one digit; rounding keeps 0.1 * 10 from landing below 1).
    let tenths = |v: f64| ((v - i) * 10.0 * 1e9).round() / 1e9;
    let (l, h) = (tenths(lo.value), tenths(hi.value));
    let d_lo = l.ceil() as i64 + i64::from(lo.exclusive && l.fract() == 0.0);
    let d_hi = h.floor() as i64 - 1;
    if d_lo > d_hi || !(0..=9).contains(&d_lo) || !(0..=9).contains(&d_hi) {
        return None;
    }
    Some(format!(r#""{}." [{d_lo}-{d_hi}] [0-9]{{0,15}}"#, i as u64))
}

/// Alternatives matching the naturals in `a..=b` (`b` open when `None`), without leading zeros.
fn naturals(a: u64, b: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    let len_a = digits(a);
    let Some(b) = b else {
        // Up to the end of a's length, then every longer number.
        out.extend(same_length(&a.to_string(), &"9".repeat(len_a)));
        if len_a < MAX_DIGITS {
            out.push(format!("[1-9] [0-9]{{{},{}}}", len_a, MAX_DIGITS - 1));
        }
        return out;
    };
    if a > b {
        return out;
    }
    let len_b = digits(b);
    for len in len_a..=len_b {
        let lo = if len == len_a {
            a
        } else {
            10u64.pow(len as u32 - 1)
        };
        let hi = if len == len_b {
            b
        } else {
            10u64.pow(len as u32) - 1
        };
        out.extend(same_length(&lo.to_string(), &hi.to_string()));
    }
    out
}

fn digits(n: u64) -> usize {
    n.to_string().len()
}

/// Alternatives for the numbers from `x` to `y`, two decimal texts of equal length, `x <= y`.
fn same_length(x: &str, y: &str) -> Vec<String> {
    let (xb, yb) = (x.as_bytes(), y.as_bytes());
    let n = xb.len();
    if n == 0 {
        return vec![String::new()];
    }
    let (x0, y0) = (xb[0] - b'0', yb[0] - b'0');
    let (xr, yr) = (&x[1..], &y[1..]);
    if n == 1 {
        return vec![class(x0, y0)];
    }
    if x0 == y0 {
        return same_length(xr, yr)
            .into_iter()
            .map(|r| format!("\"{x0}\" {r}"))
            .collect();
    }
    let any_rest = |k: usize| format!("[0-9]{{{k}}}");
    let mut out = Vec::new();
    let low_full = xr.bytes().all(|c| c == b'0');
    let high_full = yr.bytes().all(|c| c == b'9');
    let mid_lo = if low_full { x0 } else { x0 + 1 };
    let mid_hi = if high_full { y0 } else { y0 - 1 };
    if !low_full {
        for r in same_length(xr, &"9".repeat(n - 1)) {
            out.push(format!("\"{x0}\" {r}"));
        }
    }
    if mid_lo <= mid_hi {
        out.push(format!("{} {}", class(mid_lo, mid_hi), any_rest(n - 1)));
    }
    if !high_full {
        for r in same_length(&"0".repeat(n - 1), yr) {
            out.push(format!("\"{y0}\" {r}"));
        }
    }
    out
}

fn class(a: u8, b: u8) -> String {
    if a == b {
        format!("\"{a}\"")
    } else {
        format!("[{a}-{b}]")
    }
}

fn group_alts(alts: &[String]) -> String {
    match alts {
        [one] => one.clone(),
        _ => format!("({})", alts.join(" | ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grammar tests' matcher on a one-rule grammar.
    fn accepts(expr: &str, text: &str) -> bool {
        crate::grammar::tests::gbnf_accepts(&format!("root ::= {expr}"), text)
    }

    fn b(value: f64, exclusive: bool) -> Option<Bound> {
        Some(Bound { value, exclusive })
    }

    #[test]
    fn integer_ranges_are_exact() {
        let cases: &[(Option<Bound>, Option<Bound>)] = &[
            (b(7.0, false), b(123.0, false)),
            (b(-15.0, false), b(15.0, false)),
            (b(-100.0, true), b(-3.0, true)),
            (b(0.0, false), None),
            (None, b(-5.0, false)),
            (b(1.5, false), b(9.5, false)),
            (b(95.0, false), b(1005.0, false)),
        ];
        for &(lo, hi) in cases {
            let e = integers(lo, hi).unwrap();
            for n in -1200i64..=1200 {
                let want = lo.is_none_or(|l| {
                    if l.exclusive {
                        (n as f64) > l.value
                    } else {
                        (n as f64) >= l.value
                    }
                }) && hi.is_none_or(|h| {
                    if h.exclusive {
                        (n as f64) < h.value
                    } else {
                        (n as f64) <= h.value
                    }
                });
                assert_eq!(
                    accepts(&e, &n.to_string()),
                    want,
                    "{n} in {lo:?}..{hi:?}: {e}"
                );
            }
            assert!(!accepts(&e, "007"));
        }
        assert!(integers(b(5.0, false), b(4.0, false)).is_none());
        assert!(integers(b(5.0, true), b(6.0, true)).is_none());
    }

    #[test]
    fn number_ranges_stay_inside() {
        let cases: &[(Option<Bound>, Option<Bound>)] = &[
            (b(0.0, false), b(1.0, false)),
            (b(-100.0, true), b(100.0, true)),
            (b(-2.0, false), b(-1.0, true)),
            (b(0.0, true), None),
            (None, b(0.0, true)),
            (b(0.1, false), b(0.9, false)),
            (b(-3.5, false), b(2.5, false)),
            (b(1.0, false), b(1.0, false)),
        ];
        let texts: Vec<String> = (-1050i64..=1050)
            .flat_map(|k| {
                let v = k as f64 / 10.0;
                [format!("{v}"), format!("{v:.1}"), format!("{v:.3}")]
            })
            .chain([
                "-0".into(),
                "-0.0".into(),
                "0.0".into(),
                "1.00".into(),
                "100".into(),
            ])
            .collect();
        for &(lo, hi) in cases {
            let e = numbers(lo, hi).unwrap();
            let mut some = 0;
            for t in &texts {
                let v: f64 = t.parse().unwrap();
                let inside = lo.is_none_or(|l| {
                    if l.exclusive {
                        v > l.value
                    } else {
                        v >= l.value
                    }
                }) && hi.is_none_or(|h| {
                    if h.exclusive {
                        v < h.value
                    } else {
                        v <= h.value
                    }
                });
                if accepts(&e, t) {
                    assert!(inside, "{t} accepted outside {lo:?}..{hi:?}: {e}");
                    some += 1;
                }
            }
            assert!(some > 0, "nothing accepted for {lo:?}..{hi:?}: {e}");
        }
        // Integral bounds are exact at the edges.
        let e = numbers(b(0.0, false), b(1.0, false)).unwrap();
        for t in ["0", "0.5", "0.999", "1", "1.0", "1.000"] {
            assert!(accepts(&e, t), "{t}");
        }
        for t in ["1.01", "-0.1", "2", "10"] {
            assert!(!accepts(&e, t), "{t}");
        }
        let e = numbers(b(-100.0, true), b(100.0, true)).unwrap();
        for t in ["-99.9", "99.99", "0", "-0.5"] {
            assert!(accepts(&e, t), "{t}");
        }
        for t in ["100", "-100", "100.0", "-100.0", "212.8"] {
            assert!(!accepts(&e, t), "{t}");
        }
    }
}
