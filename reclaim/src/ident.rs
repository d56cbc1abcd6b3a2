//! Identifiers that come from logs are untrusted.
//!
//! A service, host or container name reaches the planner from a log line
//! someone else wrote. Before it can name the target of an action it must be
//! a plain identifier: letters, digits and `_ . -`, starting with a letter or
//! digit, at most 128 bytes (Docker's own rule for container names). No
//! spaces, quotes, slashes, globs or shell metacharacters, so it cannot
//! address more than one object or smuggle a command even if some executor
//! later hands it to a tool that interprets it.

/// Longest identifier accepted.
pub const MAX_IDENT_LEN: usize = 128;

/// Whether `s` is a safe identifier.
pub fn is_valid_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_IDENT_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names() {
        for s in ["checkout-1", "node-2", "payments_db", "k8s.pod.7", "a"] {
            assert!(is_valid_identifier(s), "{s}");
        }
    }

    #[test]
    fn rejects_anything_that_could_widen_a_target() {
        for s in [
            "",
            "checkout-1; docker rm -f $(docker ps -aq)",
            "checkout-1 other",
            "*",
            "../etc",
            "-rf",
            "a/b",
            "name`id`",
            "x$(y)",
            "ä",
            &"a".repeat(129),
        ] {
            assert!(!is_valid_identifier(s), "{s:?}");
        }
    }
}
