//! QuickFIX-format data dictionaries: the model, the XML loader, the built-in session-level
//! dictionaries and message validation.

mod builtin;
mod groups;
mod load;
mod validate;

pub use builtin::session_dictionary;
pub use groups::group_entries;
pub use load::LoadError;
pub use validate::{Reject, SessionRejectReason, ValidationOptions, Validator};

use crate::message::DataFieldTable;
use std::collections::HashMap;

/// The value type of a field, as named in the dictionary's `type` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// INT, LENGTH, SEQNUM, NUMINGROUP, TAGNUM, DAYOFMONTH
    Int,
    /// FLOAT, QTY, PRICE, PRICEOFFSET, AMT, PERCENTAGE
    Float,
    /// CHAR
    Char,
    /// BOOLEAN
    Boolean,
    /// UTCTIMESTAMP (and TIME in FIX 4.0/4.1)
    UtcTimestamp,
    /// UTCTIMEONLY
    UtcTimeOnly,
    /// UTCDATEONLY, UTCDATE, LOCALMKTDATE, DATE
    Date,
    /// MONTHYEAR
    MonthYear,
    /// MULTIPLEVALUESTRING, MULTIPLESTRINGVALUE, MULTIPLECHARVALUE
    MultipleValue,
    /// DATA, XMLDATA
    Data,
    /// Every other type: free text.
    String,
}

impl FieldType {
    /// Maps a dictionary type name to a field type.
    pub fn from_name(name: &str) -> Self {
        match name.to_ascii_uppercase().as_str() {
            "INT" | "LENGTH" | "SEQNUM" | "NUMINGROUP" | "TAGNUM" | "DAYOFMONTH" => Self::Int,
            "FLOAT" | "QTY" | "QUANTITY" | "PRICE" | "PRICEOFFSET" | "AMT" | "PERCENTAGE" => {
                Self::Float
            }
            "CHAR" => Self::Char,
            "BOOLEAN" => Self::Boolean,
            "UTCTIMESTAMP" | "TIME" => Self::UtcTimestamp,
            "UTCTIMEONLY" => Self::UtcTimeOnly,
            "UTCDATEONLY" | "UTCDATE" | "LOCALMKTDATE" | "DATE" => Self::Date,
            "MONTHYEAR" => Self::MonthYear,
            "MULTIPLEVALUESTRING" | "MULTIPLESTRINGVALUE" | "MULTIPLECHARVALUE" => {
                Self::MultipleValue
            }
            "DATA" | "XMLDATA" => Self::Data,
            _ => Self::String,
        }
    }
}

/// One field definition.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// Tag number.
    pub tag: u32,
    /// Name, e.g. `ClOrdID`.
    pub name: String,
    /// Value type.
    pub field_type: FieldType,
    /// Allowed values, sorted; empty means any value of the type.
    pub values: Vec<Vec<u8>>,
}

/// A member of a message, group or component.
#[derive(Debug, Clone)]
pub enum Member {
    /// A plain field.
    Field {
        /// Tag number.
        tag: u32,
        /// Whether it must be present.
        required: bool,
    },
    /// A repeating group.
    Group(GroupDef),
}

impl Member {
    /// The tag this member starts with (the count tag for a group).
    pub fn tag(&self) -> u32 {
        match self {
            Member::Field { tag, .. } => *tag,
            Member::Group(g) => g.count_tag,
        }
    }

    /// Whether the member must be present.
    pub fn required(&self) -> bool {
        match self {
            Member::Field { required, .. } => *required,
            Member::Group(g) => g.required,
        }
    }
}

/// A set of members with fast tag look-up: a message body, header, trailer or group entry.
#[derive(Debug, Clone, Default)]
pub struct FieldSet {
    /// Members in dictionary order (components flattened).
    pub members: Vec<Member>,
    /// Tag → index into `members`.
    index: HashMap<u32, usize>,
}

impl FieldSet {
    pub(crate) fn new(members: Vec<Member>) -> Self {
        let index = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.tag(), i))
            .collect();
        Self { members, index }
    }

    /// The position of `tag` among the members, if it is one.
    pub fn position(&self, tag: u32) -> Option<usize> {
        self.index.get(&tag).copied()
    }

    /// The group whose count tag is `tag`, if any.
    pub fn group(&self, tag: u32) -> Option<&GroupDef> {
        match self.position(tag).map(|i| &self.members[i]) {
            Some(Member::Group(g)) => Some(g),
            _ => None,
        }
    }
}

/// A repeating group.
#[derive(Debug, Clone)]
pub struct GroupDef {
    /// The NumInGroup tag.
    pub count_tag: u32,
    /// Whether the group must be present.
    pub required: bool,
    /// The first field of every entry.
    pub delimiter: u32,
    /// The fields of one entry.
    pub entry: FieldSet,
}

/// A message definition.
#[derive(Debug, Clone)]
pub struct MessageDef {
    /// Name, e.g. `NewOrderSingle`.
    pub name: String,
    /// MsgType value.
    pub msg_type: Vec<u8>,
    /// Whether `msgcat="admin"`.
    pub admin: bool,
    /// Body members.
    pub body: FieldSet,
}

/// A loaded data dictionary.
#[derive(Debug, Clone)]
pub struct Dictionary {
    /// `FIX.4.2`, `FIXT.1.1`, `FIX.5.0SP2`, …
    pub version: String,
    fields: HashMap<u32, FieldDef>,
    names: HashMap<String, u32>,
    /// Header members.
    pub header: FieldSet,
    /// Trailer members.
    pub trailer: FieldSet,
    messages: HashMap<Vec<u8>, MessageDef>,
}

impl Dictionary {
    /// Field definition by tag.
    pub fn field(&self, tag: u32) -> Option<&FieldDef> {
        self.fields.get(&tag)
    }

    /// Tag by field name.
    pub fn tag_of(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// Message definition by MsgType.
    pub fn message(&self, msg_type: &[u8]) -> Option<&MessageDef> {
        self.messages.get(msg_type)
    }

    /// All message definitions.
    pub fn messages(&self) -> impl Iterator<Item = &MessageDef> {
        self.messages.values()
    }

    /// Whether `tag` is a header field.
    pub fn is_header(&self, tag: u32) -> bool {
        self.header.position(tag).is_some()
    }

    /// Whether `tag` is a trailer field.
    pub fn is_trailer(&self, tag: u32) -> bool {
        self.trailer.position(tag).is_some()
    }

    /// The length/data pairs this dictionary declares (LENGTH field followed by DATA).
    pub fn data_fields(&self) -> DataFieldTable {
        let mut table = DataFieldTable::default();
        for f in self.fields.values() {
            if f.field_type == FieldType::Data {
                let stem = f.name.trim_end_matches("Data");
                for candidate in [
                    format!("{stem}Length"),
                    format!("{stem}Len"),
                    format!("{}Length", f.name),
                    format!("{}Len", f.name),
                ] {
                    if let Some(len_tag) = self.tag_of(&candidate) {
                        table.insert(len_tag, f.tag);
                    }
                }
            }
        }
        table
    }
}
