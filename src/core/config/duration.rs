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

#[cfg(test)]
mod tests {
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
