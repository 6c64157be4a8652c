//! # fix-e2e
//!
//! End-to-end test support. [`conformance`] plays the scenarios of `tests/conformance/`
//! for every FIX version against QuickFIX and fix-engine and compares the answers field
//! for field; [`scenario`] reads the scenario files of `tests/scenarios/` (fix-engine's own
//! session behaviours) and runs them against a real acceptor over TCP.
//!
//! Scenario format, one step per line (`#` starts a comment):
//! - `begin FIX.4.4` — BeginString for what follows (default FIX.4.2)
//! - `dictionary FIX42.xml` — validate with this QuickFIX dictionary (from `$FIX_DICTIONARY_DIR`)
//! - `set key = value` — a session setting (TOML syntax) for the acceptor
//! - `connect` / `disconnect` — open or close the test client's connection
//! - `> fields` — send a message; `8`, `9`, `10` are filled in; `<TIME>`, `<TIME-121>`,
//!   `<TIME+10>` give the current time shifted by seconds
//! - `>raw fields` — send exactly these bytes (`|` is SOH), for garbled input
//! - `< fields` — expect this message next; `8`, `9`, `10`, `52` and `122` are not compared,
//!   `*` matches any value
//! - `expect-disconnect` — the acceptor must close the connection
//! - `expect-silence SECONDS` — nothing may arrive for that long
//! - `sleep SECONDS`

pub mod client;
pub mod conformance;
pub mod http;
pub mod interop;
pub mod kafka;
pub mod pki;
pub mod scenario;
pub mod scenario_sim;
pub mod trading;
pub mod wait;
