//! How far behind a standby's stream runs, measured change by change: for each entry
//! it applies, the time from the primary's commit (the entry's own timestamp) to its
//! apply here. Gathered per second in memory ([`Seconds`]) as a histogram exact to the
//! millisecond below 100 ms (10 ms to 1 s, 100 ms to 10 s, then one bucket), with the
//! entries and changeset bytes applied; the stream writes each finished second
//! (`store::stream`), and [`summarize`] turns any run of seconds into throughput and
//! lag percentiles (`show replication`, the benchmarks). Both clocks must agree, as the
//! guide requires (NTP); the heartbeat reports their offset.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::coredb::changelog::Entry;
use crate::store::LagSecond;

/// The bucket of a lag of `ms` milliseconds.
pub fn bucket(ms: i64) -> u16 {
    let ms = ms.max(0);
    let b = match ms {
        0..100 => ms,
        100..1000 => 100 + (ms - 100) / 10,
        1000..10_000 => 190 + (ms - 1000) / 100,
        _ => 280,
    };
    u16::try_from(b).unwrap_or(280)
}

/// The largest lag a bucket holds (ms); the last bucket holds everything longer.
pub fn bucket_top(b: u16) -> i64 {
    let b = i64::from(b);
    match b {
        0..100 => b,
        100..190 => 100 + (b - 100) * 10 + 9,
        190..280 => 1000 + (b - 190) * 100 + 99,
        _ => i64::MAX,
    }
}

/// Milliseconds since the Unix epoch of an entry's RFC 3339 timestamp.
fn at_ms(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at).ok().map(|t| t.timestamp_millis())
}

/// The seconds being gathered.
#[derive(Debug, Default)]
pub struct Seconds {
    open: BTreeMap<i64, LagSecond>,
}

impl Seconds {
    /// Counts `entries`, applied at `now_ms`.
    pub fn record(&mut self, entries: &[Entry], now_ms: i64) {
        let second = now_ms.div_euclid(1000);
        let s = self.open.entry(second).or_insert_with(|| LagSecond { second, ..LagSecond::default() });
        for e in entries {
            let lag = at_ms(&e.at).map_or(0, |at| (now_ms - at).max(0));
            s.entries += 1;
            s.bytes += i64::try_from(e.changeset.len()).unwrap_or(i64::MAX);
            s.max_ms = s.max_ms.max(lag);
            *s.histogram.entry(bucket(lag)).or_default() += 1;
        }
    }

    /// The seconds that ended before `now_ms`, taken out.
    pub fn finished(&mut self, now_ms: i64) -> Vec<LagSecond> {
        let current = now_ms.div_euclid(1000);
        let keep = self.open.split_off(&current);
        std::mem::replace(&mut self.open, keep).into_values().collect()
    }
}

/// Throughput and lag over a run of seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LagSummary {
    /// Seconds with at least one entry applied.
    pub seconds: i64,
    pub entries: i64,
    pub bytes: i64,
    /// Commit-to-apply time: each percentile is the top of its histogram bucket (exact
    /// below 100 ms), the maximum exact.
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

/// Sums `seconds` and reads the percentiles off their histograms.
pub fn summarize(seconds: &[LagSecond]) -> LagSummary {
    let mut histogram: BTreeMap<u16, u64> = BTreeMap::new();
    let mut sum = LagSummary::default();
    for s in seconds {
        sum.seconds += 1;
        sum.entries += s.entries;
        sum.bytes += s.bytes;
        sum.max_ms = Some(sum.max_ms.unwrap_or(0).max(s.max_ms));
        for (b, n) in &s.histogram {
            *histogram.entry(*b).or_default() += u64::from(*n);
        }
    }
    let total: u64 = histogram.values().sum();
    let at = |q: f64| -> Option<i64> {
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        histogram.iter().find_map(|(b, n)| {
            seen += n;
            (seen >= rank).then(|| bucket_top(*b).min(sum.max_ms.unwrap_or(i64::MAX)))
        })
    };
    if total > 0 {
        sum.p50_ms = at(0.50);
        sum.p99_ms = at(0.99);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: &str) -> Entry {
        Entry { seq: 1, at: at.into(), rows: 1, checksum: String::new(), origin: String::new(), changeset: vec![0; 10] }
    }

    #[test]
    fn buckets_are_exact_below_100_ms_and_cover_everything() {
        assert_eq!(
            (bucket(0), bucket(99), bucket(100), bucket(999), bucket(1000), bucket(60_000)),
            (0, 99, 100, 189, 190, 280)
        );
        for ms in [0, 5, 99, 100, 105, 999, 1000, 9999] {
            assert!(bucket_top(bucket(ms)) >= ms, "{ms}");
        }
        assert_eq!(bucket_top(bucket(42)), 42);
    }

    #[test]
    fn seconds_sum_into_percentiles() {
        let mut s = Seconds::default();
        // Committed at 10.000 s; 98 applied 3 ms later, one 40 ms, one 250 ms later.
        let now = 10_000;
        s.record(&vec![entry("1970-01-01T00:00:10.000Z"); 98], now + 3);
        s.record(&[entry("1970-01-01T00:00:10.000Z")], now + 40);
        s.record(&[entry("1970-01-01T00:00:10.000Z")], now + 250);
        assert!(s.finished(now + 500).is_empty(), "the second is not over");
        let done = s.finished(now + 1000);
        assert_eq!(done.len(), 1);
        let sum = summarize(&done);
        assert_eq!((sum.entries, sum.bytes, sum.seconds), (100, 1000, 1));
        assert_eq!((sum.p50_ms, sum.p99_ms, sum.max_ms), (Some(3), Some(40), Some(250)));
        assert_eq!(summarize(&[]).p99_ms, None);
    }
}
