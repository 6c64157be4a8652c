//! # fix-codec
//!
//! The FIX tag=value codec. No I/O: bytes in, fields out; fields in, bytes out.
//!
//! Layout:
//! - [`frame`]: finds one whole message in a byte stream (`8=`, `9=`, `10=`), verifies
//!   BodyLength and CheckSum, and bounds the message size. Cheap and allocation-free.
//! - [`message`]: splits a frame into field spans ([`message::Parser`] reuses its buffer,
//!   so parsing allocates nothing in steady state) and answers look-ups by borrowing
//!   ([`message::MessageRef`]). Length-prefixed data fields may contain SOH.
//! - [`builder`]: encodes into a reused buffer, filling in BodyLength and CheckSum.
//! - [`human`]: the `|`-separated form for logs, tests and scenario files.
//! - [`time`]: UTCTimestamp parsing and formatting.
//! - [`dictionary`]: QuickFIX-format XML data dictionaries, the built-in session-level
//!   dictionaries, and validation with the usual QuickFIX switches.
//!
//! Guarantees: no function here panics on any input bytes (the fuzz target in
//! `engine/codec/fuzz` exercises framing, parsing and validation), and nothing allocates
//! per field.

pub mod builder;
pub mod dictionary;
pub mod frame;
pub mod human;
pub mod message;
pub mod tags;
pub mod time;

pub use builder::MessageBuilder;
pub use dictionary::Dictionary;
pub use frame::{Frame, FrameError};
pub use human::{from_human, to_human, Human};
pub use message::{FieldSpan, MessageRef, OwnedMessage, Parser};
pub use time::{TimePrecision, UtcTimestamp};

/// The FIX field separator.
pub const SOH: u8 = 0x01;
