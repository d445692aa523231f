//! `primes`: counts the primes up to `limit` with a segmented sieve of
//! Eratosthenes over the odd numbers.

use std::sync::OnceLock;

use app::InputError;
use app::builtin::PrimesInput;
use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Class, Ctx, Handler, HandlerError};

/// Words (64 odd numbers each) per segment: 64 KiB stays in L1/L2 while every
/// base prime crosses it (larger segments measured no faster), and one
/// segment is about half a millisecond of work in release, which bounds how
/// late a cancel is noticed.
const SEGMENT_WORDS: usize = 8192;
const SEGMENT_BITS: u64 = SEGMENT_WORDS as u64 * 64;

/// The smallest primes are not sieved but stamped: their multiples repeat
/// every 3·5·7·11·13 odd numbers, and stamping a precomputed pattern is a
/// memcpy where sieving them would be about 40% of all the marking work.
const PRESIEVED: [u64; 5] = [3, 5, 7, 11, 13];
/// The pattern's length in words: it repeats every 15015 bits, an odd
/// number, so the shortest repeat made of whole words is 15015 words.
const PATTERN_WORDS: usize = 3 * 5 * 7 * 11 * 13;

/// The `primes` kind.
pub struct Primes;

/// π(`limit`), the number of primes `<= limit`; `Err(Stopped)` if `ctx`
/// stops first.
///
/// Bit `i` of the sieve stands for the odd number `2i + 1`; a set bit is a
/// prime candidate. Progress is reported per segment as the highest number
/// sieved so far, out of `limit`.
pub fn count_primes(limit: u64, ctx: &Ctx) -> Result<u64, HandlerError> {
    ctx.check()?;
    // Odd numbers in 1..=limit, written so that u64::MAX cannot overflow.
    let total_bits = limit / 2 + limit % 2;
    let base = base_primes(limit.isqrt());
    // Absolute bit index of each base prime's next odd multiple to strike;
    // striking starts at p², smaller multiples have a smaller factor.
    let mut next: Vec<u64> = base.iter().map(|&p| p * p / 2).collect();
    let pattern = pattern();
    let mut buf = vec![0u64; total_bits.div_ceil(64).min(SEGMENT_WORDS as u64) as usize];

    let mut count = 0;
    let mut start = 0u64;
    // Primes are sorted, so those whose square is already inside the sieved
    // range form a prefix that grows with the segments.
    let mut active = 0;
    while start < total_bits {
        ctx.check()?;
        let bits = (total_bits - start).min(SEGMENT_BITS);
        let end = start + bits;
        let words = &mut buf[..bits.div_ceil(64) as usize];
        stamp(words, pattern, start / 64);
        if start == 0 {
            fix_first_word(&mut words[0]);
        }

        while active < base.len() && next[active] < end {
            active += 1;
        }
        for (&p, next) in base[..active].iter().zip(&mut next[..active]) {
            if *next >= end {
                continue;
            }
            let step = p as usize;
            let len = bits as usize;
            let mut j = (*next - start) as usize;
            while j < len {
                words[j / 64] &= !(1u64 << (j % 64));
                j += step;
            }
            *next = start + j as u64;
        }

        // Bits past `limit` in the last word are pattern noise, not primes.
        let tail = bits % 64;
        if tail != 0
            && let Some(last) = words.last_mut()
        {
            *last &= (1u64 << tail) - 1;
        }
        count += words.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();

        start = end;
        // Highest number sieved: the odd number of the last bit, or `limit`.
        let done = (2 * (end - 1) + 1).min(limit);
        if done < limit {
            ctx.progress(done, limit, None);
        }
    }
    ctx.progress(limit, limit, None);
    // 2 is the only even prime and has no bit.
    Ok(count + u64::from(limit >= 2))
}

/// The odd primes above the presieved ones and `<= root`, by a plain sieve
/// (root is at most 10⁵ for the largest allowed limit).
fn base_primes(root: u64) -> Vec<u64> {
    // composite[i] stands for 2i + 1; p² is taken in u64, as it would
    // overflow a 32-bit usize.
    let n = root / 2 + root % 2;
    let mut composite = vec![false; n as usize];
    let mut primes = Vec::new();
    for i in 1..n {
        if composite[i as usize] {
            continue;
        }
        let p = 2 * i + 1;
        let mut j = p * p / 2;
        while j < n {
            composite[j as usize] = true;
            j += p;
        }
        if p > PRESIEVED[PRESIEVED.len() - 1] {
            primes.push(p);
        }
    }
    primes
}

/// The sieve of the odd numbers from 1 with the multiples of [`PRESIEVED`]
/// struck, one period long; built once per process.
fn pattern() -> &'static [u64] {
    static PATTERN: OnceLock<Vec<u64>> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut words = vec![u64::MAX; PATTERN_WORDS];
        let bits = PATTERN_WORDS * 64;
        for p in PRESIEVED {
            let p = p as usize;
            // The prime itself is struck too; `fix_first_word` restores it.
            let mut j = p / 2;
            while j < bits {
                words[j / 64] &= !(1u64 << (j % 64));
                j += p;
            }
        }
        words
    })
}

/// Fills `words` with the pattern as it continues at absolute word `first`.
fn stamp(words: &mut [u64], pattern: &[u64], first: u64) {
    let mut at = (first % PATTERN_WORDS as u64) as usize;
    let mut filled = 0;
    while filled < words.len() {
        let n = (words.len() - filled).min(PATTERN_WORDS - at);
        words[filled..filled + n].copy_from_slice(&pattern[at..at + n]);
        filled += n;
        at = 0;
    }
}

/// The pattern's first word is wrong at the very start of the numbers: 1 is
/// not prime, and the presieved primes struck themselves.
fn fix_first_word(word: &mut u64) {
    *word &= !1;
    for p in PRESIEVED {
        *word |= 1 << (p / 2);
    }
}

#[async_trait]
impl Handler for Primes {
    fn kind(&self) -> &str {
        app::builtin::PRIMES
    }

    fn class(&self) -> Class {
        Class::Cpu
    }

    fn validate(&self, input: &Value) -> Result<(), InputError> {
        PrimesInput::parse(input).map(drop)
    }

    async fn run(&self, input: Value, ctx: Ctx) -> Result<Value, HandlerError> {
        let input = PrimesInput::parse(&input)?;
        let count = count_primes(input.limit, &ctx)?;
        Ok(json!({ "count": count }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use tokio_util::sync::CancellationToken;

    use super::*;

    /// `counts[n]` = π(n), by the textbook sieve.
    fn naive_counts(max: usize) -> Vec<u64> {
        let mut prime = vec![true; max + 1];
        let mut counts = vec![0; max + 1];
        let mut count = 0;
        for n in 0..=max {
            if n >= 2 && prime[n] {
                count += 1;
                let mut m = n * n;
                while m <= max {
                    prime[m] = false;
                    m += n;
                }
            }
            counts[n] = count;
        }
        counts
    }

    fn count(limit: u64) -> u64 {
        count_primes(limit, &Ctx::detached()).unwrap()
    }

    #[test]
    fn tiny_limits() {
        let expected = [0, 0, 1, 2, 2, 3, 3, 4];
        for (limit, want) in expected.into_iter().enumerate() {
            assert_eq!(count(limit as u64), want, "π({limit})");
        }
    }

    #[test]
    fn powers_of_ten() {
        let expected = [0, 4, 25, 168, 1229, 9592, 78498, 664579, 5761455];
        for (k, want) in expected.into_iter().enumerate() {
            assert_eq!(count(10u64.pow(k as u32)), want, "π(10^{k})");
        }
    }

    #[test]
    fn a_billion() {
        assert_eq!(count(1_000_000_000), 50847534);
    }

    #[test]
    fn matches_naive_below_2000() {
        for (limit, &want) in naive_counts(1999).iter().enumerate() {
            assert_eq!(count(limit as u64), want, "π({limit})");
        }
    }

    #[test]
    fn matches_naive_at_boundaries() {
        // Segment ends (two numbers per bit) and the pattern's wrap-around,
        // where an off-by-one would gain or lose a prime.
        let segment = 2 * SEGMENT_BITS;
        let period = 2 * 64 * PATTERN_WORDS as u64;
        let centers = [segment, 2 * segment, 3 * segment, period, period + segment];
        let max = centers.iter().max().copied().unwrap_or(0) + 200;
        let counts = naive_counts(max as usize);
        for c in centers {
            for limit in c - 9..=c + 9 {
                assert_eq!(count(limit), counts[limit as usize], "π({limit})");
            }
        }
    }

    #[test]
    fn reports_progress_up_to_the_limit() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let ctx = Ctx::new(
            CancellationToken::new(),
            Arc::new(move |done, total, _| sink.lock().unwrap().push((done, total))),
        );
        let limit = 10 * 2 * SEGMENT_BITS + 12345;
        assert_eq!(count_primes(limit, &ctx).unwrap(), count(limit));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last(), Some(&(limit, limit)));
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(
            seen.iter()
                .all(|&(done, total)| total == limit && done <= limit)
        );
    }

    #[test]
    fn stops_when_cancelled_before() {
        let stop = CancellationToken::new();
        stop.cancel();
        let ctx = Ctx::new(stop, Arc::new(|_, _, _| {}));
        let started = Instant::now();
        assert_eq!(
            count_primes(1_000_000_000, &ctx),
            Err(HandlerError::Stopped)
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn stops_when_cancelled_midway() {
        // The first progress report comes after the first segment; cancelling
        // there must stop the sieve at the next segment, not at the end.
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        let last = Arc::new(Mutex::new(0));
        let seen = last.clone();
        let ctx = Ctx::new(
            stop,
            Arc::new(move |done, _, _| {
                *seen.lock().unwrap() = done;
                cancel.cancel();
            }),
        );
        assert_eq!(
            count_primes(10_000_000_000, &ctx),
            Err(HandlerError::Stopped)
        );
        assert_eq!(*last.lock().unwrap(), 2 * SEGMENT_BITS - 1);
    }

    #[tokio::test]
    async fn handler_counts_and_validates() {
        assert!(Primes.validate(&json!({"limit": 100})).is_ok());
        assert!(Primes.validate(&json!({"limit": -1})).is_err());
        assert!(Primes.validate(&json!({})).is_err());
        let out = Primes.run(json!({"limit": 100}), Ctx::detached()).await;
        assert_eq!(out, Ok(json!({"count": 25})));
    }
}
