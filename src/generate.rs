//! Deterministic data at scale, in the SPEC's formats: base snapshots and update files.
//!
//! The data looks like the promotion's: codes like `ALDNE15` at 5–50% (a few at odd
//! percentages), orders of 1–20 items and 5–500 with cents, most using a code, some an
//! unknown code or none; some codes appear only in later updates. Updates mix order
//! corrections, new orders, cancellations (and a few of orders that never were), code
//! corrections and late codes. The same seed always writes the same bytes.

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
            let path = dir.join(format!("update-{index:0width$}.jsonl"));
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
        writeln!(out, "CODE,PERCENTAGE")?;
        for index in 0..self.base_codes {
            writeln!(
                out,
                "{},{}",
                self.code(index),
                self.percentages[index as usize]
            )?;
        }
        out.into_inner()?.sync_all()
    }

    fn write_orders(&mut self, path: &Path) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        writeln!(
            out,
            "ID,ORDER_TIME,CUSTOMER_ID,ITEM_CT,ORDER_SUBTOTAL,DISCOUNT_CODE"
        )?;
        let mut line = Vec::with_capacity(128);
        for id in 1..=self.spec.orders {
            line.clear();
            self.order_csv(id, &mut line);
            out.write_all(&line)?;
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
