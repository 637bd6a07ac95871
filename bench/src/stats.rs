//! Medians, ranges and paired comparisons of benchmark samples.

/// Median, minimum and maximum of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Summary {
    /// `None` for an empty sample.
    pub fn of(xs: &[f64]) -> Option<Summary> {
        let med = median(xs)?;
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Summary {
            median: med,
            min,
            max,
            n: xs.len(),
        })
    }
}

/// The median (mean of the middle two for an even count); `None` when empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Candidate over baseline: the median of per-rep ratios when the samples pair up (same
/// length: the interleaved reps), else the ratio of the medians.
pub fn paired_ratio(cand: &[f64], base: &[f64]) -> Option<f64> {
    if cand.len() == base.len() && !cand.is_empty() && base.iter().all(|b| *b != 0.0) {
        let r: Vec<f64> = cand.iter().zip(base).map(|(c, b)| c / b).collect();
        return median(&r);
    }
    let b = median(base)?;
    (b != 0.0).then_some(median(cand)? / b)
}

/// Candidate minus baseline, paired like [`paired_ratio`].
pub fn paired_diff(cand: &[f64], base: &[f64]) -> Option<f64> {
    if cand.len() == base.len() && !cand.is_empty() {
        let d: Vec<f64> = cand.iter().zip(base).map(|(c, b)| c - b).collect();
        return median(&d);
    }
    Some(median(cand)? - median(base)?)
}

/// A number with about three significant digits.
pub fn num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_pairs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 3.0, 5.0, 3));
        // Paired: drift cancels (each rep's pair moves together).
        assert_eq!(paired_ratio(&[2.0, 4.0, 8.0], &[1.0, 2.0, 4.0]), Some(2.0));
        assert_eq!(
            paired_diff(&[12.0, 15.0, 30.0], &[10.0, 11.0, 27.0]),
            Some(3.0)
        );
        // Unpaired: ratio of medians.
        assert_eq!(paired_ratio(&[2.0], &[1.0, 1.0]), Some(2.0));
        assert_eq!(paired_ratio(&[], &[1.0]), None);
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1.2345), "1.23");
    }
}
