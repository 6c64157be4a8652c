//! `exec`: a small exchange simulator.

use crate::app::{AppContext, AppReject, Application};
use fix_codec::{MessageBuilder, MessageRef};
use fix_session::SessionId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Limit orders one session may keep resting in the simulator; a limit order beyond it
/// is rejected (ExecutionReport, OrdStatus Rejected, a Text saying why, and from FIX 4.3
/// on OrdRejReason 99 "Other").
pub const MAX_RESTING_ORDERS: usize = 1_000_000;

/// A small exchange simulator: a market NewOrderSingle gets an ExecutionReport New and
/// then a Fill; a limit order (OrdType 2) an ExecutionReport New, and it rests (at most
/// [`MAX_RESTING_ORDERS`] per session, kept across logons) until an OrderCancelRequest
/// cancels it. An OrderCancelRequest for an unknown or filled order gets an
/// OrderCancelReject.
#[derive(Default)]
pub struct ExecApp {
    state: Mutex<ExecState>,
}

#[derive(Default)]
struct ExecState {
    /// Reused for every report.
    builder: MessageBuilder,
    next_id: u64,
    /// Resting orders per session.
    books: HashMap<SessionId, Book>,
}

/// The resting orders of one session by ClOrdID. A B-tree, not a hash map: it grows a
/// node at a time, never by rehashing every order at once while orders flow.
type Book = BTreeMap<Box<[u8]>, Resting>;

/// An order resting in the simulator.
struct Resting {
    order_id: u64,
    /// Symbol, Side and OrderQty, each followed by SOH (which no value contains): one
    /// allocation per order.
    fields: Box<[u8]>,
}

impl Resting {
    fn new(order_id: u64, symbol: &[u8], side: &[u8], qty: &[u8]) -> Self {
        let mut fields = Vec::with_capacity(symbol.len() + side.len() + qty.len() + 3);
        for v in [symbol, side, qty] {
            fields.extend_from_slice(v);
            fields.push(1);
        }
        Self {
            order_id,
            fields: fields.into(),
        }
    }

    /// Symbol, Side, OrderQty.
    fn fields(&self) -> (&[u8], &[u8], &[u8]) {
        let mut it = self.fields.split(|&b| b == 1);
        let mut next = || it.next().unwrap_or_default();
        (next(), next(), next())
    }
}

/// One ExecutionReport.
struct Report<'a> {
    order_id: u64,
    exec_id: u64,
    cl_ord_id: &'a [u8],
    /// OrdStatus; ExecType too, except for a fill.
    status: &'a [u8],
    symbol: &'a [u8],
    side: &'a [u8],
    qty: &'a [u8],
    /// A fill of the whole quantity at `price`.
    filled: bool,
    price: &'a [u8],
    /// Why the order was rejected (OrdRejReason 99 and this Text).
    rejected: Option<&'a str>,
}

impl<'a> Report<'a> {
    /// A report of no fill, accepted.
    fn new(
        order_id: u64,
        exec_id: u64,
        cl_ord_id: &'a [u8],
        status: &'a [u8],
        (symbol, side, qty): (&'a [u8], &'a [u8], &'a [u8]),
    ) -> Self {
        Self {
            order_id,
            exec_id,
            cl_ord_id,
            status,
            symbol,
            side,
            qty,
            filled: false,
            price: b"0",
            rejected: None,
        }
    }

    fn send(
        &self,
        b: &mut MessageBuilder,
        ctx: &mut AppContext<'_>,
        request: MessageRef<'_>,
    ) -> Result<(), AppReject> {
        let begin = ctx.session_id().begin_string.as_str();
        let fix44 = !matches!(begin, "FIX.4.0" | "FIX.4.1" | "FIX.4.2");
        b.start_fields()
            .push_uint(37, self.order_id)
            .push(11, self.cl_ord_id)
            .push_uint(17, self.exec_id);
        if !fix44 {
            b.push(20, b"0");
        }
        // ExecType Fill (2) became Trade (F) in FIX 4.3; FIX.4.0 has neither ExecType nor
        // LeavesQty, and FIX.4.0/4.1 require LastShares and LastPx on every report.
        let fix40 = begin == "FIX.4.0";
        let last_always = matches!(begin, "FIX.4.0" | "FIX.4.1");
        let exec_type: &[u8] = if self.filled && fix44 {
            b"F"
        } else {
            self.status
        };
        if !fix40 {
            b.push(150, exec_type);
        }
        b.push(39, self.status)
            .push(55, self.symbol)
            .push(54, self.side)
            .push(38, self.qty);
        if self.filled {
            b.push(32, self.qty).push(31, self.price);
        } else if last_always {
            b.push(32, b"0").push(31, b"0");
        }
        if !fix40 {
            let done = self.filled || self.status == b"4" || self.status == b"8";
            let leaves: &[u8] = if done { b"0" } else { self.qty };
            b.push(151, leaves);
        }
        if self.filled {
            b.push(14, self.qty).push(6, self.price);
        } else {
            b.push(14, b"0").push(6, b"0");
        }
        if let Some(text) = self.rejected {
            // OrdRejReason 99 (Other) exists from FIX 4.3 on; before it, the Text alone.
            if fix44 {
                b.push(103, b"99");
            }
            b.push_str(58, text);
        }
        ctx.reply(b"8", request, b.fields())
            .map(|_| ())
            .map_err(|e| AppReject::Business {
                reason: 0,
                text: format!("execution report not sent: {e}"),
            })
    }
}

/// Whether `book` may take the order `cl` (a new one, or one replacing the order of the
/// same ClOrdID) without holding more than `max` orders.
fn admits(book: &Book, cl: &[u8], max: usize) -> bool {
    book.len() < max || book.contains_key(cl)
}

impl ExecState {
    fn book(&mut self, id: &SessionId) -> &mut Book {
        if !self.books.contains_key(id) {
            self.books.insert(id.clone(), Book::new());
        }
        self.books.get_mut(id).expect("inserted above")
    }

    fn new_order(
        &mut self,
        ctx: &mut AppContext<'_>,
        msg: MessageRef<'_>,
    ) -> Result<(), AppReject> {
        let cl = msg.get(11).unwrap_or_default();
        let symbol = msg.get(55).unwrap_or_default();
        let side = msg.get(54).unwrap_or_default();
        let qty = msg.get(38).unwrap_or(b"0");
        let price = msg.get(44).unwrap_or(b"0");
        let resting = msg.get(40) == Some(b"2");
        self.next_id += 1;
        let order_id = self.next_id;
        self.next_id += 2;
        let base = self.next_id;
        let mut report = Report::new(order_id, base - 1, cl, b"0", (symbol, side, qty));
        if resting {
            let book = self.book(ctx.session_id());
            if !admits(book, cl, MAX_RESTING_ORDERS) {
                report.status = b"8";
                report.rejected =
                    Some("too many resting orders in this session: cancel some first");
                return report.send(&mut self.builder, ctx, msg);
            }
            book.insert(cl.into(), Resting::new(order_id, symbol, side, qty));
            return report.send(&mut self.builder, ctx, msg);
        }
        report.send(&mut self.builder, ctx, msg)?;
        report.exec_id = base;
        report.status = b"2";
        report.filled = true;
        report.price = price;
        report.send(&mut self.builder, ctx, msg)
    }

    fn cancel(&mut self, ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        let orig = msg.get(41).unwrap_or_default();
        let cl = msg.get(11).unwrap_or_default();
        let Some(order) = self.book(ctx.session_id()).remove(orig) else {
            let b = &mut self.builder;
            b.start_fields()
                .push(37, b"NONE")
                .push(11, cl)
                .push(41, orig)
                .push(39, b"8")
                .push(434, b"1")
                .push(102, b"1")
                .push_str(58, "Unknown order");
            return ctx
                .reply(b"9", msg, b.fields())
                .map(|_| ())
                .map_err(|e| AppReject::Business {
                    reason: 0,
                    text: format!("cancel reject not sent: {e}"),
                });
        };
        self.next_id += 1;
        let (symbol, side, qty) = order.fields();
        Report::new(order.order_id, self.next_id, cl, b"4", (symbol, side, qty)).send(
            &mut self.builder,
            ctx,
            msg,
        )
    }
}

impl Application for ExecApp {
    fn from_app(&self, ctx: &mut AppContext<'_>, msg: MessageRef<'_>) -> Result<(), AppReject> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match msg.msg_type() {
            b"D" => state.new_order(ctx, msg),
            b"F" => state.cancel(ctx, msg),
            _ => Err(AppReject::unsupported_message_type()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_book_admits_only_a_replacement() {
        let mut book = Book::new();
        for i in 0..3u32 {
            assert!(admits(&book, i.to_string().as_bytes(), 3));
            book.insert(
                i.to_string().into_bytes().into(),
                Resting::new(1, b"X", b"1", b"1"),
            );
        }
        assert!(!admits(&book, b"3", 3));
        assert!(admits(&book, b"1", 3));
    }

    #[test]
    fn a_resting_order_keeps_its_fields_in_one_allocation() {
        let order = Resting::new(7, b"MSFT", b"1", b"100");
        assert_eq!(order.fields(), (&b"MSFT"[..], &b"1"[..], &b"100"[..]));
        assert_eq!(&*order.fields, b"MSFT\x011\x01100\x01");
    }
}
