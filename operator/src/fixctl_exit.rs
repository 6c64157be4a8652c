//! fixctl's exit codes, so that a script can tell a drill that lost data from a bad
//! command line from an engine it could not reach:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the operation failed (the message says why) |
//! | 2 | usage: a bad argument or option (clap's own code) |
//! | 3 | unreachable: `status` or `failover` found no engine answering |
//! | 4 | data: a drill lost, repeated or skipped messages, or broke an invariant |

use thiserror::Error;

/// Exit codes (see the module documentation).
pub(crate) const FAILED: i32 = 1;
/// Nothing answered.
pub(crate) const UNREACHABLE: i32 = 3;
/// A drill found lost, repeated or skipped messages.
pub(crate) const DATA: i32 = 4;

/// A failure with its own exit code, anywhere in an error's chain.
#[derive(Debug, Error)]
pub(crate) enum Exit {
    /// No engine answered.
    #[error("{0}")]
    Unreachable(String),
    /// A drill's report shows loss, duplicates or gaps.
    #[error("{0}")]
    DataLost(String),
}

/// The exit code for `e`: the first [`Exit`] in its chain, else [`FAILED`].
pub(crate) fn code(e: &anyhow::Error) -> i32 {
    e.chain()
        .find_map(|c| c.downcast_ref::<Exit>())
        .map_or(FAILED, |x| match x {
            Exit::Unreachable(_) => UNREACHABLE,
            Exit::DataLost(_) => DATA,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_code_is_found_through_context() {
        let lost: anyhow::Result<()> =
            Err(Exit::DataLost("lost 2".into())).context("the drill failed");
        assert_eq!(code(&lost.expect_err("err")), DATA);
        let gone = anyhow::Error::new(Exit::Unreachable("no engine answered".into()));
        assert_eq!(code(&gone), UNREACHABLE);
        assert_eq!(code(&anyhow::anyhow!("other")), FAILED);
    }
}
