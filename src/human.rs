//! Figures written for people, shared by the `/` page and `lagwatch lag`.

use std::time::Duration;

/// A whole-second duration for people, e.g. `1h 2m 3s`.
pub fn seconds(s: f64) -> String {
    let whole = if s.is_finite() && s > 0.0 {
        s.round() as u64
    } else {
        0
    };
    humantime::format_duration(Duration::from_secs(whole)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_to_whole_seconds() {
        // (seconds, shown)
        let cases = [
            (0.0, "0s"),
            (59.6, "1m"),
            (3661.0, "1h 1m 1s"),
            (-5.0, "0s"),
            (f64::NAN, "0s"),
        ];
        for (s, want) in cases {
            assert_eq!(seconds(s), want, "{s}");
        }
    }
}
