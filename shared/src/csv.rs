//! RFC 4180 CSV, the one writer for every file and export: fields with commas, quotes or line
//! breaks are quoted, and text a spreadsheet would run as a formula is defused.

/// Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a
/// leading `'` (OWASP's CSV injection advice). Numbers we write ourselves need not pass here.
pub fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// Appends one record, ended by CRLF.
pub fn push_record(out: &mut String, fields: impl Iterator<Item = String>) {
    for (index, field) in fields.enumerate() {
        if index > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_needs_quoting_and_defuses_formulas() {
        let mut out = String::new();
        push_record(
            &mut out,
            ["a,b", "say \"hi\"", "plain", &defuse("=1+1")]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(out, "\"a,b\",\"say \"\"hi\"\"\",plain,'=1+1\r\n");
    }
}
