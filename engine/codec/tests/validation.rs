//! Validation rules, each with the SessionRejectReason and RefTagID QuickFIX users expect.

use fix_codec::dictionary::{
    session_dictionary, SessionRejectReason as R, ValidationOptions, Validator,
};
use fix_codec::human::encode_human;
use fix_codec::{Dictionary, Parser};

const APP: &str = r#"<fix major="4" minor="2" servicepack="0">
 <header/><trailer/>
 <messages>
  <message name="NewOrderSingle" msgtype="D" msgcat="app">
   <field name="ClOrdID" required="Y"/><field name="HandlInst" required="Y"/>
   <field name="Symbol" required="Y"/><field name="Side" required="Y"/>
   <field name="TransactTime" required="Y"/><field name="OrderQty" required="N"/>
   <field name="OrdType" required="Y"/><field name="Price" required="N"/>
   <group name="NoAllocs" required="N">
    <field name="AllocAccount" required="Y"/><field name="AllocShares" required="N"/>
   </group>
  </message>
 </messages>
 <fields>
  <field number="11" name="ClOrdID" type="STRING"/>
  <field number="21" name="HandlInst" type="CHAR"><value enum="1"/><value enum="2"/><value enum="3"/></field>
  <field number="55" name="Symbol" type="STRING"/>
  <field number="54" name="Side" type="CHAR"><value enum="1"/><value enum="2"/></field>
  <field number="60" name="TransactTime" type="UTCTIMESTAMP"/>
  <field number="38" name="OrderQty" type="QTY"/>
  <field number="40" name="OrdType" type="CHAR"><value enum="1"/><value enum="2"/></field>
  <field number="44" name="Price" type="PRICE"/>
  <field number="78" name="NoAllocs" type="NUMINGROUP"/>
  <field number="79" name="AllocAccount" type="STRING"/>
  <field number="80" name="AllocShares" type="QTY"/>
  <field number="15" name="Currency" type="CURRENCY"/>
  <field number="5001" name="MyUserField" type="STRING"/>
 </fields>
</fix>"#;

const HDR: &str = "35=D|34=2|49=TW|52=20240101-10:00:00|56=ISLD|";
const BODY: &str = "11=ID|21=3|40=1|54=1|55=INTC|60=20240101-10:00:00|";

fn check(options: ValidationOptions, text: &str) -> Result<(), (R, Option<u32>)> {
    let transport = session_dictionary("FIX.4.2").expect("builtin");
    let app = Dictionary::from_xml(APP).expect("app dictionary");
    let wire = encode_human(text, "FIX.4.2");
    let mut parser = Parser::default();
    let msg = parser.parse(&wire).expect("parses");
    Validator::new(options)
        .validate(&transport, Some(&app), msg)
        .map_err(|r| (r.reason, r.ref_tag))
}

fn default(text: &str) -> Result<(), (R, Option<u32>)> {
    check(ValidationOptions::default(), text)
}

#[test]
fn a_well_formed_order_passes() {
    assert_eq!(default(&format!("{HDR}{BODY}")), Ok(()));
}

#[test]
fn header_and_body_fields_in_any_order_within_their_section_pass() {
    assert_eq!(default("35=D|49=TW|56=ISLD|34=2|52=20240101-10:00:00|55=INTC|11=ID|21=3|40=1|54=1|60=20240101-10:00:00|"), Ok(()));
}

#[test]
fn an_undefined_tag_is_an_invalid_tag_number() {
    assert_eq!(
        default(&format!("{HDR}{BODY}999=x|")),
        Err((R::InvalidTagNumber, Some(999)))
    );
}

#[test]
fn a_missing_required_field_is_reported_with_its_tag() {
    assert_eq!(
        default(&format!("{HDR}11=ID|21=3|40=1|54=1|60=20240101-10:00:00|")),
        Err((R::RequiredTagMissing, Some(55)))
    );
}

#[test]
fn a_defined_tag_not_in_the_message_is_refused_unless_allowed() {
    let text = format!("{HDR}{BODY}15=USD|");
    assert_eq!(
        default(&text),
        Err((R::TagNotDefinedForMessageType, Some(15)))
    );
    let allow = ValidationOptions {
        allow_unknown_msg_fields: true,
        ..Default::default()
    };
    assert_eq!(check(allow, &text), Ok(()));
}

#[test]
fn an_empty_value_is_refused_unless_allowed() {
    let text = format!("{HDR}{BODY}44=|");
    assert_eq!(default(&text), Err((R::TagSpecifiedWithoutValue, Some(44))));
    let lax = ValidationOptions {
        fields_have_values: false,
        ..Default::default()
    };
    assert_eq!(check(lax, &text), Ok(()));
}

#[test]
fn an_unknown_enum_value_is_out_of_range() {
    assert_eq!(
        default(&format!(
            "{HDR}11=ID|21=3|40=1|54=7|55=INTC|60=20240101-10:00:00|"
        )),
        Err((R::ValueIncorrect, Some(54)))
    );
}

#[test]
fn badly_formatted_values_are_incorrect_data_format() {
    assert_eq!(
        default(&format!("{HDR}{BODY}38=abc|")),
        Err((R::IncorrectDataFormat, Some(38)))
    );
    assert_eq!(
        default(&format!("{HDR}11=ID|21=3|40=1|54=1|55=INTC|60=2024-01-01|")),
        Err((R::IncorrectDataFormat, Some(60)))
    );
    assert_eq!(
        default(&format!("{HDR}{BODY}44=1.2.3|")),
        Err((R::IncorrectDataFormat, Some(44)))
    );
}

#[test]
fn header_fields_after_the_body_are_out_of_order_unless_allowed() {
    let text = format!("35=D|49=TW|52=20240101-10:00:00|56=ISLD|{BODY}34=2|");
    assert_eq!(
        default(&text),
        Err((R::TagSpecifiedOutOfRequiredOrder, Some(34)))
    );
    let lax = ValidationOptions {
        fields_out_of_order: false,
        ..Default::default()
    };
    assert_eq!(check(lax, &text), Ok(()));
}

#[test]
fn a_repeated_tag_is_refused() {
    assert_eq!(
        default(&format!("{HDR}{BODY}55=MSFT|")),
        Err((R::TagAppearsMoreThanOnce, Some(55)))
    );
}

#[test]
fn group_counts_must_match_the_entries() {
    assert_eq!(
        default(&format!("{HDR}{BODY}78=2|79=A|80=10|79=B|")),
        Ok(())
    );
    assert_eq!(
        default(&format!("{HDR}{BODY}78=3|79=A|79=B|")),
        Err((R::IncorrectNumInGroupCount, Some(78)))
    );
    assert_eq!(default(&format!("{HDR}{BODY}78=0|")), Ok(()));
}

#[test]
fn group_entries_must_start_with_the_delimiter_and_keep_order() {
    assert_eq!(
        default(&format!("{HDR}{BODY}78=1|80=10|79=A|")),
        Err((R::RepeatingGroupFieldsOutOfOrder, Some(80)))
    );
}

#[test]
fn a_repeated_group_is_refused() {
    assert_eq!(
        default(&format!("{HDR}{BODY}78=1|79=A|78=1|")),
        Err((R::TagAppearsMoreThanOnce, Some(78)))
    );
}

#[test]
fn user_defined_fields_are_checked_only_when_asked() {
    let text = format!("{HDR}{BODY}5002=x|");
    assert_eq!(default(&text), Err((R::InvalidTagNumber, Some(5002))));
    let lax = ValidationOptions {
        user_defined_fields: false,
        ..Default::default()
    };
    assert_eq!(check(lax, &text), Ok(()));
}

#[test]
fn an_unknown_msg_type_is_invalid_with_no_ref_tag_as_quickfix_answers() {
    assert_eq!(
        default("35=ZZ|34=2|49=TW|52=20240101-10:00:00|56=ISLD|"),
        Err((R::InvalidMsgType, None))
    );
}

#[test]
fn admin_messages_are_checked_by_the_builtin_dictionary() {
    assert_eq!(
        default("35=2|34=2|49=TW|52=20240101-10:00:00|56=ISLD|7=1|"),
        Err((R::RequiredTagMissing, Some(16)))
    );
    assert_eq!(
        default("35=A|34=1|49=TW|52=20240101-10:00:00|56=ISLD|98=0|108=x|"),
        Err((R::IncorrectDataFormat, Some(108)))
    );
}
