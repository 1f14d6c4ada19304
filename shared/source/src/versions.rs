//! Semver ranges as Flux users write them: Cargo's comma-separated comparators, or the
//! space-separated form (`>=1.0.0 <2.0.0`, `>= 1.0.0 < 2.0.0`). Git tags and OCI tags share it.

/// Parses `range` into a requirement, or says why it is not one.
pub fn parse_range(range: &str) -> Result<semver::VersionReq, String> {
    let normalized = if range.contains(',') || range.contains("||") {
        range.to_owned()
    } else {
        let mut parts: Vec<String> = Vec::new();
        for token in range.split_whitespace() {
            match parts.last_mut() {
                // An operator written apart from its version joins it.
                Some(last) if last.chars().all(|c| "<>=~^".contains(c)) => last.push_str(token),
                _ => parts.push(token.to_owned()),
            }
        }
        parts.join(", ")
    };
    semver::VersionReq::parse(&normalized).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_and_comma_separated_ranges_mean_the_same() {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        for range in [">=1.0.0 <2.0.0", ">= 1.0.0 < 2.0.0", ">=1.0.0, <2.0.0"] {
            let req = parse_range(range).unwrap();
            assert!(req.matches(&v("1.5.0")), "{range}");
            assert!(!req.matches(&v("2.0.0")), "{range}");
        }
        assert!(parse_range("one point oh").is_err());
    }
}
