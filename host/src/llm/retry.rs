//! Retries with exponential backoff and full jitter, honouring `retry-after`.

use std::time::Duration;

use super::LlmError;

/// How a failed model call is retried.
///
/// Attempt `n` (counting from 0) waits a random time in `[0, min(max_delay, base_delay * 2^n)]`,
/// or exactly what the server's `retry-after` asked for (capped at `max_delay`), whichever the
/// server gave. Only [`LlmError::is_retryable`] errors are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries, 500 ms base, 30 s cap.
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 = the first retry) after `error`.
    pub fn delay(&self, attempt: u32, error: &LlmError) -> Duration {
        if let Some(after) = error.retry_after() {
            return after.min(self.max_delay);
        }
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max_delay);
        let millis = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }
}

/// Parses an HTTP `retry-after` header given in seconds (the form the Anthropic and OpenAI APIs
/// send). HTTP dates are ignored: the exponential backoff applies instead.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overloaded(retry_after: Option<Duration>) -> LlmError {
        LlmError::Api {
            provider: "anthropic",
            status: 529,
            kind: "overloaded_error".into(),
            message: "Overloaded".into(),
            retry_after,
        }
    }

    /// The backoff grows but never passes the cap, and retry-after wins when given.
    #[test]
    fn delays_are_bounded_and_honour_retry_after() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        for attempt in 0..10 {
            let d = policy.delay(attempt, &overloaded(None));
            let bound = Duration::from_millis(100 * (1 << attempt)).min(Duration::from_secs(2));
            assert!(d <= bound, "attempt {attempt}: {d:?} > {bound:?}");
        }
        let asked = policy.delay(0, &overloaded(Some(Duration::from_millis(1500))));
        assert_eq!(asked, Duration::from_millis(1500));
        let capped = policy.delay(0, &overloaded(Some(Duration::from_secs(60))));
        assert_eq!(capped, Duration::from_secs(2));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
