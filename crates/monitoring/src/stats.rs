//! CloudWatch's statistics over a set of datapoints: sample count, sum, minimum, maximum,
//! average and percentiles.
//!
//! Percentiles are exact over raw datapoints (the 3-hour tier keeps every value) and
//! approximate over rolled-up tiers, which keep a log-bucketed histogram whose buckets are 1%
//! wide: a percentile read from them is within 1% of the true value (and within the bucket's
//! minimum and maximum). Datapoints published as `StatisticValues` carry no distribution, so
//! a period holding one has no percentiles, as in AWS.

use std::collections::BTreeMap;

/// Relative width of a histogram bucket.
const GAMMA: f64 = 1.01;

/// A summary of the values in one period (or one stored row).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub distribution: Distribution,
}

/// What is known of how the values spread, for percentiles.
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    /// Every value with its weight (its `Counts` entry).
    Exact(Vec<(f64, f64)>),
    Approximate(Histogram),
    /// Some values came as a statistic set.
    Unknown,
}

impl Summary {
    /// `value` seen `count` times.
    pub fn of_value(value: f64, count: f64) -> Summary {
        Summary {
            count,
            sum: value * count,
            min: value,
            max: value,
            distribution: Distribution::Exact(vec![(value, count)]),
        }
    }

    /// A published statistic set (no distribution).
    pub fn of_set(count: f64, sum: f64, min: f64, max: f64) -> Summary {
        Summary {
            count,
            sum,
            min,
            max,
            distribution: Distribution::Unknown,
        }
    }

    pub fn merge(&mut self, other: &Summary) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        let mine = std::mem::replace(&mut self.distribution, Distribution::Unknown);
        self.distribution = match (mine, &other.distribution) {
            (Distribution::Exact(mut mine), Distribution::Exact(theirs)) => {
                mine.extend_from_slice(theirs);
                Distribution::Exact(mine)
            }
            (Distribution::Approximate(mut mine), Distribution::Approximate(theirs)) => {
                mine.merge(theirs);
                Distribution::Approximate(mine)
            }
            (Distribution::Approximate(mut mine), Distribution::Exact(values)) => {
                values.iter().for_each(|(v, w)| mine.add(*v, *w));
                Distribution::Approximate(mine)
            }
            (Distribution::Exact(values), Distribution::Approximate(theirs)) => {
                let mut histogram = theirs.clone();
                values.iter().for_each(|(v, w)| histogram.add(*v, *w));
                Distribution::Approximate(histogram)
            }
            _ => Distribution::Unknown,
        };
    }

    /// The same summary with its distribution as a histogram, as rolled-up tiers keep it.
    pub fn rolled_up(&self) -> Summary {
        let distribution = match &self.distribution {
            Distribution::Exact(values) => {
                let mut histogram = Histogram::default();
                values.iter().for_each(|(v, w)| histogram.add(*v, *w));
                Distribution::Approximate(histogram)
            }
            other => other.clone(),
        };
        Summary {
            distribution,
            ..self.clone()
        }
    }

    /// The `pNN` percentile, when the distribution is known.
    pub fn percentile(&self, percent: f64) -> Option<f64> {
        let value = match &self.distribution {
            Distribution::Exact(values) => exact_percentile(values, percent)?,
            Distribution::Approximate(histogram) => histogram.percentile(percent)?,
            Distribution::Unknown => return None,
        };
        Some(value.clamp(self.min, self.max))
    }

    /// One of CloudWatch's statistics.
    pub fn statistic(&self, statistic: Statistic) -> Option<f64> {
        match statistic {
            Statistic::SampleCount => Some(self.count),
            Statistic::Sum => Some(self.sum),
            Statistic::Minimum => Some(self.min),
            Statistic::Maximum => Some(self.max),
            Statistic::Average => (self.count > 0.0).then(|| self.sum / self.count),
            Statistic::Percentile(percent) => self.percentile(percent),
        }
    }
}

/// Nearest rank: the smallest value with at least `percent`% of the weight at or below it.
fn exact_percentile(values: &[(f64, f64)], percent: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = sorted.iter().map(|(_, w)| w).sum();
    let rank = (percent / 100.0 * total).ceil().max(f64::MIN_POSITIVE);
    let mut seen = 0.0;
    for (value, weight) in &sorted {
        seen += weight;
        if seen >= rank {
            return Some(*value);
        }
    }
    sorted.last().map(|(value, _)| *value)
}

/// A CloudWatch statistic: the five simple ones, or `pNN.NN`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    Percentile(f64),
}

impl Statistic {
    /// Reads `SampleCount`…`Maximum` or `p0`…`p100` (with up to two decimals); `None` for
    /// anything else (including the trimmed and windsorized statistics nimbus lacks).
    pub fn parse(text: &str) -> Option<Statistic> {
        Some(match text {
            "SampleCount" => Statistic::SampleCount,
            "Average" => Statistic::Average,
            "Sum" => Statistic::Sum,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            _ => {
                let digits = text.strip_prefix('p')?;
                let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len());
                if digits.is_empty()
                    || decimals > 2
                    || !digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                {
                    return None;
                }
                let percent: f64 = digits.parse().ok()?;
                if !(0.0..=100.0).contains(&percent) {
                    return None;
                }
                Statistic::Percentile(percent)
            }
        })
    }
}

/// Log-bucketed counts of values: bucket `i` of a sign holds magnitudes in
/// `(GAMMA^(i-1), GAMMA^i]`; zero has its own bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    buckets: BTreeMap<(i8, i32), f64>,
}

fn bucket_of(value: f64) -> (i8, i32) {
    if value == 0.0 {
        return (0, 0);
    }
    let index = (value.abs().ln() / GAMMA.ln()).ceil() as i32;
    if value > 0.0 {
        (1, index)
    } else {
        // Larger magnitudes sort first among negatives.
        (-1, -index)
    }
}

fn representative((sign, index): (i8, i32)) -> f64 {
    let magnitude = |i: i32| GAMMA.powf(i as f64 - 0.5);
    match sign {
        1 => magnitude(index),
        -1 => -magnitude(-index),
        _ => 0.0,
    }
}

impl Histogram {
    pub fn add(&mut self, value: f64, weight: f64) {
        *self.buckets.entry(bucket_of(value)).or_default() += weight;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, weight) in &other.buckets {
            *self.buckets.entry(*bucket).or_default() += weight;
        }
    }

    fn percentile(&self, percent: f64) -> Option<f64> {
        let total: f64 = self.buckets.values().sum();
        let rank = (percent / 100.0 * total).max(f64::MIN_POSITIVE);
        let mut seen = 0.0;
        for (bucket, weight) in &self.buckets {
            seen += weight;
            if seen >= rank {
                return Some(representative(*bucket));
            }
        }
        self.buckets
            .keys()
            .last()
            .map(|bucket| representative(*bucket))
    }

    /// 13 bytes a bucket: sign, index, weight (little-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.buckets.len() * 13);
        for ((sign, index), weight) in &self.buckets {
            bytes.extend_from_slice(&sign.to_le_bytes());
            bytes.extend_from_slice(&index.to_le_bytes());
            bytes.extend_from_slice(&weight.to_le_bytes());
        }
        bytes
    }

    /// The inverse of [`Histogram::to_bytes`]; `None` for bytes it did not write.
    pub fn from_bytes(bytes: &[u8]) -> Option<Histogram> {
        if !bytes.len().is_multiple_of(13) {
            return None;
        }
        let mut buckets = BTreeMap::new();
        for chunk in bytes.chunks_exact(13) {
            let sign = i8::from_le_bytes([chunk[0]]);
            let index = i32::from_le_bytes(chunk[1..5].try_into().ok()?);
            let weight = f64::from_le_bytes(chunk[5..13].try_into().ok()?);
            buckets.insert((sign, index), weight);
        }
        Some(Histogram { buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_of(values: impl IntoIterator<Item = f64>) -> Summary {
        let mut values = values.into_iter();
        let first = values.next().expect("one value");
        let mut summary = Summary::of_value(first, 1.0);
        values.for_each(|v| summary.merge(&Summary::of_value(v, 1.0)));
        summary
    }

    #[test]
    fn simple_statistics_and_exact_percentiles() {
        let summary = summary_of((1..=100).map(f64::from));
        assert_eq!(summary.statistic(Statistic::SampleCount), Some(100.0));
        assert_eq!(summary.statistic(Statistic::Sum), Some(5050.0));
        assert_eq!(summary.statistic(Statistic::Average), Some(50.5));
        assert_eq!(summary.statistic(Statistic::Minimum), Some(1.0));
        assert_eq!(summary.statistic(Statistic::Maximum), Some(100.0));
        assert_eq!(summary.percentile(99.0), Some(99.0));
        assert_eq!(summary.percentile(50.0), Some(50.0));
        assert_eq!(summary.percentile(100.0), Some(100.0));
        assert_eq!(summary.percentile(0.0), Some(1.0));
    }

    #[test]
    fn counts_weigh_values() {
        let mut summary = Summary::of_value(10.0, 99.0);
        summary.merge(&Summary::of_value(1000.0, 1.0));
        assert_eq!(summary.statistic(Statistic::SampleCount), Some(100.0));
        assert_eq!(summary.percentile(99.0), Some(10.0));
        assert_eq!(summary.percentile(99.5), Some(1000.0));
    }

    #[test]
    fn rolled_up_percentiles_are_within_one_percent() {
        let summary = summary_of((1..=10_000).map(|v| f64::from(v) / 7.0)).rolled_up();
        for percent in [1.0, 50.0, 90.0, 99.0, 99.9] {
            let exact = 10_000.0 * percent / 100.0 / 7.0;
            let approximate = summary.percentile(percent).expect("percentile");
            assert!(
                (approximate - exact).abs() <= exact * 0.01,
                "p{percent}: {approximate} vs {exact}"
            );
        }
        let negatives = summary_of([-5.0, -1.0, 0.0, 2.0]).rolled_up();
        assert!((negatives.percentile(25.0).expect("p25") + 5.0).abs() < 0.05);
        assert_eq!(negatives.percentile(75.0), Some(0.0));
    }

    #[test]
    fn histograms_survive_their_bytes() {
        let summary = summary_of([-3.5, 0.0, 1e-9, 7e300]).rolled_up();
        let Distribution::Approximate(histogram) = &summary.distribution else {
            panic!("rolled up");
        };
        assert_eq!(
            Histogram::from_bytes(&histogram.to_bytes()).as_ref(),
            Some(histogram)
        );
        assert!(Histogram::from_bytes(&[1, 2, 3]).is_none());
    }

    #[test]
    fn statistic_sets_have_no_percentiles() {
        let mut summary = Summary::of_set(4.0, 10.0, 1.0, 4.0);
        summary.merge(&Summary::of_value(5.0, 1.0));
        assert_eq!(summary.statistic(Statistic::Average), Some(3.0));
        assert_eq!(summary.statistic(Statistic::Maximum), Some(5.0));
        assert_eq!(summary.percentile(50.0), None);
    }

    #[test]
    fn parses_statistics() {
        assert_eq!(Statistic::parse("p99"), Some(Statistic::Percentile(99.0)));
        assert_eq!(
            Statistic::parse("p99.99"),
            Some(Statistic::Percentile(99.99))
        );
        assert_eq!(Statistic::parse("Average"), Some(Statistic::Average));
        for bad in ["p", "p101", "p99.999", "tm99", "average", "p-1", "p1e2"] {
            assert_eq!(Statistic::parse(bad), None, "{bad}");
        }
    }
}
