//! Loading QuickFIX-format XML dictionaries.

use super::{Dictionary, FieldDef, FieldSet, FieldType, GroupDef, Member, MessageDef};
use roxmltree::{Document, Node};
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

/// Why a dictionary could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read data dictionary {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not well-formed XML.
    #[error("data dictionary is not valid XML: {0}")]
    Xml(#[from] roxmltree::Error),
    /// The XML is not a QuickFIX dictionary or refers to undefined names.
    #[error("invalid data dictionary: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> LoadError {
    LoadError::Invalid(msg.into())
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name(name))
}

fn required_attr<'a>(node: Node<'a, '_>, attr: &str) -> Result<&'a str, LoadError> {
    node.attribute(attr).ok_or_else(|| {
        let pos = node.document().text_pos_at(node.range().start);
        invalid(format!(
            "<{}> at line {} has no '{attr}' attribute",
            node.tag_name().name(),
            pos.row
        ))
    })
}

fn is_required(node: Node<'_, '_>) -> bool {
    matches!(node.attribute("required"), Some("Y" | "y"))
}

struct Loader<'a, 'i> {
    names: HashMap<String, u32>,
    components: HashMap<&'a str, Node<'a, 'i>>,
}

impl<'a, 'i> Loader<'a, 'i> {
    fn tag(&self, node: Node<'_, '_>) -> Result<u32, LoadError> {
        let name = required_attr(node, "name")?;
        self.names.get(name).copied().ok_or_else(|| {
            invalid(format!(
                "field '{name}' is used but not defined in <fields>"
            ))
        })
    }

    /// Members of a message, group or component node; components are flattened. A field
    /// inside an optional component is optional.
    fn members(
        &self,
        node: Node<'a, 'i>,
        parent_required: bool,
        depth: usize,
    ) -> Result<Vec<Member>, LoadError> {
        if depth > 32 {
            return Err(invalid("components nest more than 32 deep (a cycle?)"));
        }
        let mut out = Vec::new();
        for c in node.children().filter(Node::is_element) {
            let required = parent_required && is_required(c);
            match c.tag_name().name() {
                "field" => out.push(Member::Field {
                    tag: self.tag(c)?,
                    required,
                }),
                "group" => {
                    let entry = self.members(c, true, depth + 1)?;
                    let delimiter = entry.first().map(Member::tag).ok_or_else(|| {
                        invalid(format!(
                            "group '{}' is empty",
                            c.attribute("name").unwrap_or("?")
                        ))
                    })?;
                    out.push(Member::Group(GroupDef {
                        count_tag: self.tag(c)?,
                        required,
                        delimiter,
                        entry: FieldSet::new(entry),
                    }));
                }
                "component" => {
                    let name = required_attr(c, "name")?;
                    let comp = self.components.get(name).ok_or_else(|| {
                        invalid(format!("component '{name}' is used but not defined"))
                    })?;
                    out.extend(self.members(*comp, required, depth + 1)?);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

fn version_of(root: Node<'_, '_>) -> Result<String, LoadError> {
    let major = required_attr(root, "major")?;
    let minor = required_attr(root, "minor")?;
    let kind = root.attribute("type").unwrap_or("FIX");
    let sp = root.attribute("servicepack").unwrap_or("0");
    let mut v = format!("{kind}.{major}.{minor}");
    if sp != "0" && !sp.is_empty() {
        v.push_str("SP");
        v.push_str(sp);
    }
    Ok(v)
}

/// Field definitions by tag, and tags by name.
type FieldTables = (HashMap<u32, FieldDef>, HashMap<String, u32>);

/// Whether the dictionary is of FIX.4.0 or FIX.4.1, where `CHAR` meant a string: QuickFIX
/// checks `CHAR` as one character only from FIX.4.2 on, and its FIX40.xml / FIX41.xml
/// type SenderCompID, ClOrdID and many other strings `CHAR`.
fn char_is_a_string(root: Node<'_, '_>) -> bool {
    let number = |a: &str| root.attribute(a).and_then(|v| v.parse::<u32>().ok());
    root.attribute("type").unwrap_or("FIX") == "FIX"
        && matches!((number("major"), number("minor")), (Some(4), Some(0 | 1)))
}

fn load_fields(root: Node<'_, '_>) -> Result<FieldTables, LoadError> {
    let old_char = char_is_a_string(root);
    let mut fields = HashMap::new();
    let mut names = HashMap::new();
    let Some(section) = child(root, "fields") else {
        return Ok((fields, names));
    };
    for f in section.children().filter(|c| c.has_tag_name("field")) {
        let name = required_attr(f, "name")?;
        let number = required_attr(f, "number")?;
        let tag: u32 = number.parse().ok().filter(|t| *t > 0).ok_or_else(|| {
            invalid(format!(
                "field '{name}' has number '{number}', not a positive integer"
            ))
        })?;
        let field_type = match FieldType::from_name(required_attr(f, "type")?) {
            FieldType::Char if old_char => FieldType::String,
            other => other,
        };
        let mut values: Vec<Vec<u8>> = f
            .children()
            .filter(|c| c.has_tag_name("value"))
            .filter_map(|v| v.attribute("enum").map(|e| e.as_bytes().to_vec()))
            .collect();
        values.sort();
        values.dedup();
        names.insert(name.to_string(), tag);
        fields.insert(
            tag,
            FieldDef {
                tag,
                name: name.to_string(),
                field_type,
                values,
            },
        );
    }
    Ok((fields, names))
}

impl Dictionary {
    /// Loads a dictionary from a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_xml(&text)
    }

    /// Loads a dictionary from XML text.
    pub fn from_xml(text: &str) -> Result<Self, LoadError> {
        let doc = Document::parse(text)?;
        let root = doc.root_element();
        if !root.has_tag_name("fix") {
            return Err(invalid(format!(
                "root element is <{}>, expected <fix>",
                root.tag_name().name()
            )));
        }
        let version = version_of(root)?;
        let (fields, names) = load_fields(root)?;
        let components = child(root, "components")
            .map(|c| {
                c.children()
                    .filter(|n| n.has_tag_name("component"))
                    .filter_map(|n| n.attribute("name").map(|name| (name, n)))
                    .collect()
            })
            .unwrap_or_default();
        let loader = Loader { names, components };
        let section = |name: &str| -> Result<FieldSet, LoadError> {
            Ok(FieldSet::new(match child(root, name) {
                Some(n) => loader.members(n, true, 0)?,
                None => Vec::new(),
            }))
        };
        let header = section("header")?;
        let trailer = section("trailer")?;
        let mut messages = HashMap::new();
        if let Some(section) = child(root, "messages") {
            for m in section.children().filter(|c| c.has_tag_name("message")) {
                let msg_type = required_attr(m, "msgtype")?.as_bytes().to_vec();
                let def = MessageDef {
                    name: required_attr(m, "name")?.to_string(),
                    admin: m.attribute("msgcat") == Some("admin"),
                    body: FieldSet::new(loader.members(m, true, 0)?),
                    msg_type: msg_type.clone(),
                };
                messages.insert(msg_type, def);
            }
        }
        Ok(Dictionary {
            version,
            fields,
            names: loader.names,
            header,
            trailer,
            messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"<fix major="4" minor="2" servicepack="0">
  <header><field name="BeginString" required="Y"/><field name="MsgType" required="Y"/></header>
  <trailer><field name="CheckSum" required="Y"/></trailer>
  <messages>
    <message name="NewOrderList" msgtype="E" msgcat="app">
      <field name="ListID" required="Y"/>
      <component name="Orders" required="Y"/>
    </message>
  </messages>
  <components>
    <component name="Orders">
      <group name="NoOrders" required="Y">
        <field name="ClOrdID" required="Y"/>
        <field name="Side" required="N"/>
      </group>
    </component>
  </components>
  <fields>
    <field number="8" name="BeginString" type="STRING"/>
    <field number="35" name="MsgType" type="STRING"/>
    <field number="10" name="CheckSum" type="STRING"/>
    <field number="66" name="ListID" type="STRING"/>
    <field number="73" name="NoOrders" type="NUMINGROUP"/>
    <field number="11" name="ClOrdID" type="STRING"/>
    <field number="54" name="Side" type="CHAR"><value enum="1" description="BUY"/><value enum="2" description="SELL"/></field>
  </fields>
</fix>"#;

    #[test]
    fn components_are_flattened_and_groups_found() {
        let d = Dictionary::from_xml(SMALL).expect("loads");
        assert_eq!(d.version, "FIX.4.2");
        let m = d.message(b"E").expect("E defined");
        assert_eq!(m.name, "NewOrderList");
        let g = m.body.group(73).expect("group");
        assert_eq!(g.delimiter, 11);
        assert!(g.required);
        assert_eq!(d.field(54).map(|f| f.values.len()), Some(2));
    }

    #[test]
    fn char_is_one_character_from_fix_4_2_and_a_string_before() {
        let d = Dictionary::from_xml(SMALL).expect("loads");
        assert_eq!(d.field(54).map(|f| f.field_type), Some(FieldType::Char));
        for minor in ["0", "1"] {
            let old = SMALL.replace(r#"minor="2""#, &format!(r#"minor="{minor}""#));
            let d = Dictionary::from_xml(&old).expect("loads");
            assert_eq!(d.field(54).map(|f| f.field_type), Some(FieldType::String));
        }
    }

    #[test]
    fn undefined_field_names_are_reported_by_name() {
        let bad = SMALL.replace(
            r#"<field name="ListID" required="Y"/>"#,
            r#"<field name="Nope" required="Y"/>"#,
        );
        let err = Dictionary::from_xml(&bad)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("'Nope'"), "{err}");
    }

    #[test]
    fn a_non_fix_root_is_refused() {
        let err = Dictionary::from_xml("<foo/>")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("expected <fix>"), "{err}");
    }
}
