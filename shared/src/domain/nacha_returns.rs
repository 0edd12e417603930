//! NACHA return files: what the bank sends back about the credits of a payout file that could
//! not be delivered (returns, addenda type `99`) or were delivered with details that need
//! correcting (notifications of change, addenda type `98`).
//!
//! A return entry is a type 6 record with a return transaction code (21 for a checking credit,
//! 31 for a savings credit; 26/36 and 41–56 for other originals), the original amount and
//! individual id, and exactly one addenda record:
//!
//! | positions | return addenda (`799`)         | notification of change (`798`)  |
//! |-----------|--------------------------------|---------------------------------|
//! | 4–6       | return reason code (`R03`)     | change code (`C01`)             |
//! | 7–21      | original entry trace number    | original entry trace number     |
//! | 28–35     | original receiving DFI         | original receiving DFI          |
//! | 36–64     | (addenda information)          | corrected data                  |
//!
//! Dishonored and contested returns (R61–R77) share positions 4–21 and are read the same way.
//! Banks send the records with or without line breaks, padded to blocks of ten or not.

use super::nacha::RECORD_LEN;

/// One entry of a return file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnEntry {
    /// The 1-based record number of the entry in the file (its line, for files with breaks).
    pub record: usize,
    /// `R03`, or a change code (`C01`) for a notification of change.
    pub code: String,
    /// The trace number the entry had in the payout file.
    pub original_trace: String,
    /// Cents; 0 for a notification of change.
    pub amount: i64,
    /// The individual id of the original entry (the payee's id at the platform), trimmed.
    pub individual_id: String,
    /// For a notification of change: the corrected data, trimmed.
    pub corrected_data: Option<String>,
}

impl ReturnEntry {
    pub fn is_correction(&self) -> bool {
        self.corrected_data.is_some()
    }
}

/// Why a file could not be read: which record, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record {record}: {problem}")]
pub struct ReturnFileError {
    pub record: usize,
    pub problem: String,
}

/// Transaction codes of return and notification-of-change entries: the original's code less
/// one (22 → 21, 32 → 31, …).
const RETURN_CODES: [&str; 8] = ["21", "26", "31", "36", "41", "46", "51", "56"];

/// The entries of a return file, in file order. Anything that is not a well-formed return
/// file (a payout file uploaded by mistake, a truncated record, an entry without its addenda,
/// counts that disagree with the batch control) is refused whole, naming the record.
pub fn read_returns(text: &str) -> Result<Vec<ReturnEntry>, ReturnFileError> {
    let records = records(text)?;
    let mut entries = Vec::new();
    let mut in_batch = 0usize;
    let mut pending: Option<(usize, &str)> = None;
    for (number, record) in &records {
        let (number, record) = (*number, record.as_str());
        let fail = |problem: String| ReturnFileError {
            record: number,
            problem,
        };
        if let Some((entry, _)) = pending
            && !record.starts_with('7')
        {
            return Err(ReturnFileError {
                record: entry,
                problem: "the entry says it has an addenda record (position 79 is 1), but the next record is not one".into(),
            });
        }
        match &record[..1] {
            "1" | "5" => in_batch = 0,
            "6" => {
                let code = &record[1..3];
                if !RETURN_CODES.contains(&code) {
                    return Err(fail(format!(
                        "transaction code {code} is not a return's: this looks like a payout file, not the bank's return file"
                    )));
                }
                if &record[78..79] != "1" {
                    return Err(fail(
                        "a return entry must have its return addenda (position 79 must be 1)"
                            .into(),
                    ));
                }
                pending = Some((number, record));
                in_batch += 1;
            }
            "7" => {
                let Some((entry_record, entry)) = pending.take() else {
                    return Err(fail("an addenda record without an entry before it".into()));
                };
                let amount = digits(&entry[29..39]).ok_or_else(|| {
                    fail_at(
                        entry_record,
                        "the amount (positions 30–39) must be 10 digits",
                    )
                })?;
                let original_trace = &record[6..21];
                if digits(original_trace).is_none() {
                    return Err(fail(
                        "the original entry trace number (positions 7–21) must be 15 digits".into(),
                    ));
                }
                let code = record[3..6].to_string();
                let corrected_data = match &record[1..3] {
                    "99" if is_code(&code, b'R') => None,
                    "98" if is_code(&code, b'C') => Some(record[35..64].trim().to_string()),
                    "99" | "98" => {
                        return Err(fail(format!(
                            "{code:?} (positions 4–6) is not a return reason or change code"
                        )));
                    }
                    other => {
                        return Err(fail(format!(
                            "addenda type {other} is neither a return (99) nor a notification of change (98)"
                        )));
                    }
                };
                entries.push(ReturnEntry {
                    record: entry_record,
                    code,
                    original_trace: original_trace.to_string(),
                    amount: amount as i64,
                    individual_id: entry[39..54].trim().to_string(),
                    corrected_data,
                });
                in_batch += 1;
            }
            "8" => {
                let counted = digits(&record[4..10]).ok_or_else(|| {
                    fail("the entry/addenda count (positions 5–10) must be 6 digits".into())
                })?;
                if counted as usize != in_batch {
                    return Err(fail(format!(
                        "the batch control counts {counted} entries and addenda, the batch has {in_batch}: the file is incomplete"
                    )));
                }
                in_batch = 0;
            }
            "9" => {}
            other => {
                return Err(fail(format!(
                    "record type {other:?} is not a NACHA record (1, 5, 6, 7, 8 or 9)"
                )));
            }
        }
    }
    if let Some((entry, _)) = pending {
        return Err(fail_at(
            entry,
            "the file ends before the entry's addenda record",
        ));
    }
    if entries.is_empty() {
        return Err(fail_at(0, "the file holds no return entries"));
    }
    Ok(entries)
}

fn fail_at(record: usize, problem: &str) -> ReturnFileError {
    ReturnFileError {
        record,
        problem: problem.into(),
    }
}

/// The file's 94-character records with their 1-based numbers: one a line, or run together
/// without breaks. Banks' files are not all tidy: a line cut short of 94 (trailing blanks
/// lost) is padded with blanks again, and blocking padding (all 9s) is counted but not
/// answered.
fn records(text: &str) -> Result<Vec<(usize, String)>, ReturnFileError> {
    let mut records = Vec::new();
    let mut number = 0;
    for line in text.split(['\n', '\r']) {
        if line.trim().is_empty() {
            continue;
        }
        if !line.is_ascii() {
            return Err(fail_at(number + 1, "NACHA records are ASCII text"));
        }
        if line.len() > RECORD_LEN && !line.len().is_multiple_of(RECORD_LEN) {
            return Err(fail_at(
                number + 1,
                &format!(
                    "a record is {RECORD_LEN} characters, this line {}",
                    line.len()
                ),
            ));
        }
        for start in (0..line.len()).step_by(RECORD_LEN) {
            number += 1;
            let record = &line[start..line.len().min(start + RECORD_LEN)];
            if !record.bytes().all(|b| b == b'9') {
                records.push((number, format!("{record:<RECORD_LEN$}")));
            }
        }
    }
    Ok(records)
}

fn digits(field: &str) -> Option<u64> {
    field
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| field.parse().ok())
        .flatten()
}

fn is_code(code: &str, letter: u8) -> bool {
    let bytes = code.as_bytes();
    bytes.len() == 3 && bytes[0] == letter && bytes[1..].iter().all(u8::is_ascii_digit)
}

/// What a return reason code means, in NACHA's words (shortened).
pub fn reason(code: &str) -> &'static str {
    match code {
        "R01" => "insufficient funds",
        "R02" => "account closed",
        "R03" => "no account, or unable to locate the account",
        "R04" => "invalid account number structure",
        "R05" => "unauthorized debit to a consumer account using a corporate SEC code",
        "R06" => "returned at the originating bank's request",
        "R07" => "authorization revoked by the customer",
        "R08" => "payment stopped",
        "R09" => "uncollected funds",
        "R10" => "the customer advises the originator is not known or not authorized",
        "R11" => "the customer advises the entry is not in accordance with the authorization",
        "R12" => "account sold to another bank",
        "R13" => "invalid ACH routing number",
        "R14" => "representative payee deceased or unable to continue in that capacity",
        "R15" => "beneficiary or account holder deceased",
        "R16" => "account frozen, or entry returned per OFAC instruction",
        "R17" => {
            "file record edit criteria, or invalid account number under questionable circumstances"
        }
        "R18" => "improper effective entry date",
        "R19" => "amount field error",
        "R20" => "non-transaction account",
        "R21" => "invalid company identification",
        "R22" => "invalid individual id number",
        "R23" => "credit entry refused by the receiver",
        "R24" => "duplicate entry",
        "R25" => "addenda error",
        "R26" => "mandatory field error",
        "R27" => "trace number error",
        "R28" => "routing number check digit error",
        "R29" => "the corporate customer advises not authorized",
        "R31" => "permissible return entry",
        "R33" => "return of XCK entry",
        "R34" => "limited participation bank",
        "R35" => "return of improper debit entry",
        "R36" => "return of improper credit entry",
        "R61" => "misrouted return",
        "R62" => "return of erroneous or reversing debit",
        "R67" => "duplicate return",
        "R68" => "untimely return",
        "R69" => "field errors",
        "R70" => {
            "permissible return entry not accepted, or return not requested by the originating bank"
        }
        "R71" => "misrouted dishonored return",
        "R72" => "untimely dishonored return",
        "R73" => "timely original return",
        "R74" => "corrected return",
        "R75" => "return not a duplicate",
        "R76" => "no errors found",
        "R77" => "non-acceptance of R62 dishonored return",
        "R80" | "R81" | "R82" | "R83" | "R84" | "R85" => "international (IAT) entry return",
        _ => "return reason not known to LeadsRefer",
    }
}

/// Whether a return says the account itself cannot take payments (closed, not found, invalid,
/// moved, frozen, its holder deceased, not a transaction account, refused): paying it again
/// would only come back, so the payout method stops until the payee gives another.
pub fn account_unusable(code: &str) -> bool {
    matches!(
        code,
        "R02" | "R03" | "R04" | "R12" | "R13" | "R14" | "R15" | "R16" | "R17" | "R20" | "R23"
    )
}

/// Whether a code is a dishonored or contested dishonored return (R61–R77): a dispute between
/// the banks about an earlier return, which an operator settles with the bank rather than the
/// ledger following it on its own.
pub fn is_dispute(code: &str) -> bool {
    code.len() == 3
        && code.starts_with('R')
        && code[1..]
            .parse::<u8>()
            .is_ok_and(|n| (61..=77).contains(&n))
}

/// What a change code asks to correct, in NACHA's words (shortened).
pub fn change(code: &str) -> &'static str {
    match code {
        "C01" => "incorrect account number",
        "C02" => "incorrect routing number",
        "C03" => "incorrect routing number and account number",
        "C05" => "incorrect transaction code (checking or savings)",
        "C06" => "incorrect account number and transaction code",
        "C07" => "incorrect routing number, account number and transaction code",
        "C09" => "incorrect individual id number",
        "C13" => "addenda format error",
        "C14" => "incorrect SEC code for outbound international payment",
        _ => "a change the bank asks for",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record from its fields, each at its 1-based position, blanks between.
    fn record(fields: &[(usize, &str)]) -> String {
        let mut line = vec![b' '; RECORD_LEN];
        for (position, text) in fields {
            line[position - 1..position - 1 + text.len()].copy_from_slice(text.as_bytes());
        }
        String::from_utf8(line).unwrap()
    }

    fn entry(code: &str, amount: &str, individual: &str) -> String {
        record(&[
            (1, "6"),
            (2, code),
            (4, "02100002"),
            (12, "1"),
            (13, "000123456789"),
            (30, amount),
            (40, individual),
            (55, "ZOE OBRIEN"),
            (79, "1"),
            (80, "091000010000001"),
        ])
    }

    fn addenda(kind: &str, code: &str, trace: &str, corrected: &str) -> String {
        record(&[
            (1, "7"),
            (2, kind),
            (4, code),
            (7, trace),
            (28, "02100002"),
            (36, corrected),
            (80, "091000010000001"),
        ])
    }

    fn batch(records: &[String]) -> Vec<String> {
        let count = records.len();
        let mut all = vec![record(&[(1, "5220"), (51, "PPD")])];
        all.extend_from_slice(records);
        all.push(record(&[(1, "8220"), (5, &format!("{count:06}"))]));
        all
    }

    #[test]
    fn returns_and_changes_are_read_with_their_original_traces() {
        let mut lines = vec![record(&[(1, "101")])];
        lines.extend(batch(&[
            entry("21", "0000005000", "01KB4ZJ6Y0E5V2X"),
            addenda("99", "R03", "021000020000007", ""),
            entry("31", "0000000000", "01KB4ZJ6Y0E5V2Y"),
            addenda("98", "C01", "021000020000008", "12345678901"),
        ]));
        lines.push(record(&[(1, "9")]));
        lines.push("9".repeat(RECORD_LEN));
        let entries = read_returns(&lines.join("\r\n")).unwrap();
        assert_eq!(
            entries,
            [
                ReturnEntry {
                    record: 3,
                    code: "R03".into(),
                    original_trace: "021000020000007".into(),
                    amount: 5_000,
                    individual_id: "01KB4ZJ6Y0E5V2X".into(),
                    corrected_data: None,
                },
                ReturnEntry {
                    record: 5,
                    code: "C01".into(),
                    original_trace: "021000020000008".into(),
                    amount: 0,
                    individual_id: "01KB4ZJ6Y0E5V2Y".into(),
                    corrected_data: Some("12345678901".into()),
                }
            ]
        );
        // The same records run together without line breaks read the same, and so do lines
        // that lost their trailing blanks.
        assert_eq!(read_returns(&lines.concat()).unwrap(), entries);
        let trimmed: Vec<&str> = lines.iter().map(|line| line.trim_end()).collect();
        assert_eq!(read_returns(&trimmed.join("\n")).unwrap(), entries);
    }

    #[test]
    fn anything_but_a_whole_return_file_is_refused_naming_the_record() {
        let refused = |lines: Vec<String>| read_returns(&lines.join("\n")).unwrap_err();
        let ok_entry = entry("21", "0000005000", "A");
        let ok_addenda = addenda("99", "R02", "021000020000001", "");
        // A payout file's credit.
        let error = refused(batch(&[entry("22", "0000005000", "A"), ok_addenda.clone()]));
        assert_eq!(error.record, 2);
        assert!(error.problem.contains("payout file"), "{error}");
        // An entry without its addenda.
        let error = refused(batch(std::slice::from_ref(&ok_entry)));
        assert_eq!(error.record, 2);
        // The batch control counts more than the batch holds.
        let mut lines = batch(&[ok_entry.clone(), ok_addenda.clone()]);
        lines[3] = record(&[(1, "8220"), (5, "000004")]);
        assert!(refused(lines).problem.contains("incomplete"));
        // Two records and a bit on one line.
        let mut lines = batch(&[ok_entry.clone(), ok_addenda.clone()]);
        lines[1] = format!("{}{}x", lines[1], lines[2]);
        lines.remove(2);
        assert_eq!(
            refused(lines).problem,
            "a record is 94 characters, this line 189"
        );
        // Not a reason code; not digits.
        assert!(
            refused(batch(&[
                ok_entry.clone(),
                addenda("99", "X03", "021000020000001", "")
            ]))
            .problem
            .contains("positions 4–6")
        );
        assert!(
            refused(batch(&[
                ok_entry.clone(),
                addenda("99", "R03", "02100002000000A", "")
            ]))
            .problem
            .contains("positions 7–21")
        );
        assert!(
            refused(batch(&[entry("21", "00000050x0", "A"), ok_addenda]))
                .problem
                .contains("positions 30–39")
        );
        assert_eq!(
            read_returns("").unwrap_err().problem,
            "the file holds no return entries"
        );
    }

    #[test]
    fn codes_say_which_returns_stop_the_account_and_which_are_disputes() {
        for code in ["R02", "R03", "R04", "R16", "R20", "R23"] {
            assert!(account_unusable(code), "{code}");
        }
        for code in ["R01", "R06", "R24", "R61"] {
            assert!(!account_unusable(code), "{code}");
        }
        assert!(is_dispute("R61") && is_dispute("R77"));
        assert!(!is_dispute("R60") && !is_dispute("R80") && !is_dispute("C01"));
        assert_eq!(reason("R03"), "no account, or unable to locate the account");
    }
}
