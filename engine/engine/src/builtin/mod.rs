//! The built-in applications, chosen with `[engine] app`: `echo` (QuickFIX's
//! acceptance-test application) and `exec` (a small exchange simulator). Both use the
//! public application API only, and every structure they keep per session is bounded.

mod echo;
mod exec;

pub use echo::{EchoApp, RECENT_CL_ORD_IDS};
pub use exec::{ExecApp, MAX_RESTING_ORDERS};
