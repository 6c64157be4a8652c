//! Validation of a parsed message against dictionaries, with the switches QuickFIX users
//! know. A failed check yields a [`Reject`] carrying the SessionRejectReason and RefTagID
//! the session layer puts into its Reject (35=3).

use super::{Dictionary, FieldDef, FieldSet, FieldType, GroupDef, Member};
use crate::message::{parse_u64, FieldSpan, MessageRef};
use crate::time::{parse_date, parse_time_of_day, UtcTimestamp};

/// Which checks to make. Defaults match QuickFIX's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationOptions {
    /// `ValidateFieldsOutOfOrder`: header fields first, trailer last.
    pub fields_out_of_order: bool,
    /// `ValidateFieldsHaveValues`: no empty values.
    pub fields_have_values: bool,
    /// `ValidateUserDefinedFields`: tags 5000 and up must be defined for the message.
    pub user_defined_fields: bool,
    /// `AllowUnknownMsgFields`: a defined tag not listed for this message is accepted.
    pub allow_unknown_msg_fields: bool,
    /// `ValidateUnorderedGroupFields`: group entry fields in dictionary order.
    pub unordered_group_fields: bool,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        Self {
            fields_out_of_order: true,
            fields_have_values: true,
            user_defined_fields: true,
            allow_unknown_msg_fields: false,
            unordered_group_fields: true,
        }
    }
}

/// SessionRejectReason (373) values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum SessionRejectReason {
    InvalidTagNumber = 0,
    RequiredTagMissing = 1,
    TagNotDefinedForMessageType = 2,
    UndefinedTag = 3,
    TagSpecifiedWithoutValue = 4,
    ValueIncorrect = 5,
    IncorrectDataFormat = 6,
    DecryptionProblem = 7,
    SignatureProblem = 8,
    CompIdProblem = 9,
    SendingTimeAccuracyProblem = 10,
    InvalidMsgType = 11,
    XmlValidationError = 12,
    TagAppearsMoreThanOnce = 13,
    TagSpecifiedOutOfRequiredOrder = 14,
    RepeatingGroupFieldsOutOfOrder = 15,
    IncorrectNumInGroupCount = 16,
    NonDataValueIncludesFieldDelimiter = 17,
    Other = 99,
}

impl SessionRejectReason {
    /// The numeric code for tag 373.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The customary Text (58) for this reason.
    pub fn text(self) -> &'static str {
        use SessionRejectReason::*;
        match self {
            InvalidTagNumber => "Invalid tag number",
            RequiredTagMissing => "Required tag missing",
            TagNotDefinedForMessageType => "Tag not defined for this message type",
            UndefinedTag => "Undefined Tag",
            TagSpecifiedWithoutValue => "Tag specified without a value",
            ValueIncorrect => "Value is incorrect (out of range) for this tag",
            IncorrectDataFormat => "Incorrect data format for value",
            DecryptionProblem => "Decryption problem",
            SignatureProblem => "Signature problem",
            CompIdProblem => "CompID problem",
            SendingTimeAccuracyProblem => "SendingTime accuracy problem",
            InvalidMsgType => "Invalid MsgType",
            XmlValidationError => "XML Validation error",
            TagAppearsMoreThanOnce => "Tag appears more than once",
            TagSpecifiedOutOfRequiredOrder => "Tag specified out of required order",
            RepeatingGroupFieldsOutOfOrder => "Repeating group fields out of order",
            IncorrectNumInGroupCount => "Incorrect NumInGroup count for repeating group",
            NonDataValueIncludesFieldDelimiter => "Non Data value includes field delimiter",
            Other => "Other",
        }
    }
}

/// A validation failure: what to put in the session-level Reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// SessionRejectReason (373).
    pub reason: SessionRejectReason,
    /// RefTagID (371), when a single tag is at fault.
    pub ref_tag: Option<u32>,
}

impl Reject {
    fn new(reason: SessionRejectReason, tag: u32) -> Self {
        Self {
            reason,
            ref_tag: Some(tag),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ref_tag {
            Some(t) => write!(f, "{} (tag {t})", self.reason.text()),
            None => f.write_str(self.reason.text()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Header,
    Body,
    Trailer,
}

/// Where a fault stands in QuickFIX's order of checks, which reports only the first it
/// meets: the required fields of repeating-group entries (checked with the message's
/// required fields, before any field), then the header's fields (8, 9, 35, then by tag),
/// the trailer's (by tag, CheckSum last), the body's by tag, and last what lies inside
/// repeating groups (by count tag). Ties go to wire order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FaultOrder(u8, u32, usize);

impl FaultOrder {
    /// A fault of field `tag` of `section`, the `index`th on the wire.
    fn of(section: Section, tag: u32, index: usize) -> Self {
        match section {
            Section::Header => Self(1, header_rank(tag), index),
            Section::Trailer => Self(2, if tag == 10 { u32::MAX } else { tag }, index),
            Section::Body => Self(3, tag, index),
        }
    }

    /// A fault `r` found walking `group`, whose count field stands at `count`: a wrong
    /// count is the count field's own fault; a required field missing from an entry comes
    /// first of all; anything else inside an entry comes after every other field.
    fn in_group(group: &GroupDef, r: &Reject, count: Self, index: usize) -> Self {
        let count_fault = r.ref_tag == Some(group.count_tag)
            && matches!(
                r.reason,
                SessionRejectReason::IncorrectNumInGroupCount
                    | SessionRejectReason::IncorrectDataFormat
                    | SessionRejectReason::TagSpecifiedWithoutValue
            );
        if count_fault {
            count
        } else if r.reason == SessionRejectReason::RequiredTagMissing {
            Self(0, r.ref_tag.unwrap_or(0), index)
        } else {
            Self(4, group.count_tag, index)
        }
    }
}

/// QuickFIX's header order: BeginString, BodyLength, MsgType, then by tag.
fn header_rank(tag: u32) -> u32 {
    match tag {
        8 => 0,
        9 => 1,
        35 => 2,
        t => t.saturating_add(3),
    }
}

/// Validates messages; keeps scratch space between calls so validation does not allocate
/// in steady state.
#[derive(Debug, Default)]
pub struct Validator {
    options: ValidationOptions,
    seen: Vec<u32>,
}

fn is_number(v: &[u8], allow_point: bool) -> bool {
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    let mut points = 0;
    let mut count = 0;
    for b in digits {
        match b {
            b'0'..=b'9' => count += 1,
            b'.' if allow_point => points += 1,
            _ => return false,
        }
    }
    count > 0 && points <= 1
}

fn check_format(def: &FieldDef, v: &[u8]) -> bool {
    match def.field_type {
        FieldType::Int => is_number(v, false),
        FieldType::Float => is_number(v, true),
        FieldType::Char => v.len() == 1,
        FieldType::Boolean => v == b"Y" || v == b"N",
        FieldType::UtcTimestamp => UtcTimestamp::parse(v).is_some(),
        FieldType::UtcTimeOnly => parse_time_of_day(v).is_some(),
        FieldType::Date => parse_date(v).is_some(),
        FieldType::MonthYear => v.len() >= 6 && v[..6].iter().all(u8::is_ascii_digit),
        FieldType::MultipleValue | FieldType::Data | FieldType::String => true,
    }
}

fn check_enum(def: &FieldDef, v: &[u8]) -> bool {
    if def.values.is_empty() {
        return true;
    }
    let known = |x: &[u8]| def.values.binary_search_by(|e| e.as_slice().cmp(x)).is_ok();
    if def.field_type == FieldType::MultipleValue {
        v.split(|b| *b == b' ').filter(|x| !x.is_empty()).all(known)
    } else {
        known(v)
    }
}

struct Ctx<'d, 'm> {
    transport: &'d Dictionary,
    app: &'d Dictionary,
    msg: MessageRef<'m>,
    options: ValidationOptions,
}

impl Ctx<'_, '_> {
    fn field_def(&self, tag: u32) -> Option<&FieldDef> {
        self.app.field(tag).or_else(|| self.transport.field(tag))
    }

    fn check_value(&self, span: &FieldSpan) -> Result<(), Reject> {
        // BeginString, BodyLength and CheckSum were checked by framing, MsgType against the
        // message definitions; old dictionaries type them inconsistently.
        if matches!(span.tag, 8 | 9 | 10 | 35) {
            return Ok(());
        }
        let v = self.msg.value(span);
        if v.is_empty() {
            return if self.options.fields_have_values {
                Err(Reject::new(
                    SessionRejectReason::TagSpecifiedWithoutValue,
                    span.tag,
                ))
            } else {
                Ok(())
            };
        }
        if let Some(def) = self.field_def(span.tag) {
            if !check_format(def, v) {
                return Err(Reject::new(
                    SessionRejectReason::IncorrectDataFormat,
                    span.tag,
                ));
            }
            if !check_enum(def, v) {
                return Err(Reject::new(SessionRejectReason::ValueIncorrect, span.tag));
            }
        }
        Ok(())
    }

    /// Walks one repeating group starting at its count field `fields[*i]`.
    fn walk_group(
        &self,
        fields: &[FieldSpan],
        i: &mut usize,
        group: &GroupDef,
        seen: &mut Vec<u32>,
    ) -> Result<(), Reject> {
        let count_span = fields[*i];
        self.check_value(&count_span)?;
        let announced = parse_u64(self.msg.value(&count_span)).ok_or(Reject::new(
            SessionRejectReason::IncorrectDataFormat,
            group.count_tag,
        ))?;
        // As QuickFIX: the count is checked before the entries' values.
        if group_extent(fields, *i + 1, group).0 != announced {
            return Err(Reject::new(
                SessionRejectReason::IncorrectNumInGroupCount,
                group.count_tag,
            ));
        }
        *i += 1;
        let mut entries = 0u64;
        let scope = seen.len();
        let mut last_pos = 0usize;
        while *i < fields.len() {
            let span = fields[*i];
            let Some(pos) = group.entry.position(span.tag) else {
                break;
            };
            if span.tag == group.delimiter {
                if entries > 0 {
                    check_required(&group.entry, &seen[scope..])?;
                }
                entries += 1;
                seen.truncate(scope);
            } else if entries == 0 {
                return Err(Reject::new(
                    SessionRejectReason::RepeatingGroupFieldsOutOfOrder,
                    span.tag,
                ));
            } else if seen[scope..].contains(&span.tag) {
                return Err(Reject::new(
                    SessionRejectReason::TagAppearsMoreThanOnce,
                    span.tag,
                ));
            } else if self.options.unordered_group_fields && pos < last_pos {
                return Err(Reject::new(
                    SessionRejectReason::RepeatingGroupFieldsOutOfOrder,
                    span.tag,
                ));
            }
            last_pos = pos;
            seen.push(span.tag);
            if let Some(nested) = group.entry.group(span.tag) {
                // The nested walk uses the tail of `seen` as its own scope and restores it.
                self.walk_group(fields, i, nested, seen)?;
            } else {
                self.check_value(&span)?;
                *i += 1;
            }
        }
        if entries > 0 {
            check_required(&group.entry, &seen[scope..])?;
        }
        seen.truncate(scope);
        if entries != announced {
            return Err(Reject::new(
                SessionRejectReason::IncorrectNumInGroupCount,
                group.count_tag,
            ));
        }
        Ok(())
    }
}

/// The number of entries of `group` whose fields start at `fields[start]`, and the index
/// after its last field (nested groups included).
fn group_extent(fields: &[FieldSpan], start: usize, group: &GroupDef) -> (u64, usize) {
    let (mut entries, mut i) = (0u64, start);
    while i < fields.len() && group.entry.position(fields[i].tag).is_some() {
        if fields[i].tag == group.delimiter {
            entries += 1;
        }
        i = match group.entry.group(fields[i].tag) {
            Some(nested) => group_extent(fields, i + 1, nested).1,
            None => i + 1,
        };
    }
    (entries, i)
}

/// The required member of `set` with the lowest tag that is not in `seen` (QuickFIX names
/// the lowest missing tag).
fn check_required(set: &FieldSet, seen: &[u32]) -> Result<(), Reject> {
    let missing = set
        .members
        .iter()
        .filter(|m| m.required() && !seen.contains(&m.tag()))
        .map(Member::tag)
        .min();
    match missing {
        Some(tag) => Err(Reject::new(SessionRejectReason::RequiredTagMissing, tag)),
        None => Ok(()),
    }
}

/// The first header or body field after the trailer began, or header field after the
/// body began (`ValidateFieldsOutOfOrder`).
fn out_of_order(transport: &Dictionary, fields: &[FieldSpan]) -> Option<u32> {
    let mut section = Section::Header;
    for span in fields {
        let this = if transport.header.position(span.tag).is_some() {
            Section::Header
        } else if transport.trailer.position(span.tag).is_some() {
            Section::Trailer
        } else {
            Section::Body
        };
        if this < section {
            return Some(span.tag);
        }
        section = section.max(this);
    }
    None
}

impl Validator {
    /// A validator with the given switches.
    pub fn new(options: ValidationOptions) -> Self {
        Self {
            options,
            seen: Vec::with_capacity(64),
        }
    }

    /// The switches in force.
    pub fn options(&self) -> ValidationOptions {
        self.options
    }

    /// Validates `msg`. `transport` defines header, trailer and admin messages; `app`
    /// (the same dictionary for FIX 4.x) defines application messages. With `app` = `None`
    /// application message bodies are not checked.
    pub fn validate(
        &mut self,
        transport: &Dictionary,
        app: Option<&Dictionary>,
        msg: MessageRef<'_>,
    ) -> Result<(), Reject> {
        // QuickFIX's order: structure, MsgType, required fields, then field by field.
        let fields = msg.fields();
        if self.options.fields_out_of_order {
            if let Some(tag) = out_of_order(transport, fields) {
                return Err(Reject::new(
                    SessionRejectReason::TagSpecifiedOutOfRequiredOrder,
                    tag,
                ));
            }
        }
        let msg_type = msg.msg_type();
        let (body_dict, def) = match transport.message(msg_type) {
            Some(def) => (transport, Some(def)),
            None => match app {
                Some(app) => match app.message(msg_type) {
                    Some(def) => (app, Some(def)),
                    None => {
                        return Err(Reject {
                            reason: SessionRejectReason::InvalidMsgType,
                            ref_tag: None,
                        })
                    }
                },
                None => (transport, None),
            },
        };
        let mut seen = std::mem::take(&mut self.seen);
        seen.clear();
        seen.extend(fields.iter().map(|f| f.tag));
        let required = check_required(&transport.header, &seen)
            .and_then(|()| check_required(&transport.trailer, &seen))
            .and_then(|()| def.map_or(Ok(()), |d| check_required(&d.body, &seen)));
        if let Err(e) = required {
            self.seen = seen;
            return Err(e);
        }
        let ctx = Ctx {
            transport,
            app: body_dict,
            msg,
            options: self.options,
        };
        seen.clear();
        let result = self.walk(&ctx, fields, def.map(|d| &d.body), &mut seen);
        self.seen = seen;
        result
    }

    /// Checks every field, noting each fault, and reports the one QuickFIX meets first
    /// ([`FaultOrder`]): it checks the fields sorted, not in wire order.
    fn walk(
        &self,
        ctx: &Ctx<'_, '_>,
        fields: &[FieldSpan],
        body: Option<&FieldSet>,
        seen: &mut Vec<u32>,
    ) -> Result<(), Reject> {
        let header = &ctx.transport.header;
        let trailer = &ctx.transport.trailer;
        let mut section = Section::Header;
        let mut first: Option<(FaultOrder, Reject)> = None;
        let mut note = |order: FaultOrder, r: Reject| {
            if first.as_ref().is_none_or(|(o, _)| order < *o) {
                first = Some((order, r));
            }
        };
        let mut i = 0;
        while i < fields.len() {
            let span = fields[i];
            let tag = span.tag;
            let (this_section, set) = if header.position(tag).is_some() {
                (Section::Header, Some(header))
            } else if trailer.position(tag).is_some() {
                (Section::Trailer, Some(trailer))
            } else {
                (Section::Body, body)
            };
            let order = FaultOrder::of(this_section, tag, i);
            if this_section < section && self.options.fields_out_of_order {
                note(
                    order,
                    Reject::new(SessionRejectReason::TagSpecifiedOutOfRequiredOrder, tag),
                );
            }
            section = section.max(this_section);
            if seen.contains(&tag) {
                note(
                    order,
                    Reject::new(SessionRejectReason::TagAppearsMoreThanOnce, tag),
                );
                i += 1;
                continue;
            }
            seen.push(tag);
            let position = set.map(|s| (s.position(tag), s));
            if let Some((Some(_), s)) = position {
                if let Some(group) = s.group(tag) {
                    let (start, scope) = (i, seen.len());
                    if let Err(r) = ctx.walk_group(fields, &mut i, group, seen) {
                        note(FaultOrder::in_group(group, &r, order, i), r);
                        // Past the whole group, with its fields out of `seen` again.
                        i = group_extent(fields, start + 1, group).1.max(start + 1);
                        seen.truncate(scope);
                    }
                    continue;
                }
            }
            // QuickFIX's order for one field: its value (empty, format, enumeration),
            // then whether the tag is defined, and defined for this message.
            if let Err(r) = ctx.check_value(&span) {
                note(order, r);
            } else if let Some((None, _)) = position {
                if let Err(r) = self.check_undeclared(ctx, tag) {
                    note(order, r);
                }
            }
            i += 1;
        }
        if let Some((_, r)) = first {
            return Err(r);
        }
        check_required(header, seen)?;
        check_required(trailer, seen)?;
        if let Some(body) = body {
            check_required(body, seen)?;
        }
        Ok(())
    }

    fn check_undeclared(&self, ctx: &Ctx<'_, '_>, tag: u32) -> Result<(), Reject> {
        let user_defined = tag >= 5000;
        if user_defined && !self.options.user_defined_fields {
            return Ok(());
        }
        match ctx.field_def(tag) {
            None => Err(Reject::new(SessionRejectReason::InvalidTagNumber, tag)),
            Some(_) if self.options.allow_unknown_msg_fields => Ok(()),
            Some(_) => Err(Reject::new(
                SessionRejectReason::TagNotDefinedForMessageType,
                tag,
            )),
        }
    }
}

impl Member {
    /// Whether this member is a group.
    pub fn is_group(&self) -> bool {
        matches!(self, Member::Group(_))
    }
}
