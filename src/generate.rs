//! Deterministic data at scale, in the SPEC's formats: base snapshots and update files.
//!
//! The data looks like the promotion's: codes like `ALDNE15` at 5–50% (a few at odd
//! percentages), orders of 1–20 items and 5–500 with cents, most using a code, some an
//! unknown code or none; some codes appear only in later updates. Updates mix order
//! corrections, new orders, cancellations (and a few of orders that never were), code
//! corrections and late codes. The same seed always writes the same bytes.
//!
//! Two shapes of file. `Friendly` is what a careful exporter writes: ids in order, every
//! time in epoch milliseconds, two-decimal subtotals, upper-case headers, one JSON Lines
//! form of update. `Realistic` is what users' exports look like, every form the file
//! formats accept in proportions seen in practice: the three time forms (offsets,
//! fractions, empties), subtotals with 0 to 6 decimals, quoted fields (a name column
//! with commas and quotes), mixed header case and column order, ids re-sent and a few out
//! of order, a BOM and CRLF in the codes file, and update files that alternate CSV and
//! JSON Lines and spell their ops every accepted way.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub orders: u64,
    pub codes: u64,
    pub updates: u64,
    pub update_size: u64,
    pub seed: u64,
    pub shape: Shape,
}

/// How the files are written (the data they hold is drawn the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Shape {
    /// Ids in order, epoch-millisecond times, two-decimal subtotals.
    #[default]
    Friendly,
    /// Every accepted form, mixed as in users' exports.
    Realistic,
}

/// Where the generated files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub codes: PathBuf,
    pub orders: PathBuf,
    pub updates: Vec<PathBuf>,
}

/// The promotion's percentages, most of them round.
const PERCENTAGES: [&str; 12] = [
    "5",
    "10",
    "15",
    "20",
    "25",
    "30",
    "35",
    "40",
    "45",
    "50",
    "12.5",
    "33.333333",
];

/// The name of code `index`: five letters unique to the index, then its percentage.
pub fn code_name(index: u64, percentage: &str) -> String {
    // An odd multiplier is a bijection modulo 26^5, so names differ and look random.
    const SPACE: u64 = 26u64.pow(5);
    let mut n = (index % SPACE).wrapping_mul(7_368_787) % SPACE;
    let mut letters = [b'A'; 5];
    for letter in letters.iter_mut() {
        *letter = b'A' + (n % 26) as u8;
        n /= 26;
    }
    let round = percentage.split('.').next().unwrap_or(percentage);
    let mut name = String::from_utf8_lossy(&letters).into_owned();
    if index >= SPACE {
        name.push_str(&(index / SPACE).to_string());
    }
    name.push_str(round);
    name
}

/// A generator's state: which codes exist, how many orders there are.
pub struct Generator {
    rng: StdRng,
    spec: Spec,
    /// Percentage of each code, by index.
    percentages: Vec<&'static str>,
    /// Codes `base_codes..` arrive only in update files.
    base_codes: u64,
    next_late_code: u64,
    next_order: u64,
}

impl Generator {
    pub fn new(spec: Spec) -> Generator {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let percentages = (0..spec.codes)
            .map(|_| PERCENTAGES[weighted_percentage(&mut rng)])
            .collect();
        // One code in twenty is late (at least one when there are a few codes).
        let late = if spec.codes >= 4 {
            (spec.codes / 20).max(1)
        } else {
            0
        };
        let base_codes = spec.codes - late;
        Generator {
            rng,
            percentages,
            base_codes,
            next_late_code: base_codes,
            next_order: spec.orders + 1,
            spec,
        }
    }

    fn code(&self, index: u64) -> String {
        code_name(index, self.percentages[index as usize])
    }

    /// Writes the two base snapshots and the update files into `dir`.
    pub fn write_all(mut self, dir: &Path) -> io::Result<Generated> {
        std::fs::create_dir_all(dir)?;
        let codes = dir.join("discount_codes.csv");
        let orders = dir.join("orders.csv");
        self.write_codes(&codes)?;
        self.write_orders(&orders)?;
        let mut updates = Vec::new();
        let width = self.spec.updates.to_string().len();
        for index in 1..=self.spec.updates {
            let path = match self.spec.shape {
                // Every other realistic update is a CSV file of orders.
                Shape::Realistic if index % 2 == 0 => {
                    dir.join(format!("update-{index:0width$}.csv"))
                }
                _ => dir.join(format!("update-{index:0width$}.jsonl")),
            };
            self.write_update(&path)?;
            updates.push(path);
        }
        Ok(Generated {
            codes,
            orders,
            updates,
        })
    }

    fn write_codes(&mut self, path: &Path) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        // A realistic codes file comes from a spreadsheet: a BOM, CRLF, its own case.
        let (header, end) = match self.spec.shape {
            Shape::Friendly => ("CODE,PERCENTAGE", "\n"),
            Shape::Realistic => ("\u{feff}Code,percentage", "\r\n"),
        };
        write!(out, "{header}{end}")?;
        for index in 0..self.base_codes {
            write!(
                out,
                "{},{}{end}",
                self.code(index),
                self.percentages[index as usize]
            )?;
        }
        out.into_inner()?.sync_all()
    }

    fn write_orders(&mut self, path: &Path) -> io::Result<()> {
        let realistic = self.spec.shape == Shape::Realistic;
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        // A realistic export has its own column order and case, and a column the job
        // does not read.
        let header = if realistic {
            "Id,order_time,CUSTOMER_ID,customer_name,Item_Ct,ORDER_SUBTOTAL,discount_code"
        } else {
            "ID,ORDER_TIME,CUSTOMER_ID,ITEM_CT,ORDER_SUBTOTAL,DISCOUNT_CODE"
        };
        writeln!(out, "{header}")?;
        let mut line = Vec::with_capacity(160);
        // A realistic row held back, to be written after the next one.
        let mut held: Option<Vec<u8>> = None;
        for id in 1..=self.spec.orders {
            line.clear();
            if !realistic {
                self.order_csv(id, &mut line);
                out.write_all(&line)?;
                continue;
            }
            self.realistic_order_csv(id, &mut line);
            if let Some(previous) = held.take() {
                out.write_all(&line)?;
                out.write_all(&previous)?;
                continue;
            }
            if self.per_mille(mix::SWAPPED) {
                held = Some(line.clone());
                continue;
            }
            out.write_all(&line)?;
            if id > 1 && self.per_mille(mix::RESENT) {
                // The same order sent again, corrected: the later row wins.
                let earlier = self.rng.random_range(id.saturating_sub(1000).max(1)..=id);
                line.clear();
                self.realistic_order_csv(earlier, &mut line);
                out.write_all(&line)?;
            }
        }
        if let Some(previous) = held {
            out.write_all(&previous)?;
        }
        out.into_inner()?.sync_all()
    }

    /// One order row: `id,epoch millis,customer,items,subtotal,code`.
    fn order_csv(&mut self, id: u64, line: &mut Vec<u8>) {
        let (time, customer, items, cents, code) = self.order_values(id);
        let mut buffer = itoa::Buffer::new();
        for value in [id, time, customer, items] {
            line.extend_from_slice(buffer.format(value).as_bytes());
            line.push(b',');
        }
        line.extend_from_slice(buffer.format(cents / 100).as_bytes());
        line.push(b'.');
        line.push(b'0' + (cents / 10 % 10) as u8);
        line.push(b'0' + (cents % 10) as u8);
        line.push(b',');
        line.extend_from_slice(code.as_bytes());
        line.push(b'\n');
    }

    fn order_values(&mut self, id: u64) -> (u64, u64, u64, u64, String) {
        // Orders placed over a day, one every few milliseconds.
        let time = 1_793_664_000_000 + id * 7 % 86_400_000;
        let customer = self.rng.random_range(1..=self.spec.orders / 10 + 1);
        // Mostly small baskets, a few big ones.
        let items = 1
            + self.rng.random_range(0..5)
            + self.rng.random_range(0..4) * self.rng.random_range(0..5);
        let cents = self.rng.random_range(500..=50_000);
        let code = match self.rng.random_range(0..100) {
            0..=1 => String::new(),
            2..=4 => format!("UNKNOWN{}", self.rng.random_range(0..1000)),
            _ if self.spec.codes == 0 => String::new(),
            _ => {
                let index = self.rng.random_range(0..self.spec.codes);
                self.code(index)
            }
        };
        (time, customer, items, cents, code)
    }

    fn write_update(&mut self, path: &Path) -> io::Result<()> {
        if self.spec.shape == Shape::Realistic {
            return self.write_realistic_update(path);
        }
        let mut out = BufWriter::new(File::create(path)?);
        for _ in 0..self.spec.update_size {
            let line = match self.rng.random_range(0..100) {
                0..=1 if self.spec.codes > 0 => self.code_change(),
                2..=39 => {
                    let id = self.existing_order();
                    self.order_upsert(id)
                }
                40..=79 => {
                    let id = self.next_order;
                    self.next_order += 1;
                    self.order_upsert(id)
                }
                80..=97 => format!(
                    "{{\"op\":\"delete\",\"table\":\"orders\",\"id\":{}}}",
                    self.existing_order()
                ),
                _ => format!(
                    "{{\"op\":\"delete\",\"table\":\"orders\",\"id\":{}}}",
                    self.next_order + 1_000_000_000
                ),
            };
            writeln!(out, "{line}")?;
        }
        out.into_inner()?.sync_all()
    }

    /// A late code's arrival, or a correction of an existing code's percentage.
    fn code_change(&mut self) -> String {
        let index = if self.next_late_code < self.spec.codes && self.rng.random_bool(0.5) {
            self.next_late_code += 1;
            self.next_late_code - 1
        } else {
            self.rng.random_range(0..self.next_late_code.max(1))
        };
        let percentage = if index < self.base_codes || self.rng.random_bool(0.3) {
            PERCENTAGES[weighted_percentage(&mut self.rng)]
        } else {
            self.percentages[index as usize]
        };
        format!(
            "{{\"op\":\"upsert\",\"table\":\"discount_codes\",\"code\":\"{}\",\"percentage\":{percentage}}}",
            self.code(index)
        )
    }

    fn existing_order(&mut self) -> u64 {
        self.rng.random_range(1..self.next_order.max(2))
    }

    fn order_upsert(&mut self, id: u64) -> String {
        let (time, customer, items, cents, code) = self.order_values(id);
        format!(
            "{{\"op\":\"upsert\",\"table\":\"orders\",\"id\":{id},\"order_time\":{time},\"customer_id\":{customer},\"item_ct\":{items},\"order_subtotal\":{}.{:02},\"discount_code\":\"{code}\"}}",
            cents / 100,
            cents % 100
        )
    }
}

/// How often each form appears in realistic files, in percent (or per mille where named).
mod mix {
    /// Order times: empty, epoch milliseconds, RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]`.
    pub const TIME_EMPTY: u32 = 4;
    pub const TIME_MILLIS: u32 = 20;
    pub const TIME_RFC3339: u32 = 40;
    /// Subtotal decimals 0 to 6: mostly cents, some whole, a few from systems that keep more.
    pub const DECIMALS: [u32; 7] = [10, 8, 64, 7, 6, 3, 2];
    /// Per mille: a row written after the next one, a row re-sending an earlier id, a row
    /// with every field quoted, a value with spaces around it.
    pub const SWAPPED: u32 = 5;
    pub const RESENT: u32 = 10;
    pub const ALL_QUOTED: u32 = 20;
    pub const PADDED: u32 = 5;
}

const FIRST_NAMES: [&str; 8] = [
    "Ana", "Bo", "Chen", "Dara", "Emeka", "Fatima", "Gus", "Hana",
];
const LAST_NAMES: [&str; 8] = [
    "Smith", "O'Brien", "Nguyen", "García", "Kowalski", "Okafor", "Lee", "Müller",
];

/// How one realistic update file spells its ops: each tool has its own words.
#[derive(Clone, Copy)]
enum Dialect {
    Ours,
    Shouting,
    Debezium,
    Flink,
}

impl Dialect {
    fn upsert(self, rng: &mut StdRng) -> &'static str {
        match self {
            Dialect::Ours => ["upsert", "insert", "+"][rng.random_range(0..3)],
            Dialect::Shouting => ["UPSERT", "Insert"][rng.random_range(0..2)],
            Dialect::Debezium => ["c", "u", "r"][rng.random_range(0..3)],
            Dialect::Flink => ["+I", "+U"][rng.random_range(0..2)],
        }
    }
    fn delete(self, rng: &mut StdRng) -> &'static str {
        match self {
            Dialect::Ours => ["delete", "-"][rng.random_range(0..2)],
            Dialect::Shouting => "DELETE",
            Dialect::Debezium => "d",
            Dialect::Flink => ["-D", "-U"][rng.random_range(0..2)],
        }
    }
}

impl Generator {
    fn per_mille(&mut self, n: u32) -> bool {
        self.rng.random_range(0..1000) < n
    }

    /// One order row in the realistic header's column order.
    fn realistic_order_csv(&mut self, id: u64, line: &mut Vec<u8>) {
        let (time, customer, items, cents, code) = self.order_values(id);
        let micros = self.realistic_micros(cents);
        let all_quoted = self.per_mille(mix::ALL_QUOTED);
        let time = self.realistic_time(time);
        let name = self.customer_name();
        let subtotal = self.realistic_decimal(micros);
        let code = self.padded(code);
        let cells = [
            id.to_string(),
            time,
            customer.to_string(),
            name,
            items.to_string(),
            subtotal,
            code,
        ];
        for (index, cell) in cells.iter().enumerate() {
            if index > 0 {
                line.push(b',');
            }
            let needs_quotes = cell.contains([',', '"', '\n']);
            if all_quoted || needs_quotes {
                line.push(b'"');
                line.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
                line.push(b'"');
            } else {
                line.extend_from_slice(cell.as_bytes());
            }
        }
        line.push(b'\n');
    }

    /// A subtotal in micros near `cents`, with the decimals a realistic file writes.
    fn realistic_micros(&mut self, cents: u64) -> u64 {
        cents * 10_000 + self.rng.random_range(0..10_000)
    }

    /// `micros` written with 0 to 6 decimals (the digits beyond dropped).
    fn realistic_decimal(&mut self, micros: u64) -> String {
        let decimals = weighted(&mut self.rng, &mix::DECIMALS);
        let whole = micros / 1_000_000;
        if decimals == 0 {
            return whole.to_string();
        }
        let fraction = format!("{:06}", micros % 1_000_000);
        format!("{whole}.{}", &fraction[..decimals])
    }

    /// An order time in one of the accepted forms, or empty.
    fn realistic_time(&mut self, millis: u64) -> String {
        let draw = self.rng.random_range(0..100);
        if draw < mix::TIME_EMPTY {
            return String::new();
        }
        if draw < mix::TIME_EMPTY + mix::TIME_MILLIS {
            return millis.to_string();
        }
        let rfc3339 = draw < mix::TIME_EMPTY + mix::TIME_MILLIS + mix::TIME_RFC3339;
        // Whole hours and half hours east or west, as exporters in other zones write.
        let offset_minutes: i64 = if rfc3339 && self.rng.random_bool(0.5) {
            [-480, -300, 60, 120, 330, 540][self.rng.random_range(0..6)]
        } else {
            0
        };
        let Some(utc) = chrono::DateTime::from_timestamp_millis(millis as i64) else {
            return millis.to_string();
        };
        let local = utc.naive_utc() + chrono::Duration::minutes(offset_minutes);
        let mut text = format!(
            "{}{}{}",
            local.format("%Y-%m-%d"),
            if rfc3339 { 'T' } else { ' ' },
            local.format("%H:%M:%S")
        );
        let fraction = format!("{:03}", millis % 1000);
        match self.rng.random_range(0..10) {
            0..=3 => {}
            4..=7 => text.push_str(&format!(".{fraction}")),
            // Microseconds (a space-form time reads milliseconds only).
            _ if rfc3339 => text.push_str(&format!(".{fraction}000")),
            _ => text.push_str(&format!(".{fraction}")),
        }
        if rfc3339 {
            if offset_minutes == 0 {
                text.push('Z');
            } else {
                let sign = if offset_minutes < 0 { '-' } else { '+' };
                let minutes = offset_minutes.abs();
                text.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
            }
        }
        text
    }

    fn customer_name(&mut self) -> String {
        let first = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
        match self.rng.random_range(0..100) {
            0..=1 => String::new(),
            2..=8 => format!("{last}, {first}"),
            9 => format!("{first} \"{}\" {last}", &first[..1]),
            _ => format!("{first} {last}"),
        }
    }

    /// A value now and then with spaces around it, as hand-edited files have.
    fn padded(&mut self, value: String) -> String {
        if self.per_mille(mix::PADDED) {
            format!(" {value} ")
        } else {
            value
        }
    }

    fn realistic_time_json(&mut self, millis: u64) -> String {
        let time = self.realistic_time(millis);
        if time.is_empty() {
            "null".into()
        } else if time.bytes().all(|b| b.is_ascii_digit()) {
            time
        } else {
            format!("\"{time}\"")
        }
    }

    /// An update file in the realistic shape: JSON Lines of both tables or CSV of orders,
    /// the ops spelled as one tool spells them.
    fn write_realistic_update(&mut self, path: &Path) -> io::Result<()> {
        let mut out = BufWriter::new(File::create(path)?);
        let dialect = [
            Dialect::Ours,
            Dialect::Shouting,
            Dialect::Debezium,
            Dialect::Flink,
        ][self.rng.random_range(0..4)];
        let csv = path.extension().is_some_and(|e| e == "csv");
        if csv {
            writeln!(
                out,
                "OP,id,Order_Time,customer_id,ITEM_CT,order_subtotal,Discount_Code"
            )?;
        }
        for _ in 0..self.spec.update_size {
            let draw = self.rng.random_range(0..100);
            let line = match draw {
                // A CSV update holds one table: its code changes become order upserts.
                0..=1 if self.spec.codes > 0 && !csv => {
                    let change = self.code_change();
                    let op = dialect.upsert(&mut self.rng);
                    change.replacen("\"upsert\"", &format!("\"{op}\""), 1)
                }
                0..=79 => {
                    let id = if draw < 40 {
                        self.existing_order()
                    } else {
                        self.next_order += 1;
                        self.next_order - 1
                    };
                    let op = dialect.upsert(&mut self.rng);
                    self.realistic_order_upsert(id, op, csv)
                }
                _ => {
                    let id = if draw < 98 {
                        self.existing_order()
                    } else {
                        self.next_order + 1_000_000_000
                    };
                    let op = dialect.delete(&mut self.rng);
                    if csv {
                        format!("{op},{id},,,,,")
                    } else {
                        format!("{{\"op\":\"{op}\",\"table\":\"orders\",\"ID\":{id}}}")
                    }
                }
            };
            writeln!(out, "{line}")?;
        }
        out.into_inner()?.sync_all()
    }

    fn realistic_order_upsert(&mut self, id: u64, op: &str, csv: bool) -> String {
        let (time, customer, items, cents, code) = self.order_values(id);
        let micros = self.realistic_micros(cents);
        let subtotal = self.realistic_decimal(micros);
        if csv {
            let time = self.realistic_time(time);
            return format!("{op},{id},{time},{customer},{items},{subtotal},{code}");
        }
        let time = self.realistic_time_json(time);
        let code = if code.is_empty() && self.rng.random_bool(0.5) {
            "null".to_string()
        } else {
            format!("\"{code}\"")
        };
        format!(
            "{{\"op\":\"{op}\",\"table\":\"orders\",\"ID\":{id},\"ORDER_TIME\":{time},\"CUSTOMER_ID\":{customer},\"ITEM_CT\":{items},\"ORDER_SUBTOTAL\":{subtotal},\"DISCOUNT_CODE\":{code}}}"
        )
    }
}

/// An index drawn with the given weights.
fn weighted(rng: &mut StdRng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut draw = rng.random_range(0..total);
    for (index, weight) in weights.iter().enumerate() {
        if draw < *weight {
            return index;
        }
        draw -= weight;
    }
    weights.len() - 1
}

/// Index into `PERCENTAGES`: round percentages mostly, odd ones rarely.
fn weighted_percentage(rng: &mut StdRng) -> usize {
    if rng.random_bool(0.05) {
        10 + rng.random_range(0..2)
    } else {
        rng.random_range(0..10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_unique_and_carry_the_percentage() {
        let names: std::collections::HashSet<String> =
            (0..100_000).map(|i| code_name(i, "15")).collect();
        assert_eq!(names.len(), 100_000);
        assert!(code_name(3, "12.5").ends_with("12"));
        assert_eq!(code_name(0, "5").len(), 6);
    }
}
