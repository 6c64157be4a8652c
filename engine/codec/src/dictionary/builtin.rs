//! Session-level dictionaries built into the engine, so a session runs without any
//! dictionary file. They define the standard header and trailer and the admin messages
//! (Heartbeat, TestRequest, ResendRequest, Reject, SequenceReset, Logout, Logon).

use super::Dictionary;

/// The session-level part of every FIX version, in QuickFIX dictionary format.
const SESSION_XML: &str = r#"<fix type="KIND" major="MAJOR" minor="MINOR" servicepack="0">
 <header>
  <field name="BeginString" required="Y"/><field name="BodyLength" required="Y"/>
  <field name="MsgType" required="Y"/><field name="SenderCompID" required="Y"/>
  <field name="TargetCompID" required="Y"/><field name="OnBehalfOfCompID" required="N"/>
  <field name="DeliverToCompID" required="N"/><field name="SecureDataLen" required="N"/>
  <field name="SecureData" required="N"/><field name="MsgSeqNum" required="Y"/>
  <field name="SenderSubID" required="N"/><field name="SenderLocationID" required="N"/>
  <field name="TargetSubID" required="N"/><field name="TargetLocationID" required="N"/>
  <field name="OnBehalfOfSubID" required="N"/><field name="OnBehalfOfLocationID" required="N"/>
  <field name="DeliverToSubID" required="N"/><field name="DeliverToLocationID" required="N"/>
  <field name="PossDupFlag" required="N"/><field name="PossResend" required="N"/>
  <field name="SendingTime" required="Y"/><field name="OrigSendingTime" required="N"/>
  <field name="XmlDataLen" required="N"/><field name="XmlData" required="N"/>
  <field name="MessageEncoding" required="N"/><field name="LastMsgSeqNumProcessed" required="N"/>
  <group name="NoHops" required="N">
   <field name="HopCompID" required="N"/><field name="HopSendingTime" required="N"/>
   <field name="HopRefID" required="N"/>
  </group>
  <field name="ApplVerID" required="N"/><field name="CstmApplVerID" required="N"/>
 </header>
 <trailer>
  <field name="SignatureLength" required="N"/><field name="Signature" required="N"/>
  <field name="CheckSum" required="Y"/>
 </trailer>
 <messages>
  <message name="Heartbeat" msgtype="0" msgcat="admin"><field name="TestReqID" required="N"/></message>
  <message name="TestRequest" msgtype="1" msgcat="admin"><field name="TestReqID" required="Y"/></message>
  <message name="ResendRequest" msgtype="2" msgcat="admin">
   <field name="BeginSeqNo" required="Y"/><field name="EndSeqNo" required="Y"/>
  </message>
  <message name="Reject" msgtype="3" msgcat="admin">
   <field name="RefSeqNum" required="Y"/><field name="RefTagID" required="N"/>
   <field name="RefMsgType" required="N"/><field name="SessionRejectReason" required="N"/>
   <field name="Text" required="N"/><field name="EncodedTextLen" required="N"/>
   <field name="EncodedText" required="N"/>
  </message>
  <message name="SequenceReset" msgtype="4" msgcat="admin">
   <field name="GapFillFlag" required="N"/><field name="NewSeqNo" required="Y"/>
  </message>
  <message name="Logout" msgtype="5" msgcat="admin">
   <field name="SessionStatus" required="N"/><field name="Text" required="N"/>
   <field name="EncodedTextLen" required="N"/><field name="EncodedText" required="N"/>
  </message>
  <message name="Logon" msgtype="A" msgcat="admin">
   <field name="EncryptMethod" required="Y"/><field name="HeartBtInt" required="Y"/>
   <field name="RawDataLength" required="N"/><field name="RawData" required="N"/>
   <field name="ResetSeqNumFlag" required="N"/><field name="NextExpectedMsgSeqNum" required="N"/>
   <field name="MaxMessageSize" required="N"/>
   <group name="NoMsgTypes" required="N">
    <field name="RefMsgType" required="N"/><field name="MsgDirection" required="N"/>
   </group>
   <field name="TestMessageIndicator" required="N"/><field name="Username" required="N"/>
   <field name="Password" required="N"/><field name="NewPassword" required="N"/>
   <field name="EncryptedPasswordMethod" required="N"/><field name="SessionStatus" required="N"/>
   <field name="DefaultApplVerID" required="DEFAULT_APPL_VER_ID_REQUIRED"/>
   <field name="DefaultApplExtID" required="N"/><field name="DefaultCstmApplVerID" required="N"/>
   <field name="Text" required="N"/>
  </message>
 </messages>
 <fields>
  <field number="7" name="BeginSeqNo" type="SEQNUM"/>
  <field number="8" name="BeginString" type="STRING"/>
  <field number="9" name="BodyLength" type="LENGTH"/>
  <field number="10" name="CheckSum" type="STRING"/>
  <field number="16" name="EndSeqNo" type="SEQNUM"/>
  <field number="34" name="MsgSeqNum" type="SEQNUM"/>
  <field number="35" name="MsgType" type="STRING"/>
  <field number="36" name="NewSeqNo" type="SEQNUM"/>
  <field number="43" name="PossDupFlag" type="BOOLEAN"/>
  <field number="45" name="RefSeqNum" type="SEQNUM"/>
  <field number="49" name="SenderCompID" type="STRING"/>
  <field number="50" name="SenderSubID" type="STRING"/>
  <field number="52" name="SendingTime" type="UTCTIMESTAMP"/>
  <field number="56" name="TargetCompID" type="STRING"/>
  <field number="57" name="TargetSubID" type="STRING"/>
  <field number="58" name="Text" type="STRING"/>
  <field number="89" name="Signature" type="DATA"/>
  <field number="90" name="SecureDataLen" type="LENGTH"/>
  <field number="91" name="SecureData" type="DATA"/>
  <field number="93" name="SignatureLength" type="LENGTH"/>
  <field number="95" name="RawDataLength" type="LENGTH"/>
  <field number="96" name="RawData" type="DATA"/>
  <field number="97" name="PossResend" type="BOOLEAN"/>
  <field number="98" name="EncryptMethod" type="INT"/>
  <field number="108" name="HeartBtInt" type="INT"/>
  <field number="112" name="TestReqID" type="STRING"/>
  <field number="115" name="OnBehalfOfCompID" type="STRING"/>
  <field number="116" name="OnBehalfOfSubID" type="STRING"/>
  <field number="122" name="OrigSendingTime" type="UTCTIMESTAMP"/>
  <field number="123" name="GapFillFlag" type="BOOLEAN"/>
  <field number="128" name="DeliverToCompID" type="STRING"/>
  <field number="129" name="DeliverToSubID" type="STRING"/>
  <field number="141" name="ResetSeqNumFlag" type="BOOLEAN"/>
  <field number="142" name="SenderLocationID" type="STRING"/>
  <field number="143" name="TargetLocationID" type="STRING"/>
  <field number="144" name="OnBehalfOfLocationID" type="STRING"/>
  <field number="145" name="DeliverToLocationID" type="STRING"/>
  <field number="212" name="XmlDataLen" type="LENGTH"/>
  <field number="213" name="XmlData" type="DATA"/>
  <field number="347" name="MessageEncoding" type="STRING"/>
  <field number="354" name="EncodedTextLen" type="LENGTH"/>
  <field number="355" name="EncodedText" type="DATA"/>
  <field number="369" name="LastMsgSeqNumProcessed" type="SEQNUM"/>
  <field number="371" name="RefTagID" type="INT"/>
  <field number="372" name="RefMsgType" type="STRING"/>
  <field number="373" name="SessionRejectReason" type="INT"/>
  <field number="383" name="MaxMessageSize" type="LENGTH"/>
  <field number="384" name="NoMsgTypes" type="NUMINGROUP"/>
  <field number="385" name="MsgDirection" type="CHAR"><value enum="S"/><value enum="R"/></field>
  <field number="464" name="TestMessageIndicator" type="BOOLEAN"/>
  <field number="553" name="Username" type="STRING"/>
  <field number="554" name="Password" type="STRING"/>
  <field number="627" name="NoHops" type="NUMINGROUP"/>
  <field number="628" name="HopCompID" type="STRING"/>
  <field number="629" name="HopSendingTime" type="UTCTIMESTAMP"/>
  <field number="630" name="HopRefID" type="SEQNUM"/>
  <field number="789" name="NextExpectedMsgSeqNum" type="SEQNUM"/>
  <field number="925" name="NewPassword" type="STRING"/>
  <field number="1128" name="ApplVerID" type="STRING"/>
  <field number="1129" name="CstmApplVerID" type="STRING"/>
  <field number="1137" name="DefaultApplVerID" type="STRING"/>
  <field number="1400" name="EncryptedPasswordMethod" type="INT"/>
  <field number="1407" name="DefaultApplExtID" type="INT"/>
  <field number="1408" name="DefaultCstmApplVerID" type="STRING"/>
  <field number="1409" name="SessionStatus" type="INT"/>
 </fields>
</fix>"#;

/// The built-in session-level dictionary for a BeginString (`FIX.4.0` … `FIX.4.4`,
/// `FIXT.1.1`). Returns `None` for a BeginString the engine does not speak.
pub fn session_dictionary(begin_string: &str) -> Option<Dictionary> {
    let (kind, major, minor) = match begin_string {
        "FIX.4.0" => ("FIX", "4", "0"),
        "FIX.4.1" => ("FIX", "4", "1"),
        "FIX.4.2" => ("FIX", "4", "2"),
        "FIX.4.3" => ("FIX", "4", "3"),
        "FIX.4.4" => ("FIX", "4", "4"),
        "FIXT.1.1" => ("FIXT", "1", "1"),
        _ => return None,
    };
    let xml = SESSION_XML
        .replace("KIND", kind)
        .replace("MAJOR", major)
        .replace("MINOR", minor)
        .replace(
            "DEFAULT_APPL_VER_ID_REQUIRED",
            if kind == "FIXT" { "Y" } else { "N" },
        );
    Dictionary::from_xml(&xml).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_has_a_session_dictionary() {
        for v in [
            "FIX.4.0", "FIX.4.1", "FIX.4.2", "FIX.4.3", "FIX.4.4", "FIXT.1.1",
        ] {
            let d = session_dictionary(v).unwrap_or_else(|| panic!("{v}"));
            assert_eq!(d.version, v);
            for t in [b"0", b"1", b"2", b"3", b"4", b"5", b"A"] {
                assert!(d.message(t).is_some_and(|m| m.admin), "{v} {t:?}");
            }
        }
        assert!(session_dictionary("FIX.9.9").is_none());
    }

    #[test]
    fn fixt_requires_default_appl_ver_id_on_logon() {
        let d = session_dictionary("FIXT.1.1").expect("fixt");
        let logon = d.message(b"A").expect("logon");
        let pos = logon.body.position(1137).expect("1137");
        assert!(logon.body.members[pos].required());
    }
}
