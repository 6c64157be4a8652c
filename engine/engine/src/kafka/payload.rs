//! Inbound messages as topic records, and outbound records as messages to send.

use crate::config::kafka::Payload;
use fix_codec::MessageRef;
use fix_session::SessionId;

/// Why an outbound record cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not `tag=value` fields.
    #[error("field {index} is not tag=value: {text:?}")]
    Field {
        /// Its position (from 1).
        index: usize,
        /// What it was.
        text: String,
    },
    /// Not the JSON the bridge reads.
    #[error("not a JSON outbound message ({{\"fields\": [[tag, \"value\"], ...]}}): {0}")]
    Json(String),
    /// A required field is missing.
    #[error("no {name} ({tag}): an outbound message needs MsgType (35), and SenderCompID (49) and TargetCompID (56) or a fix-session header")]
    Missing {
        /// The field's name.
        name: &'static str,
        /// Its tag.
        tag: u32,
    },
    /// The `fix-session` header is not a session id.
    #[error("the fix-session header {0:?} is not BEGINSTRING:SENDER->TARGET (for example FIX.4.4:ENGINE->QF)")]
    SessionHeader(String),
    /// A session-level message: the engine's session layer writes those itself.
    #[error("MsgType {0} is a session-level message (Heartbeat, TestRequest, ResendRequest, Reject, SequenceReset, Logout or Logon): the session writes those itself; send application messages only")]
    SessionLevel(String),
    /// A value holds the field separator, which would smuggle another field in.
    #[error("the value of tag {0} holds an SOH (0x01) byte: a value may not carry another field")]
    Separator(u32),
    /// The header and the message disagree.
    #[error("the fix-session header names {header} but the message's {field} is {message}")]
    Conflict {
        /// The header's session.
        header: String,
        /// The field that differs.
        field: &'static str,
        /// Its value in the message.
        message: String,
    },
}

/// An outbound message, read from a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// BeginString (8), when the record names it.
    pub begin_string: Option<String>,
    /// SenderCompID (49): ours.
    pub sender: Option<String>,
    /// TargetCompID (56): the counterparty's.
    pub target: Option<String>,
    /// MsgType (35).
    pub msg_type: String,
    /// The body: every other field, `tag=value` SOH-terminated, in the record's order.
    pub body: Vec<u8>,
}

impl Outbound {
    /// Takes the session from a `fix-session` header (`FIX.4.4:ENGINE->QF`): CompIDs the
    /// message leaves out come from it, and ones it has must agree.
    pub fn with_session_header(mut self, header: &str) -> Result<Self, DecodeError> {
        let bad = || DecodeError::SessionHeader(header.to_string());
        let (begin, comps) = header.split_once(':').ok_or_else(bad)?;
        let (sender, target) = comps.split_once("->").ok_or_else(bad)?;
        if [begin, sender, target].iter().any(|v| v.is_empty()) {
            return Err(bad());
        }
        for (field, mine, theirs) in [
            ("BeginString", &mut self.begin_string, begin),
            ("SenderCompID", &mut self.sender, sender),
            ("TargetCompID", &mut self.target, target),
        ] {
            match mine {
                Some(v) if v != theirs => {
                    return Err(DecodeError::Conflict {
                        header: header.to_string(),
                        field,
                        message: v.clone(),
                    })
                }
                Some(_) => {}
                None => *mine = Some(theirs.to_string()),
            }
        }
        Ok(self)
    }

    /// SenderCompID and TargetCompID, which routing needs.
    pub fn comp_ids(&self) -> Result<(&str, &str), DecodeError> {
        let sender = self.sender.as_deref().ok_or(DecodeError::Missing {
            name: "SenderCompID",
            tag: 49,
        })?;
        let target = self.target.as_deref().ok_or(DecodeError::Missing {
            name: "TargetCompID",
            tag: 56,
        })?;
        Ok((sender, target))
    }

    /// Whether it is for session `id`.
    pub fn is_for(&self, id: &SessionId) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|s| *s == id.sender_comp_id)
            && self
                .target
                .as_ref()
                .is_some_and(|t| *t == id.target_comp_id)
            && self
                .begin_string
                .as_ref()
                .is_none_or(|b| *b == id.begin_string)
    }
}

/// Fields the session writes itself.
fn is_session_field(tag: u32) -> bool {
    matches!(tag, 8 | 9 | 10 | 34 | 35 | 49 | 52 | 56 | 43 | 97 | 122)
}

/// An inbound message as a record value.
pub fn encode_inbound(format: Payload, id: &SessionId, seq: u64, msg: MessageRef<'_>) -> Vec<u8> {
    match format {
        Payload::Raw => msg.bytes().to_vec(),
        Payload::Json => {
            let fields: Vec<serde_json::Value> = msg
                .iter()
                .map(|(tag, v)| serde_json::json!([tag, String::from_utf8_lossy(v)]))
                .collect();
            serde_json::json!({
                "session": id.to_string(),
                "seq": seq,
                "msg_type": String::from_utf8_lossy(msg.msg_type()),
                "fields": fields,
            })
            .to_string()
            .into_bytes()
        }
    }
}

/// The session-level MsgTypes a record may not ask for.
const SESSION_LEVEL: [&str; 7] = ["0", "1", "2", "3", "4", "5", "A"];

/// An outbound record value as a message to send: application messages only, and no
/// value may carry a field separator.
pub fn decode_outbound(format: Payload, value: &[u8]) -> Result<Outbound, DecodeError> {
    let fields = match format {
        Payload::Raw => raw_fields(value)?,
        Payload::Json => json_fields(value)?,
    };
    let (mut begin, mut sender, mut target, mut msg_type) = (None, None, None, None);
    let mut body = Vec::new();
    for (tag, v) in fields {
        if v.contains('\x01') {
            return Err(DecodeError::Separator(tag));
        }
        match tag {
            8 => begin = Some(v),
            35 => msg_type = Some(v),
            49 => sender = Some(v),
            56 => target = Some(v),
            t if is_session_field(t) => {}
            t => {
                body.extend_from_slice(format!("{t}=").as_bytes());
                body.extend_from_slice(v.as_bytes());
                body.push(1);
            }
        }
    }
    let need = |v: Option<String>, name, tag| v.ok_or(DecodeError::Missing { name, tag });
    let msg_type = need(msg_type, "MsgType", 35)?;
    if SESSION_LEVEL.contains(&msg_type.as_str()) {
        return Err(DecodeError::SessionLevel(msg_type));
    }
    Ok(Outbound {
        begin_string: begin,
        msg_type,
        sender,
        target,
        body,
    })
}

fn raw_fields(value: &[u8]) -> Result<Vec<(u32, String)>, DecodeError> {
    let mut out = Vec::new();
    for (i, f) in value
        .split(|b| *b == 1)
        .filter(|f| !f.is_empty() && *f != b"\n")
        .enumerate()
    {
        let text = String::from_utf8_lossy(f).into_owned();
        let bad = || DecodeError::Field {
            index: i + 1,
            text: text.clone(),
        };
        let (tag, v) = text.split_once('=').ok_or_else(bad)?;
        let tag: u32 = tag.trim().parse().map_err(|_| bad())?;
        out.push((tag, v.to_string()));
    }
    Ok(out)
}

fn json_fields(value: &[u8]) -> Result<Vec<(u32, String)>, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Msg {
        fields: Vec<(u32, String)>,
    }
    serde_json::from_slice::<Msg>(value)
        .map(|m| m.fields)
        .map_err(|e| DecodeError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SessionId {
        SessionId::new("FIX.4.4", "ENGINE", "QF")
    }

    #[test]
    fn a_raw_order_becomes_its_session_fields_and_body() {
        let o = decode_outbound(
            Payload::Raw,
            b"8=FIX.4.4\x0135=D\x0149=ENGINE\x0156=QF\x0134=7\x0111=A1\x0155=IBM\x01",
        )
        .expect("decodes");
        assert_eq!(o.msg_type, "D");
        assert!(o.is_for(&id()));
        assert!(!o.is_for(&SessionId::new("FIX.4.2", "ENGINE", "QF")));
        assert_eq!(o.body, b"11=A1\x0155=IBM\x01");
    }

    #[test]
    fn json_reads_the_same_and_errors_name_the_problem() {
        let o = decode_outbound(
            Payload::Json,
            br#"{"fields": [[35, "D"], [49, "ENGINE"], [56, "QF"], [11, "A1"]]}"#,
        )
        .expect("decodes");
        assert_eq!((o.begin_string, o.body), (None, b"11=A1\x01".to_vec()));
        let o = decode_outbound(Payload::Raw, b"35=D\x0149=ENGINE\x0111=A\x01").expect("decodes");
        let e = o.comp_ids().expect_err("no 56");
        assert!(e.to_string().contains("TargetCompID (56)"), "{e}");
        let routed = o
            .clone()
            .with_session_header("FIX.4.4:ENGINE->QF")
            .expect("header");
        assert!(routed.is_for(&id()));
        let e = o
            .clone()
            .with_session_header("FIX.4.4:OTHER->QF")
            .expect_err("conflict");
        assert!(e.to_string().contains("SenderCompID is ENGINE"), "{e}");
        let e = o.with_session_header("nonsense").expect_err("bad header");
        assert!(matches!(e, DecodeError::SessionHeader(_)), "{e}");
        let e = decode_outbound(Payload::Raw, b"35=D\x01garbage\x01").expect_err("bad field");
        assert_eq!(
            e,
            DecodeError::Field {
                index: 2,
                text: "garbage".into()
            }
        );
        let e = decode_outbound(Payload::Json, b"{\"fields\": 3}").expect_err("bad json");
        assert!(matches!(e, DecodeError::Json(_)), "{e}");
    }

    #[test]
    fn session_level_messages_and_smuggled_fields_are_refused() {
        for t in ["0", "1", "2", "3", "4", "5", "A"] {
            let raw = format!("35={t}\x0149=ENGINE\x0156=QF\x01");
            let e = decode_outbound(Payload::Raw, raw.as_bytes()).expect_err("session level");
            assert_eq!(e, DecodeError::SessionLevel(t.into()));
        }
        let e = decode_outbound(
            Payload::Json,
            br#"{"fields": [[35, "D"], [49, "ENGINE"], [56, "QF"], [11, "A1\u000134=1"]]}"#,
        )
        .expect_err("SOH inside a value");
        assert_eq!(e, DecodeError::Separator(11));
        assert!(e.to_string().contains("SOH"), "{e}");
        let e = decode_outbound(
            Payload::Json,
            br#"{"fields": [[35, "D\u000135=5"], [49, "ENGINE"], [56, "QF"]]}"#,
        )
        .expect_err("SOH inside MsgType");
        assert_eq!(e, DecodeError::Separator(35));
    }

    #[test]
    fn an_inbound_message_as_json_keeps_every_field_in_order() {
        let bytes = b"8=FIX.4.4\x019=5\x0135=8\x0134=3\x0110=000\x01".to_vec();
        let msg = fix_codec::message::OwnedMessage::parse(bytes.clone()).expect("parses");
        let v: serde_json::Value =
            serde_json::from_slice(&encode_inbound(Payload::Json, &id(), 3, msg.as_ref()))
                .expect("json");
        assert_eq!(v["session"], "FIX.4.4:ENGINE->QF");
        assert_eq!(v["msg_type"], "8");
        assert_eq!(v["fields"][2], serde_json::json!([35, "8"]));
        assert_eq!(encode_inbound(Payload::Raw, &id(), 3, msg.as_ref()), bytes);
    }
}
