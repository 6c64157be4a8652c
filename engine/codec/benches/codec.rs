//! Codec benchmarks: parse NewOrderSingle and ExecutionReport (framing, field split,
//! look-ups) with and without data-dictionary validation, and encode an
//! ExecutionReport. Prints nanoseconds per message (criterion) and, after, allocations
//! per message measured with a counting allocator.
//!
//! `cargo bench -p fix-codec --bench codec`. Validation uses the full FIX 4.4 dictionary
//! from `FIX_DICTIONARY_DIR/FIX44.xml` when that is set (scripts/test.sh installs
//! QuickFIX's), else a small built-in one — the figure says which.
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fix_codec::dictionary::{session_dictionary, ValidationOptions, Validator};
use fix_codec::human::encode_human;
use fix_codec::{frame, Dictionary, MessageBuilder, Parser, TimePrecision, UtcTimestamp};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator and counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const NOS: &str = "35=D|34=215|49=CLIENT|52=20240102-03:04:05.678|56=EXEC|11=ORD-000215|1=ACC-7|21=1|55=MSFT|54=1|60=20240102-03:04:05.678|38=100|40=2|44=412.25|59=0|";
const ER: &str = "35=8|34=431|49=EXEC|52=20240102-03:04:05.679|56=CLIENT|37=EX-000431|11=ORD-000215|17=EXEC-000862|150=F|39=2|1=ACC-7|55=MSFT|54=1|38=100|40=2|44=412.25|32=100|31=412.25|151=0|14=100|6=412.25|60=20240102-03:04:05.679|";

const SMALL_XML: &str = r#"<fix major="4" minor="4" servicepack="0"><header/><trailer/><messages>
 <message name="NewOrderSingle" msgtype="D" msgcat="app">
  <field name="ClOrdID" required="Y"/><field name="Account" required="N"/><field name="HandlInst" required="N"/>
  <field name="Symbol" required="Y"/><field name="Side" required="Y"/><field name="TransactTime" required="Y"/>
  <field name="OrderQty" required="N"/><field name="OrdType" required="Y"/><field name="Price" required="N"/>
  <field name="TimeInForce" required="N"/></message>
 <message name="ExecutionReport" msgtype="8" msgcat="app">
  <field name="OrderID" required="Y"/><field name="ClOrdID" required="N"/><field name="ExecID" required="Y"/>
  <field name="ExecType" required="Y"/><field name="OrdStatus" required="Y"/><field name="Account" required="N"/>
  <field name="Symbol" required="Y"/><field name="Side" required="Y"/><field name="OrderQty" required="N"/>
  <field name="OrdType" required="N"/><field name="Price" required="N"/><field name="LastQty" required="N"/>
  <field name="LastPx" required="N"/><field name="LeavesQty" required="Y"/><field name="CumQty" required="Y"/>
  <field name="AvgPx" required="Y"/><field name="TransactTime" required="N"/></message></messages><fields>
 <field number="1" name="Account" type="STRING"/><field number="6" name="AvgPx" type="PRICE"/>
 <field number="11" name="ClOrdID" type="STRING"/><field number="14" name="CumQty" type="QTY"/>
 <field number="17" name="ExecID" type="STRING"/><field number="21" name="HandlInst" type="CHAR"/>
 <field number="31" name="LastPx" type="PRICE"/><field number="32" name="LastQty" type="QTY"/>
 <field number="37" name="OrderID" type="STRING"/><field number="38" name="OrderQty" type="QTY"/>
 <field number="39" name="OrdStatus" type="CHAR"/><field number="40" name="OrdType" type="CHAR"/>
 <field number="44" name="Price" type="PRICE"/><field number="54" name="Side" type="CHAR"/>
 <field number="55" name="Symbol" type="STRING"/><field number="59" name="TimeInForce" type="CHAR"/>
 <field number="60" name="TransactTime" type="UTCTIMESTAMP"/><field number="150" name="ExecType" type="CHAR"/>
 <field number="151" name="LeavesQty" type="QTY"/></fields></fix>"#;

/// The application dictionary and which one it is.
fn app_dictionary() -> (Arc<Dictionary>, &'static str) {
    if let Ok(dir) = std::env::var("FIX_DICTIONARY_DIR") {
        let path = std::path::Path::new(&dir).join("FIX44.xml");
        if let Ok(d) = Dictionary::from_file(&path) {
            return (Arc::new(d), "full FIX44.xml");
        }
    }
    match Dictionary::from_xml(SMALL_XML) {
        Ok(d) => (Arc::new(d), "built-in subset"),
        Err(e) => panic!("bench dictionary: {e}"),
    }
}

fn parse_case(c: &mut Criterion, name: &str, text: &str, validate: bool) {
    let wire = encode_human(text, "FIX.4.4");
    let transport = session_dictionary("FIX.4.4").expect("FIX.4.4 session dictionary");
    let (app, _) = app_dictionary();
    let mut parser = Parser::default();
    let mut validator = Validator::new(ValidationOptions::default());
    let mut group = c.benchmark_group(if validate { "parse+validate" } else { "parse" });
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            let f = frame::check(black_box(&wire), 1 << 20).expect("frame");
            let msg = parser.parse(&wire[..f.len]).expect("parse");
            black_box(msg.get(11));
            black_box(msg.get_u64(34).ok());
            if validate {
                validator
                    .validate(&transport, Some(&app), msg)
                    .expect("valid");
            }
        });
    });
    group.finish();
}

/// Encodes the ExecutionReport of ER (header, body, BodyLength, CheckSum).
fn encode_er(b: &mut MessageBuilder, seq: u64, now: UtcTimestamp) -> usize {
    b.start(b"FIX.4.4", b"8")
        .push_uint(34, seq)
        .push(49, b"EXEC")
        .push_timestamp(52, now, TimePrecision::Millis)
        .push(56, b"CLIENT")
        .push(37, b"EX-000431")
        .push(11, b"ORD-000215")
        .push(17, b"EXEC-000862")
        .push(150, b"F")
        .push(39, b"2")
        .push(1, b"ACC-7")
        .push(55, b"MSFT")
        .push(54, b"1")
        .push_uint(38, 100)
        .push(40, b"2")
        .push(44, b"412.25")
        .push_uint(32, 100)
        .push(31, b"412.25")
        .push_uint(151, 0)
        .push_uint(14, 100)
        .push(6, b"412.25")
        .push_timestamp(60, now, TimePrecision::Millis);
    b.finish().len()
}

fn encode_case(c: &mut Criterion) {
    let mut builder = MessageBuilder::new();
    let now = UtcTimestamp::now();
    let mut seq = 0u64;
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("execution_report", |b| {
        b.iter(|| {
            seq += 1;
            black_box(encode_er(&mut builder, seq, now))
        });
    });
    group.finish();
}

/// Allocations per message over 10 000 messages after a warm-up.
fn allocations_per_message(mut f: impl FnMut()) -> f64 {
    f();
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..10_000 {
        f();
    }
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / 10_000.0
}

fn allocations(_: &mut Criterion) {
    let transport = session_dictionary("FIX.4.4").expect("FIX.4.4 session dictionary");
    let (app, which) = app_dictionary();
    println!("\nallocations per message (validation against the {which} dictionary):");
    for (name, text) in [("new_order_single", NOS), ("execution_report", ER)] {
        let wire = encode_human(text, "FIX.4.4");
        let mut parser = Parser::default();
        let mut validator = Validator::new(ValidationOptions::default());
        let n = allocations_per_message(|| {
            let f = frame::check(&wire, 1 << 20).expect("frame");
            let msg = parser.parse(&wire[..f.len]).expect("parse");
            validator
                .validate(&transport, Some(&app), msg)
                .expect("valid");
        });
        println!("  parse+validate/{name}: {n}");
    }
    let mut builder = MessageBuilder::new();
    let now = UtcTimestamp::now();
    let n = allocations_per_message(|| {
        black_box(encode_er(&mut builder, 431, now));
    });
    println!("  encode/execution_report: {n}");
}

fn benches(c: &mut Criterion) {
    let (_, which) = app_dictionary();
    println!("validation dictionary: {which}");
    parse_case(c, "new_order_single", NOS, false);
    parse_case(c, "execution_report", ER, false);
    parse_case(c, "new_order_single", NOS, true);
    parse_case(c, "execution_report", ER, true);
    encode_case(c);
    allocations(c);
}

criterion_group!(codec, benches);
criterion_main!(codec);
