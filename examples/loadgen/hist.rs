//! A log-linear latency histogram: exact below 32 ns, then 32 buckets per
//! power of two (about 3 % resolution), 1,920 counters for the whole `u64`
//! range. Recording is an index computation and an increment.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (SUB as usize) * (64 - SUB_BITS as usize + 1);

/// Round-trip times in nanoseconds.
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Hist {
    pub fn new() -> Hist {
        Hist {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - SUB_BITS;
        (SUB + u64::from(shift) * SUB + ((v >> shift) - SUB)) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = (i - SUB) / SUB;
        let mantissa = (i - SUB) % SUB + SUB;
        (mantissa << shift) + ((1u64 << shift) >> 1)
    }

    pub fn record(&mut self, nanos: u64) {
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max = 0;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.5 for the median), in nanoseconds; 0
    /// when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::Hist;

    #[test]
    fn buckets_are_within_three_percent() {
        for v in [
            0u64,
            1,
            31,
            32,
            33,
            100,
            1_000,
            123_456,
            9_999_999,
            u64::MAX / 3,
        ] {
            let i = Hist::index(v);
            let mid = Hist::value(i) as f64;
            assert!(
                (mid - v as f64).abs() <= v as f64 / 32.0 + 1.0,
                "{v} -> {mid}"
            );
        }
        assert!(Hist::index(u64::MAX) < super::BUCKETS);
    }

    #[test]
    fn quantiles() {
        let mut h = Hist::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() < 500_000.0 * 0.04, "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
    }
}
