//! NACHA ACH files of credits (payouts), as banks take them for upload: 94-character records
//! (1 file header, 5 batch header, 6 entries, 8 batch control, 9 file control), padded with
//! all-9 records to a multiple of 10 (blocking factor 10). A PPD batch for people's accounts
//! and a CCD batch for companies', service class 220 (credits only); transaction code 22
//! (checking) or 32 (savings). Entry hash = the sum of the entries' 8-digit receiving routing
//! numbers, its rightmost 10 digits.

use jiff::civil::DateTime;

use super::payout::{AccountHolder, AccountType, RoutingNumber};

pub const RECORD_LEN: usize = 94;
pub const BLOCKING_FACTOR: usize = 10;

/// Who sends the file: the platform's bank relationship (configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Originator {
    /// The bank the file goes to (immediate destination) and its name.
    pub destination_routing: RoutingNumber,
    pub destination_name: String,
    /// The platform's identification at that bank (10 characters, often "1" + EIN).
    pub company_id: String,
    pub company_name: String,
    /// The originating bank (ODFI): its routing number's first 8 digits start every trace number.
    pub origin_routing: RoutingNumber,
}

/// One credit to one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credit {
    pub routing: RoutingNumber,
    pub account_number: String,
    pub account_type: AccountType,
    /// A person's account (PPD) or a company's (CCD).
    pub holder: AccountHolder,
    /// Cents; positive.
    pub amount: i64,
    /// The payee's id at the platform (up to 15 characters).
    pub individual_id: String,
    pub name: String,
}

/// A field of `width` characters: upper-case printable ASCII (anything else becomes a space),
/// left-justified and space-padded, cut to fit.
fn text(value: &str, width: usize) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c.to_ascii_uppercase()
            } else {
                ' '
            }
        })
        .take(width)
        .collect();
    format!("{cleaned:<width$}")
}

/// A number right-justified and zero-padded to `width` digits.
fn number(value: u64, width: usize) -> String {
    let digits = value.to_string();
    let digits = &digits[digits.len().saturating_sub(width)..];
    format!("{digits:0>width$}")
}

/// The file, with `\n` after each record. `created` is the file's creation time; entries
/// settle on `effective` (YYMMDD). Trace numbers are the ODFI's 8 digits and a 7-digit
/// sequence counted on from `first_trace` in file order (so that an installation that gives
/// each file its own range never repeats one, and a bank's return names one payout); they are
/// answered in the order of `credits`.
pub fn credits_file(
    originator: &Originator,
    credits: &[Credit],
    created: DateTime,
    effective: jiff::civil::Date,
    file_id_modifier: char,
    first_trace: u64,
) -> (String, Vec<String>) {
    let odfi = &originator.origin_routing.as_str()[..8];
    let mut records = vec![format!(
        "101 {}{}{}{}{}094101{}{}{}",
        originator.destination_routing.as_str(),
        text(&originator.company_id, 10),
        created.strftime("%y%m%d"),
        created.strftime("%H%M"),
        file_id_modifier.to_ascii_uppercase(),
        text(&originator.destination_name, 23),
        text(&originator.company_name, 23),
        text("", 8),
    )];
    let mut traces = vec![String::new(); credits.len()];
    let (mut batches, mut file_hash, mut file_total, mut file_count) = (0u64, 0u64, 0u64, 0u64);
    let mut sequence = 0u64;
    for (holder, sec) in [
        (AccountHolder::Individual, "PPD"),
        (AccountHolder::Company, "CCD"),
    ] {
        let entries: Vec<(usize, &Credit)> = credits
            .iter()
            .enumerate()
            .filter(|(_, credit)| credit.holder == holder)
            .collect();
        if entries.is_empty() {
            continue;
        }
        batches += 1;
        records.push(format!(
            "5220{}{}{}{sec}{}{}{}   1{}{}",
            text(&originator.company_name, 16),
            text("", 20),
            text(&originator.company_id, 10),
            text("PAYOUT", 10),
            created.strftime("%y%m%d"),
            effective.strftime("%y%m%d"),
            odfi,
            number(batches, 7),
        ));
        let (mut hash, mut total) = (0u64, 0u64);
        for (index, credit) in &entries {
            let routing = credit.routing.as_str();
            hash += routing[..8]
                .parse::<u64>()
                .expect("routing numbers are digits");
            total += credit.amount.max(0) as u64;
            let trace = format!("{odfi}{}", number(first_trace + sequence, 7));
            sequence += 1;
            let code = match credit.account_type {
                AccountType::Checking => "22",
                AccountType::Savings => "32",
            };
            // CCD names the receiving company; PPD the person.
            records.push(format!(
                "6{code}{routing}{}{}{}{}  0{trace}",
                text(&credit.account_number, 17),
                number(credit.amount.max(0) as u64, 10),
                text(&credit.individual_id, 15),
                text(&credit.name, 22),
            ));
            traces[*index] = trace;
        }
        let count = entries.len() as u64;
        records.push(format!(
            "8220{}{}{}{}{}{}{}{}",
            number(count, 6),
            number(hash % 10_000_000_000, 10),
            number(0, 12),
            number(total, 12),
            text(&originator.company_id, 10),
            text("", 25),
            odfi,
            number(batches, 7),
        ));
        file_hash += hash;
        file_total += total;
        file_count += count;
    }
    let with_control = records.len() + 1;
    let blocks = with_control.div_ceil(BLOCKING_FACTOR);
    records.push(format!(
        "9{}{}{}{}{}{}{}",
        number(batches, 6),
        number(blocks as u64, 6),
        number(file_count, 8),
        number(file_hash % 10_000_000_000, 10),
        number(0, 12),
        number(file_total, 12),
        text("", 39),
    ));
    while records.len() % BLOCKING_FACTOR != 0 {
        records.push("9".repeat(RECORD_LEN));
    }
    debug_assert!(records.iter().all(|r| r.len() == RECORD_LEN));
    let mut file = records.join("\n");
    file.push('\n');
    (file, traces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn originator() -> Originator {
        Originator {
            destination_routing: RoutingNumber::parse("021000021").unwrap(),
            destination_name: "JPMORGAN CHASE".into(),
            company_id: "1234567890".into(),
            company_name: "LeadsRefer".into(),
            origin_routing: RoutingNumber::parse("021000021").unwrap(),
        }
    }

    fn credit(routing: &str, amount: i64, kind: AccountType) -> Credit {
        Credit {
            routing: RoutingNumber::parse(routing).unwrap(),
            account_number: "000123456789".into(),
            account_type: kind,
            holder: AccountHolder::Individual,
            amount,
            individual_id: "01KB4ZJ6Y0E5V2".into(),
            name: "Zoë O'Brien-Smith Jr. the Third".into(),
        }
    }

    #[test]
    fn records_are_94_characters_blocked_by_ten_with_correct_controls() {
        let credits = [
            credit("021000021", 5_000, AccountType::Checking),
            credit("111000025", 12_345, AccountType::Savings),
        ];
        let created = jiff::civil::date(2026, 11, 30).at(6, 0, 0, 0);
        let (file, traces) = credits_file(
            &originator(),
            &credits,
            created,
            jiff::civil::date(2026, 12, 1),
            'A',
            1,
        );
        let records: Vec<&str> = file.lines().collect();
        assert_eq!(records.len(), 10, "6 records padded to a block of 10");
        assert!(records.iter().all(|r| r.len() == RECORD_LEN));
        assert_eq!(&records[0][..13], "101 021000021");
        assert_eq!(&records[1][..4], "5220");
        assert_eq!(&records[1][50..53], "PPD");
        assert_eq!(&records[2][..12], "622021000021");
        assert_eq!(&records[3][..12], "632111000025");
        assert_eq!(&records[2][29..39], "0000005000");
        // Entry hash: 02100002 + 11100002 = 13200004.
        assert_eq!(&records[4][10..20], "0013200004");
        assert_eq!(&records[4][32..44], "000000017345");
        assert_eq!(&records[5][..7], "9000001");
        assert_eq!(&records[5][7..13], "000001", "one block");
        assert!(records[6..].iter().all(|r| *r == "9".repeat(94)));
        assert_eq!(traces, ["021000020000001", "021000020000002"]);
        assert_eq!(
            &records[2][54..76],
            "ZO  O'BRIEN-SMITH JR. ",
            "upper-case ASCII, cut to 22"
        );
    }

    #[test]
    fn people_and_companies_get_a_batch_each_with_the_file_totals_over_both() {
        let mut company = credit("111000025", 20_000, AccountType::Checking);
        company.holder = AccountHolder::Company;
        let credits = [company, credit("021000021", 5_000, AccountType::Checking)];
        let created = jiff::civil::date(2026, 11, 30).at(6, 0, 0, 0);
        let (file, traces) = credits_file(
            &originator(),
            &credits,
            created,
            jiff::civil::date(2026, 12, 1),
            'A',
            1,
        );
        let records: Vec<&str> = file.lines().collect();
        assert_eq!(records.len(), 10);
        assert_eq!(&records[1][50..53], "PPD");
        assert_eq!(&records[1][87..94], "0000001");
        assert_eq!(&records[4][50..53], "CCD");
        assert_eq!(&records[4][87..94], "0000002");
        assert_eq!(&records[7][1..7], "000002", "two batches");
        assert_eq!(&records[7][13..21], "00000002");
        assert_eq!(&records[7][43..55], "000000025000");
        // Traces follow the file's order, answered in the credits' order.
        assert_eq!(traces, ["021000020000002", "021000020000001"]);
    }
}
