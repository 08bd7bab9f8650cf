//! `--policy`: what a stage does when it falls behind: block, keep only the latest frame, or
//! queue a bounded number and drop the oldest. The channel that follows it is the stage
//! runtime's (`sl_stage::policy`).

use std::fmt;
use std::str::FromStr;

/// A delivery policy, as given by `--policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Lossless: the producer waits for the consumer (`block`).
    #[default]
    Block,
    /// Live: keep only the newest frame, dropping any the consumer has not taken (`latest`).
    Latest,
    /// Queue up to N frames, then drop the oldest (`queue:N`).
    Queue(usize),
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "block" => Ok(Policy::Block),
            "latest" | "drop" => Ok(Policy::Latest),
            _ => s
                .strip_prefix("queue:")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .map(Policy::Queue)
                .ok_or_else(|| {
                    format!("`{s}` is not a policy: use block, latest or queue:N (N > 0)")
                }),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Block => f.write_str("block"),
            Policy::Latest => f.write_str("latest"),
            Policy::Queue(n) => write!(f, "queue:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("block".parse::<Policy>().unwrap(), Policy::Block);
        assert_eq!("latest".parse::<Policy>().unwrap(), Policy::Latest);
        assert_eq!("queue:4".parse::<Policy>().unwrap(), Policy::Queue(4));
        assert!("queue:0".parse::<Policy>().is_err());
        assert!("fast".parse::<Policy>().is_err());
    }
}
