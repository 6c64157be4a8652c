//! The receive path allocates nothing per message in steady state: framing, splitting into
//! fields, look-ups and validation (repeating groups included).
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`

use fix_codec::dictionary::{ValidationOptions, Validator};
use fix_codec::human::encode_human;
use fix_codec::{frame, Dictionary, Parser};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

// SAFETY: forwards to the system allocator; only counts calls on threads that opted in.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
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

fn allocations_during(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(Some(0)));
    f();
    COUNT.with(|c| c.replace(None)).unwrap_or(0)
}

const XML: &str = r#"<fix major="4" minor="4" servicepack="0">
 <header/><trailer/>
 <messages>
  <message name="NewOrderSingle" msgtype="D" msgcat="app">
   <field name="ClOrdID" required="Y"/><field name="Symbol" required="Y"/>
   <field name="Side" required="Y"/><field name="TransactTime" required="Y"/>
   <field name="OrderQty" required="N"/><field name="OrdType" required="Y"/>
   <field name="Price" required="N"/>
   <group name="NoPartyIDs" required="N">
    <field name="PartyID" required="N"/><field name="PartyRole" required="N"/>
    <group name="NoPartySubIDs" required="N"><field name="PartySubID" required="N"/></group>
   </group>
  </message>
 </messages>
 <fields>
  <field number="11" name="ClOrdID" type="STRING"/><field number="55" name="Symbol" type="STRING"/>
  <field number="54" name="Side" type="CHAR"><value enum="1"/><value enum="2"/></field>
  <field number="60" name="TransactTime" type="UTCTIMESTAMP"/><field number="38" name="OrderQty" type="QTY"/>
  <field number="40" name="OrdType" type="CHAR"><value enum="1"/><value enum="2"/></field>
  <field number="44" name="Price" type="PRICE"/><field number="453" name="NoPartyIDs" type="NUMINGROUP"/>
  <field number="448" name="PartyID" type="STRING"/><field number="452" name="PartyRole" type="INT"/>
  <field number="802" name="NoPartySubIDs" type="NUMINGROUP"/><field number="523" name="PartySubID" type="STRING"/>
 </fields>
</fix>"#;

#[test]
fn framing_parsing_and_validating_allocate_nothing_in_steady_state() {
    let transport = fix_codec::dictionary::session_dictionary("FIX.4.4").expect("builtin");
    let app = Dictionary::from_xml(XML).expect("dictionary");
    let wire = encode_human(
        "35=D|34=2|49=A|52=20240102-03:04:05.678|56=B|11=ORD1|55=IBM|54=1|60=20240102-03:04:05|38=100|40=2|44=10.5|453=2|448=P1|452=1|802=1|523=S1|448=P2|452=3|",
        "FIX.4.4",
    );
    let mut parser = Parser::default();
    let mut validator = Validator::new(ValidationOptions::default());
    let mut run = || {
        let f = frame::check(&wire, 1 << 20).expect("frame");
        let msg = parser.parse(&wire[..f.len]).expect("parse");
        assert_eq!(msg.get_str(11), Some("ORD1"));
        assert_eq!(msg.get_u64(34), Ok(Some(2)));
        validator
            .validate(&transport, Some(&app), msg)
            .expect("valid");
    };
    run(); // warm-up: buffers reach their steady size
    let n = allocations_during(|| {
        for _ in 0..1000 {
            run();
        }
    });
    assert_eq!(n, 0, "allocations over 1000 messages");
}
