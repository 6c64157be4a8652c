//! Zero-copy access to the fields of one framed message.
//!
//! [`Parser`] splits a frame into [`FieldSpan`]s (tag plus value byte range) kept in a
//! vector it reuses, so steady-state parsing allocates nothing. [`MessageRef`] borrows the
//! frame bytes and the spans and answers field look-ups without copying. Length-prefixed
//! data fields (RawData, Signature, XmlData, …) are read by their announced length, so they
//! may contain SOH.

use crate::{tags, SOH};
use thiserror::Error;

/// One field of a message: its tag and where its value lies in the message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    /// The field's tag number.
    pub tag: u32,
    /// Offset of the first value byte.
    pub start: u32,
    /// Offset one past the last value byte.
    pub end: u32,
}

/// Why a frame could not be split into fields.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// A field has no `=`, or its tag is not a positive decimal number.
    #[error("malformed field at byte {offset}: tag must be a positive number followed by '='")]
    MalformedField {
        /// Offset of the field in the message.
        offset: usize,
    },
    /// A field is not terminated by SOH.
    #[error("field at byte {offset} is not terminated by SOH")]
    Unterminated {
        /// Offset of the field in the message.
        offset: usize,
    },
    /// A data field's length field does not hold a usable length.
    #[error("data field {tag} at byte {offset}: its length field does not match its content")]
    BadDataLength {
        /// The data field's tag.
        tag: u32,
        /// Offset of the field in the message.
        offset: usize,
    },
}

/// Which length fields announce the byte length of which data fields.
#[derive(Debug, Clone)]
pub struct DataFieldTable {
    pairs: Vec<(u32, u32)>,
}

impl Default for DataFieldTable {
    /// The length/data pairs of FIX 4.0 to 5.0 SP2.
    fn default() -> Self {
        Self::new(&[
            (90, 91),
            (93, 89),
            (95, 96),
            (212, 213),
            (348, 349),
            (350, 351),
            (352, 353),
            (354, 355),
            (356, 357),
            (358, 359),
            (360, 361),
            (362, 363),
            (364, 365),
            (445, 446),
            (618, 619),
            (621, 622),
            (1184, 1185),
            (1277, 1278),
            (1397, 1398),
            (1401, 1402),
            (1468, 1469),
        ])
    }
}

impl DataFieldTable {
    /// A table of `(length_tag, data_tag)` pairs.
    pub fn new(pairs: &[(u32, u32)]) -> Self {
        let mut pairs = pairs.to_vec();
        pairs.sort_unstable();
        pairs.dedup();
        Self { pairs }
    }

    /// Adds a pair (used when a dictionary declares more).
    pub fn insert(&mut self, length_tag: u32, data_tag: u32) {
        if let Err(at) = self.pairs.binary_search(&(length_tag, data_tag)) {
            self.pairs.insert(at, (length_tag, data_tag));
        }
    }

    /// The data tag announced by `length_tag`, if it is a length field.
    pub fn data_tag_for(&self, length_tag: u32) -> Option<u32> {
        let at = self.pairs.partition_point(|(l, _)| *l < length_tag);
        self.pairs
            .get(at)
            .filter(|(l, _)| *l == length_tag)
            .map(|(_, d)| *d)
    }
}

/// Splits frames into fields, reusing its span buffer between messages.
#[derive(Debug, Default)]
pub struct Parser {
    spans: Vec<FieldSpan>,
    data_fields: DataFieldTable,
}

fn parse_tag(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 || bytes[0] == b'0' {
        return None;
    }
    let mut v: u32 = 0;
    for b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

/// Parses an unsigned decimal value (no sign, no spaces).
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

impl Parser {
    /// A parser that knows the given data-field pairs.
    pub fn with_data_fields(data_fields: DataFieldTable) -> Self {
        Self {
            spans: Vec::with_capacity(64),
            data_fields,
        }
    }

    /// Splits `bytes` (one whole frame) into fields.
    pub fn parse<'a>(&'a mut self, bytes: &'a [u8]) -> Result<MessageRef<'a>, ParseError> {
        split_fields(bytes, &self.data_fields, &mut self.spans)?;
        Ok(MessageRef {
            bytes,
            fields: &self.spans,
        })
    }
}

/// Splits `bytes` into `spans` (cleared first).
pub fn split_fields(
    bytes: &[u8],
    data_fields: &DataFieldTable,
    spans: &mut Vec<FieldSpan>,
) -> Result<(), ParseError> {
    spans.clear();
    let mut pos = 0usize;
    let mut pending_data: Option<(u32, usize)> = None;
    while pos < bytes.len() {
        let Some(eq) = memchr::memchr(b'=', &bytes[pos..]).map(|p| pos + p) else {
            return Err(ParseError::MalformedField { offset: pos });
        };
        let tag = parse_tag(&bytes[pos..eq]).ok_or(ParseError::MalformedField { offset: pos })?;
        let start = eq + 1;
        let end = match pending_data.take() {
            Some((data_tag, len)) if data_tag == tag => {
                let end = start + len;
                if end >= bytes.len() || bytes[end] != SOH {
                    return Err(ParseError::BadDataLength { tag, offset: pos });
                }
                end
            }
            _ => memchr::memchr(SOH, &bytes[start..])
                .map(|p| start + p)
                .ok_or(ParseError::Unterminated { offset: pos })?,
        };
        if let Some(data_tag) = data_fields.data_tag_for(tag) {
            let len = parse_u64(&bytes[start..end])
                .and_then(|l| usize::try_from(l).ok())
                .ok_or(ParseError::BadDataLength { tag, offset: pos })?;
            pending_data = Some((data_tag, len));
        }
        spans.push(FieldSpan {
            tag,
            start: start as u32,
            end: end as u32,
        });
        pos = end + 1;
    }
    Ok(())
}

/// A borrowed, parsed message: the frame bytes and its field spans.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    bytes: &'a [u8],
    fields: &'a [FieldSpan],
}

impl<'a> MessageRef<'a> {
    /// Builds a view from bytes and spans produced by [`split_fields`] over the same bytes.
    pub fn new(bytes: &'a [u8], fields: &'a [FieldSpan]) -> Self {
        Self { bytes, fields }
    }

    /// The whole message as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// All fields in wire order.
    pub fn fields(&self) -> &'a [FieldSpan] {
        self.fields
    }

    /// The value bytes of one span.
    pub fn value(&self, span: &FieldSpan) -> &'a [u8] {
        &self.bytes[span.start as usize..span.end as usize]
    }

    /// The first value of `tag`, if present.
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| self.value(f))
    }

    /// The first value of `tag` as text, if present and valid UTF-8.
    pub fn get_str(&self, tag: u32) -> Option<&'a str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `tag` as an unsigned integer; `Err` when present but not a number.
    pub fn get_u64(&self, tag: u32) -> Result<Option<u64>, FieldValueError> {
        match self.get(tag) {
            None => Ok(None),
            Some(v) => parse_u64(v).map(Some).ok_or(FieldValueError { tag }),
        }
    }

    /// True when the field is present with value `Y`.
    pub fn get_flag(&self, tag: u32) -> bool {
        self.get(tag) == Some(b"Y")
    }

    /// Whether `tag` is present.
    pub fn has(&self, tag: u32) -> bool {
        self.fields.iter().any(|f| f.tag == tag)
    }

    /// The MsgType (35) value; empty when absent.
    pub fn msg_type(&self) -> &'a [u8] {
        self.get(tags::MSG_TYPE).unwrap_or_default()
    }

    /// The BeginString (8) value; empty when absent.
    pub fn begin_string(&self) -> &'a [u8] {
        self.get(tags::BEGIN_STRING).unwrap_or_default()
    }

    /// Iterates `(tag, value)` in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        let bytes = self.bytes;
        self.fields
            .iter()
            .map(move |f| (f.tag, &bytes[f.start as usize..f.end as usize]))
    }

    /// Copies the message into an owned form that can cross tasks.
    pub fn to_owned(&self) -> OwnedMessage {
        OwnedMessage {
            bytes: self.bytes.to_vec(),
            fields: self.fields.to_vec(),
        }
    }
}

/// A field was present but its value is not of the expected type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("field {tag} has a value of the wrong format")]
pub struct FieldValueError {
    /// The offending tag.
    pub tag: u32,
}

/// An owned parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    bytes: Vec<u8>,
    fields: Vec<FieldSpan>,
}

impl OwnedMessage {
    /// Parses an owned frame with the default data-field table.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, ParseError> {
        let mut fields = Vec::new();
        split_fields(&bytes, &DataFieldTable::default(), &mut fields)?;
        Ok(Self { bytes, fields })
    }

    /// Joins bytes and the spans [`split_fields`] produced for them.
    pub fn from_parts(bytes: Vec<u8>, fields: Vec<FieldSpan>) -> Self {
        Self { bytes, fields }
    }

    /// Borrowed view.
    pub fn as_ref(&self) -> MessageRef<'_> {
        MessageRef {
            bytes: &self.bytes,
            fields: &self.fields,
        }
    }

    /// The raw bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::human::from_human;

    #[test]
    fn fields_are_found_without_copying() {
        let msg = from_human("8=FIX.4.2|9=12|35=D|11=ABC|10=000|");
        let mut p = Parser::default();
        let m = p.parse(&msg).expect("parse");
        assert_eq!(m.msg_type(), b"D");
        assert_eq!(m.get(11), Some(&b"ABC"[..]));
        assert_eq!(m.fields().len(), 5);
        let value = m.get(11).expect("11 present");
        let range = msg.as_ptr_range();
        assert!(
            range.contains(&value.as_ptr()),
            "value must borrow the frame"
        );
    }

    #[test]
    fn data_fields_may_contain_soh() {
        let msg = from_human("8=FIX.4.2|9=20|35=B|95=5|96=a|b|c|58=x|10=000|");
        let mut p = Parser::default();
        let m = p.parse(&msg).expect("parse");
        assert_eq!(m.get(96), Some(&b"a\x01b\x01c"[..]));
        assert_eq!(m.get(58), Some(&b"x"[..]));
    }

    #[test]
    fn a_data_length_that_overruns_is_an_error() {
        let msg = from_human("8=FIX.4.2|95=50|96=abc|10=000|");
        let mut p = Parser::default();
        assert!(matches!(
            p.parse(&msg),
            Err(ParseError::BadDataLength { tag: 96, .. })
        ));
    }

    #[test]
    fn non_numeric_tags_are_malformed() {
        let msg = from_human("8=FIX.4.2|x=1|10=000|");
        let mut p = Parser::default();
        assert!(matches!(
            p.parse(&msg),
            Err(ParseError::MalformedField { .. })
        ));
    }

    #[test]
    fn empty_values_are_kept_for_validation_to_judge() {
        let msg = from_human("8=FIX.4.2|58=|10=000|");
        let mut p = Parser::default();
        let m = p.parse(&msg).expect("parse");
        assert_eq!(m.get(58), Some(&b""[..]));
    }

    #[test]
    fn integer_values_are_parsed_or_reported() {
        let msg = from_human("8=FIX.4.2|34=17|36=x|10=000|");
        let mut p = Parser::default();
        let m = p.parse(&msg).expect("parse");
        assert_eq!(m.get_u64(34), Ok(Some(17)));
        assert_eq!(m.get_u64(36), Err(FieldValueError { tag: 36 }));
        assert_eq!(m.get_u64(7), Ok(None));
    }
}
