//! `echo`: QuickFIX's acceptance-test application.

use crate::app::{AppContext, AppReject, Application};
use fix_codec::{tags, MessageBuilder, MessageRef};
use fix_session::SessionId;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

/// Header fields the session writes itself on every message it sends, and the resend
/// markers it clears: not copied when reflecting a message.
fn written_by_session(tag: u32) -> bool {
    matches!(tag, 8 | 9 | 10 | 34 | 35 | 43 | 49 | 52 | 56 | 122)
}

/// A tag and its value.
type Field<'a> = (u32, &'a [u8]);

/// A reflected message as QuickFIX writes it: `header` gets the inbound header fields the
/// session does not write itself, in tag order; `body` the body fields in tag order, each
/// repeating group (its NumInGroup and entries, as the dictionary of `ctx` knows them) kept
/// whole at the place of its NumInGroup tag.
fn reflect(
    ctx: &AppContext<'_>,
    msg: MessageRef<'_>,
    header: &mut MessageBuilder,
    body: &mut MessageBuilder,
) {
    let dicts = ctx.session.dictionaries();
    let def = dicts.app.as_deref().and_then(|d| d.message(msg.msg_type()));
    let is_header = |tag: u32| dicts.transport.is_header(tag) || dicts.transport.is_trailer(tag);
    let fields: Vec<(u32, &[u8])> = msg.iter().collect();
    let mut head: Vec<(u32, &[u8])> = Vec::new();
    let mut blocks: Vec<(u32, Vec<Field<'_>>)> = Vec::new();
    let mut i = 0;
    while i < fields.len() {
        let (tag, value) = fields[i];
        i += 1;
        if written_by_session(tag) {
            continue;
        }
        if is_header(tag) {
            head.push((tag, value));
            continue;
        }
        let mut block = vec![(tag, value)];
        if let Some(group) = def.and_then(|m| m.body.group(tag)) {
            while i < fields.len() && group.entry.position(fields[i].0).is_some() {
                block.push(fields[i]);
                i += 1;
            }
        }
        blocks.push((tag, block));
    }
    head.sort_by_key(|(t, _)| *t);
    blocks.sort_by_key(|(t, _)| *t);
    header.start_fields();
    for (t, v) in head {
        header.push(t, v);
    }
    body.start_fields();
    for (t, v) in blocks.into_iter().flat_map(|(_, b)| b) {
        body.push(t, v);
    }
}

/// ClOrdIDs the echo application remembers per session to recognise a resent
/// NewOrderSingle: the most recent ones; the oldest is forgotten first.
pub const RECENT_CL_ORD_IDS: usize = 100_000;

/// QuickFIX's acceptance-test application: NewOrderSingle and SecurityDefinition are
/// reflected back (header fields kept, not re-routed, fields in QuickFIX's order); a
/// NewOrderSingle with PossResend=Y whose ClOrdID is among the session's last
/// [`RECENT_CL_ORD_IDS`] is not echoed again; anything else gets a
/// BusinessMessageReject (unsupported message type).
#[derive(Default)]
pub struct EchoApp {
    seen: Mutex<HashMap<SessionId, RecentIds>>,
}

/// The last `RECENT_CL_ORD_IDS` ClOrdIDs of one session. A B-tree, not a hash set: it
/// grows a node at a time, never by rehashing everything at once under load.
#[derive(Default)]
struct RecentIds {
    set: BTreeSet<Box<[u8]>>,
    order: VecDeque<Box<[u8]>>,
}

impl RecentIds {
    /// Remembers `id`; false when it was already remembered.
    fn insert(&mut self, id: &[u8]) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= RECENT_CL_ORD_IDS {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.set.insert(id.into());
        self.order.push_back(id.into());
        true
    }
}

impl Application for EchoApp {
    fn on_logout(&self, id: &SessionId) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    fn from_app(&self, ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        let msg_type = msg.msg_type();
        match msg_type {
            b"D" | b"d" => {
                if msg_type == b"D" {
                    let cl_ord_id = msg.get(tags::CL_ORD_ID).unwrap_or_default();
                    let mut seen = self
                        .seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let fresh = match seen.get_mut(ctx.session_id()) {
                        Some(recent) => recent.insert(cl_ord_id),
                        None => seen
                            .entry(ctx.session_id().clone())
                            .or_default()
                            .insert(cl_ord_id),
                    };
                    if !fresh && msg.get_flag(tags::POSS_RESEND) {
                        return Ok(());
                    }
                }
                let (mut header, mut body) = (MessageBuilder::new(), MessageBuilder::new());
                reflect(ctx, msg, &mut header, &mut body);
                ctx.send_with_header(msg_type, header.fields(), body.fields())
                    .map(|_| ())
                    .map_err(|e| AppReject::Business {
                        reason: 0,
                        text: format!("echo failed: {e}"),
                    })
            }
            _ => Err(AppReject::unsupported_message_type()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_beyond_the_bound() {
        let mut recent = RecentIds::default();
        for i in 0..RECENT_CL_ORD_IDS + 10 {
            assert!(recent.insert(i.to_string().as_bytes()));
        }
        assert_eq!(recent.set.len(), RECENT_CL_ORD_IDS);
        assert_eq!(recent.order.len(), RECENT_CL_ORD_IDS);
        // The first ten were forgotten; the last one is still known.
        assert!(recent.insert(b"0"));
        assert!(!recent.insert((RECENT_CL_ORD_IDS + 9).to_string().as_bytes()));
    }
}
