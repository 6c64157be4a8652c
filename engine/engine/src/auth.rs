//! Logon credential checks configured per session (`expect_username`/`expect_password`).

use fix_codec::{tags, MessageRef};
use fix_session::{Authenticator, SessionId};

/// Requires Username (553) and Password (554) on the counterparty's Logon to match.
#[derive(Debug, Clone)]
pub struct CredentialCheck {
    /// Expected Username, if checked.
    pub username: Option<String>,
    /// Expected Password, if checked.
    pub password: Option<String>,
}

/// Compares without an early exit on the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator for CredentialCheck {
    fn authenticate(&self, _id: &SessionId, logon: MessageRef<'_>) -> Result<(), String> {
        let ok = |expected: &Option<String>, tag| match expected {
            None => true,
            Some(e) => logon.get(tag).is_some_and(|v| same(v, e.as_bytes())),
        };
        if ok(&self.username, tags::USERNAME) && ok(&self.password, tags::PASSWORD) {
            Ok(())
        } else {
            // One message for both cases: do not tell which one was wrong.
            Err("Invalid Username or Password".to_string())
        }
    }
}
