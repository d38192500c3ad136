//! Durations written the protobuf-JSON way ("30s", "1.5s") plus the `ms`, `m` and `h` units.

/// Parses a duration string into milliseconds.
///
/// Accepts a non-negative decimal number followed by `ms`, `s`, `m` or `h`. Rejects anything else,
/// including negative values, missing units, exponents and values over ten years.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    let (number, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        return Err(format!(
            "`{text}` is not a duration (use e.g. \"30s\", \"250ms\", \"5m\", \"24h\")"
        ));
    };
    let well_formed = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.chars().filter(|c| *c == '.').count() <= 1
        && !number.starts_with('.')
        && !number.ends_with('.');
    if !well_formed {
        return Err(format!(
            "`{text}` is not a duration (use e.g. \"30s\", \"250ms\", \"5m\", \"24h\")"
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    let millis = value * unit_ms;
    if !(0.0..=315_360_000_000.0).contains(&millis) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(millis.round() as u64)
}

/// A duration from the configuration, in milliseconds: written the protobuf-JSON way
/// (`"30s"`, `"1.5s"`, `"250ms"`, `"5m"`, `"24h"`) and parsed once, when the configuration loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration {
    ms: u64,
}

impl Duration {
    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration { ms }
    }

    /// `s` seconds.
    pub const fn from_secs(s: u64) -> Duration {
        Duration { ms: s * 1000 }
    }

    /// In milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.ms
    }

    /// In whole seconds, rounded up.
    pub const fn as_secs_ceil(self) -> u64 {
        self.ms.div_ceil(1000)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"30s\", \"250ms\", \"5m\" or \"24h\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_millis(v)
                    .map(Duration::from_millis)
                    .map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::parse_millis;

    #[test]
    fn parses_units() {
        assert_eq!(parse_millis("30s"), Ok(30_000));
        assert_eq!(parse_millis("1.5s"), Ok(1_500));
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("5m"), Ok(300_000));
        assert_eq!(parse_millis("24h"), Ok(86_400_000));
        assert_eq!(parse_millis("0s"), Ok(0));
    }

    #[test]
    fn deserializes_from_strings_only() {
        let d: super::Duration = serde_json::from_str("\"1.5s\"").unwrap();
        assert_eq!(d.as_millis(), 1500);
        assert_eq!(d.as_secs_ceil(), 2);
        let e = serde_json::from_str::<super::Duration>("30")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a duration such as"), "{e}");
        let e = serde_json::from_str::<super::Duration>("\"30\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a duration"), "{e}");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "s",
            "30",
            "-1s",
            "1e3s",
            ".5s",
            "5.s",
            "1.2.3s",
            "30 s",
            "30S",
            "1d",
            "99999999h",
        ] {
            assert!(parse_millis(bad).is_err(), "{bad} should be rejected");
        }
    }
}
