//! Handing messages to the application: in order, inside one store batch that commits
//! the replies with the mark that the messages were processed, and a refusal turned
//! into a Reject or BusinessMessageReject.

use super::{now, Delivery, SessionActor};
use crate::app::{AppContext, AppReject};
use fix_codec::MessageRef;
use fix_session::Now;

impl SessionActor {
    /// Delivers in order. Application messages are processed inside one store batch that
    /// commits together with the mark that they were processed: after a crash either the
    /// replies and the mark are both in the journal, or neither is and the messages are
    /// replayed to the application at start-up.
    pub(super) fn deliver_all(&mut self, deliveries: &mut Vec<Delivery>, buf: &[u8]) {
        let apps = deliveries.iter().any(|d| !matches!(d, Delivery::Admin(..)));
        if apps {
            self.session.begin_app_batch();
        }
        let mut processed = None;
        for d in deliveries.drain(..) {
            if let Some(seq) = self.deliver(d, buf) {
                processed = Some(seq);
            }
        }
        if apps {
            // An unreadable delivery (not expected) is not marked: it will be replayed.
            if let Some(seq) = processed {
                let term = crate::app::Term::current(self.role.as_ref(), &self.stopping);
                match self.app.before_processed(self.session.id(), &term) {
                    Ok(()) => self.session.commit_app_batch(seq),
                    Err(e) => {
                        // The batch is closed (records after it must not wait for a
                        // commit) but marks nothing processed (the mark is a high-water
                        // mark; 0 moves nothing): the messages are handed over again, in
                        // this term's next batch or by the next leader.
                        tracing::warn!(session = %self.span_name(), error = %e, "application batch left unprocessed");
                        self.session.commit_app_batch(0);
                    }
                }
            }
        }
    }

    /// Hands one message to the application; returns the sequence number of an
    /// application message it processed.
    fn deliver(&mut self, d: Delivery, buf: &[u8]) -> Option<u64> {
        let mut spans = std::mem::take(&mut self.spans);
        let msg = match &d {
            Delivery::Frame(pos, len) | Delivery::Admin(pos, len) => {
                let parsed = buf.get(*pos..*pos + *len).filter(|bytes| {
                    fix_codec::message::split_fields(bytes, &self.data_fields, &mut spans).is_ok()
                });
                let Some(bytes) = parsed else {
                    // Cannot happen: the frame was parsed when it arrived. Say so loudly.
                    tracing::error!(session = %self.span_name(), "a journaled message could not be re-read for delivery");
                    self.spans = spans;
                    return None;
                };
                MessageRef::new(bytes, &spans)
            }
            Delivery::Owned(m) | Delivery::Replayed(m) => m.as_ref(),
        };
        if matches!(d, Delivery::Admin(..)) {
            self.app.from_admin(self.session.id(), msg);
            self.spans = spans;
            return None;
        }
        let t = now();
        let seq = msg
            .get_u64(fix_codec::tags::MSG_SEQ_NUM)
            .ok()
            .flatten()
            .unwrap_or(0);
        let mut ctx = AppContext {
            session: &mut self.session,
            now: t,
            replayed: matches!(d, Delivery::Replayed(_)),
            term: crate::app::Term::current(self.role.as_ref(), &self.stopping),
        };
        let result = self.app.from_app(&mut ctx, msg);
        self.reject_if_refused(t, msg, result);
        self.spans = spans;
        Some(seq)
    }

    fn reject_if_refused(&mut self, t: Now, msg: MessageRef<'_>, result: Result<(), AppReject>) {
        match result {
            Ok(()) => {}
            Err(AppReject::Business { reason, text }) => {
                self.session
                    .send_business_reject(t, msg, reason, None, &text);
            }
            Err(AppReject::Session {
                reason,
                ref_tag,
                text,
            }) => {
                self.session.reject_message(t, msg, reason, ref_tag, &text);
            }
        }
    }
}
