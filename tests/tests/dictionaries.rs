//! Every QuickFIX data dictionary (FIX.4.0 – FIX.5.0SP2, FIXT.1.1) loads, and for every
//! message it defines, a message carrying exactly its required fields validates.

use fix_codec::dictionary::{FieldType, Member, ValidationOptions, Validator};
use fix_codec::human::encode_human;
use fix_codec::{Dictionary, Parser};
use fix_e2e::interop::dictionary_dir;

fn value_for(d: &Dictionary, tag: u32) -> Option<String> {
    let f = d.field(tag)?;
    if let Some(first) = f.values.first() {
        return Some(String::from_utf8_lossy(first).into_owned());
    }
    Some(
        match f.field_type {
            FieldType::Int => "1",
            FieldType::Float => "1.5",
            FieldType::Char => "A",
            FieldType::Boolean => "Y",
            FieldType::UtcTimestamp => "20240102-03:04:05.678",
            FieldType::UtcTimeOnly => "03:04:05",
            FieldType::Date => "20240102",
            FieldType::MonthYear => "202401",
            FieldType::MultipleValue | FieldType::String => "X",
            FieldType::Data => return None,
        }
        .to_string(),
    )
}

/// `tag=value|` for every required member. A required group gets as many entries as its
/// count field's first allowed value (1 when unrestricted), each with the delimiter and the
/// entry's required fields.
fn required_fields(d: &Dictionary, members: &[Member], skip: &[u32]) -> Option<String> {
    let mut out = String::new();
    for m in members
        .iter()
        .filter(|m| m.required() && !skip.contains(&m.tag()))
    {
        match m {
            Member::Field { tag, .. } => out.push_str(&format!("{tag}={}|", value_for(d, *tag)?)),
            Member::Group(g) => {
                let count: usize = d
                    .field(g.count_tag)
                    .and_then(|f| f.values.first())
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(1);
                out.push_str(&format!("{}={count}|", g.count_tag));
                for _ in 0..count {
                    let delimiter = match &g.entry.members[0] {
                        Member::Field { tag, .. } => format!("{tag}={}|", value_for(d, *tag)?),
                        Member::Group(inner) => format!("{}=0|", inner.count_tag),
                    };
                    out.push_str(&delimiter);
                    out.push_str(&required_fields(d, &g.entry.members, &[g.delimiter])?);
                }
            }
        }
    }
    Some(out)
}

fn check_version(app_file: &str, transport_file: Option<&str>, begin: &str, min_messages: usize) {
    let dir = dictionary_dir();
    let app =
        Dictionary::from_file(dir.join(app_file)).unwrap_or_else(|e| panic!("{app_file}: {e}"));
    let transport = match transport_file {
        Some(t) => Dictionary::from_file(dir.join(t)).unwrap_or_else(|e| panic!("{t}: {e}")),
        None => app.clone(),
    };
    let header =
        required_fields(&transport, &transport.header.members, &[8, 9, 35]).expect("header values");
    let mut validator = Validator::new(ValidationOptions::default());
    let mut parser = Parser::default();
    let mut checked = 0;
    for def in app.messages() {
        let Some(body) = required_fields(&app, &def.body.members, &[]) else {
            continue; // a required DATA field needs its length partner; not generated here
        };
        let text = format!(
            "35={}|{header}{body}",
            String::from_utf8_lossy(&def.msg_type)
        );
        let wire = encode_human(&text, begin);
        let msg = parser
            .parse(&wire)
            .unwrap_or_else(|e| panic!("{app_file} {}: {e}", def.name));
        if let Err(r) = validator.validate(&transport, Some(&app), msg) {
            panic!("{app_file}: {} ({text}) was refused: {r}", def.name);
        }
        checked += 1;
    }
    assert!(
        checked >= min_messages,
        "{app_file}: only {checked} messages checked"
    );
    println!("{app_file}: {checked} message types validated");
}

#[test]
fn every_quickfix_dictionary_loads_and_validates_its_own_messages() {
    check_version("FIX40.xml", None, "FIX.4.0", 20);
    check_version("FIX41.xml", None, "FIX.4.1", 25);
    check_version("FIX42.xml", None, "FIX.4.2", 40);
    check_version("FIX43.xml", None, "FIX.4.3", 60);
    check_version("FIX44.xml", None, "FIX.4.4", 80);
    check_version("FIX50.xml", Some("FIXT11.xml"), "FIXT.1.1", 80);
    check_version("FIX50SP1.xml", Some("FIXT11.xml"), "FIXT.1.1", 90);
    check_version("FIX50SP2.xml", Some("FIXT11.xml"), "FIXT.1.1", 100);
}
