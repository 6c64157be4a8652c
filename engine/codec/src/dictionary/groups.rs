//! Reading repeating groups, guided by the dictionary: each entry becomes a view of its
//! own fields (nested groups included), so `get` on an entry finds that entry's values.

use super::{Dictionary, GroupDef};
use crate::message::{FieldSpan, MessageRef};

/// Where the entries of `group` lie, starting right after its count field at `start`.
/// Returns `(end, entries)` with each entry as a range of field indices.
fn extent(fields: &[FieldSpan], start: usize, group: &GroupDef) -> (usize, Vec<(usize, usize)>) {
    let mut entries: Vec<(usize, usize)> = Vec::new();
    let mut i = start;
    while i < fields.len() {
        let tag = fields[i].tag;
        if tag == group.delimiter {
            if let Some(last) = entries.last_mut() {
                last.1 = i;
            }
            entries.push((i, i));
        } else if group.entry.position(tag).is_none() || entries.is_empty() {
            break;
        }
        if let Some(nested) = group.entry.group(tag) {
            i = extent(fields, i + 1, nested).0;
        } else {
            i += 1;
        }
    }
    if let Some(last) = entries.last_mut() {
        last.1 = i;
    }
    (i, entries)
}

/// The entries of `group` in `msg` (the first occurrence of its count field), each as a
/// view over the entry's fields. Empty when the group is absent or has no entries.
pub fn group_entries<'m>(msg: MessageRef<'m>, group: &GroupDef) -> Vec<MessageRef<'m>> {
    let fields = msg.fields();
    let Some(at) = fields.iter().position(|f| f.tag == group.count_tag) else {
        return Vec::new();
    };
    let (_, entries) = extent(fields, at + 1, group);
    entries
        .into_iter()
        .map(|(a, b)| MessageRef::new(msg.bytes(), &fields[a..b]))
        .collect()
}

impl Dictionary {
    /// The entries of the repeating group counted by `count_tag` in the body (or header)
    /// of `msg`, as defined for its MsgType. `None` when the dictionary has no such group
    /// for that message.
    pub fn group_entries<'m>(
        &self,
        msg: MessageRef<'m>,
        count_tag: u32,
    ) -> Option<Vec<MessageRef<'m>>> {
        let group = self
            .message(msg.msg_type())
            .and_then(|m| m.body.group(count_tag))
            .or_else(|| self.header.group(count_tag))?;
        Some(group_entries(msg, group))
    }
}

#[cfg(test)]
mod tests {
    use crate::human::encode_human;
    use crate::{Dictionary, Parser};

    const XML: &str = r#"<fix major="4" minor="4" servicepack="0">
 <header/><trailer/>
 <messages>
  <message name="TradeCaptureReport" msgtype="AE" msgcat="app">
   <field name="TradeReportID" required="Y"/>
   <group name="NoSides" required="Y">
    <field name="Side" required="Y"/><field name="OrderID" required="N"/>
    <group name="NoPartyIDs" required="N">
     <field name="PartyID" required="N"/><field name="PartyRole" required="N"/>
    </group>
    <field name="Account" required="N"/>
   </group>
   <field name="Text" required="N"/>
  </message>
 </messages>
 <fields>
  <field number="571" name="TradeReportID" type="STRING"/>
  <field number="552" name="NoSides" type="NUMINGROUP"/>
  <field number="54" name="Side" type="CHAR"/>
  <field number="37" name="OrderID" type="STRING"/>
  <field number="453" name="NoPartyIDs" type="NUMINGROUP"/>
  <field number="448" name="PartyID" type="STRING"/>
  <field number="452" name="PartyRole" type="INT"/>
  <field number="1" name="Account" type="STRING"/>
  <field number="58" name="Text" type="STRING"/>
 </fields>
</fix>"#;

    #[test]
    fn nested_group_entries_are_read_through_the_dictionary() {
        let d = Dictionary::from_xml(XML).expect("dictionary");
        let wire = encode_human(
            "35=AE|571=T1|552=2|54=1|37=O1|453=2|448=BANK|452=1|448=DESK|452=24|1=ACC1|54=2|453=1|448=CPTY|452=17|58=done|",
            "FIX.4.4",
        );
        let mut p = Parser::default();
        let msg = p.parse(&wire).expect("parse");
        let sides = d.group_entries(msg, 552).expect("group defined");
        assert_eq!(sides.len(), 2);
        assert_eq!(sides[0].get_str(37), Some("O1"));
        assert_eq!(
            sides[0].get_str(1),
            Some("ACC1"),
            "fields after a nested group stay in the entry"
        );
        assert_eq!(sides[1].get_str(37), None, "no leaking between entries");
        let def = d
            .message(b"AE")
            .and_then(|m| m.body.group(552))
            .expect("def");
        let nested = def.entry.group(453).expect("nested def");
        let parties: Vec<_> = super::group_entries(sides[0], nested)
            .iter()
            .map(|e| e.get_str(448).unwrap_or_default().to_string())
            .collect();
        assert_eq!(parties, ["BANK", "DESK"]);
        assert_eq!(super::group_entries(sides[1], nested).len(), 1);
        assert_eq!(msg.get_str(58), Some("done"));
    }
}
