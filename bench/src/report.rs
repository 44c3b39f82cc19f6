//! What `vigil-bench` prints: the machine and date, then one Markdown section per benchmark with
//! its tables, or why it was SKIPPED or FAILED — ready to paste into `docs/benchmarks.md`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::BenchOptions;

/// A Markdown table.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows, each as long as `headers`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers and no rows.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|header| header.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<String>) {
        assert_eq!(
            row.len(),
            self.headers.len(),
            "a row has one cell per column"
        );
        self.rows.push(row);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "| {} |", self.headers.join(" | "))?;
        let rule = vec!["---"; self.headers.len()];
        writeln!(formatter, "| {} |", rule.join(" | "))?;
        for row in &self.rows {
            writeln!(formatter, "| {} |", row.join(" | "))?;
        }
        Ok(())
    }
}

/// How a section ended.
#[derive(Clone, Debug)]
pub enum SectionOutcome {
    /// Measured: tables and notes.
    Measured {
        /// The tables.
        tables: Vec<Table>,
        /// Lines printed under the tables (settings, caveats).
        notes: Vec<String>,
    },
    /// Not run, and why (e.g. etcd is not installed).
    Skipped(String),
    /// Failed, and why.
    Failed(String),
}

/// One section of the report.
#[derive(Clone, Debug)]
pub struct Section {
    /// Its heading.
    pub title: String,
    /// Its outcome.
    pub outcome: SectionOutcome,
}

impl Section {
    /// A section that failed, and why.
    pub fn failed(title: String, reason: String) -> Section {
        Section {
            title,
            outcome: SectionOutcome::Failed(reason),
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "## {}\n", self.title)?;
        match &self.outcome {
            SectionOutcome::Measured { tables, notes } => {
                for table in tables {
                    writeln!(formatter, "{table}")?;
                }
                for note in notes {
                    writeln!(formatter, "{note}")?;
                }
                Ok(())
            }
            SectionOutcome::Skipped(reason) => writeln!(formatter, "SKIPPED: {reason}"),
            SectionOutcome::Failed(reason) => writeln!(formatter, "FAILED: {reason}"),
        }
    }
}

/// The report's first lines: the command's mode, the machine, the date.
pub fn machine_header(options: &BenchOptions) -> String {
    let cores = std::thread::available_parallelism()
        .map(|cores| cores.get().to_string())
        .unwrap_or_else(|_| "?".to_string());
    let memory = read_proc_field("/proc/meminfo", "MemTotal:")
        .and_then(|text| text.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".to_string());
    let cpu = read_proc_field("/proc/cpuinfo", "model name")
        .map(|text| text.trim_start_matches(':').trim().to_string())
        .unwrap_or_else(|| "?".to_string());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".to_string());
    let mode = if options.quick {
        "quick (CI smoke run: figures not for quoting)"
    } else {
        "full"
    };
    format!(
        "# vigil-bench ({mode})\n\n{} · {cores} cores ({cpu}) · {memory} memory · load average at start {load} · vigil {}\n",
        utc_now(),
        env!("CARGO_PKG_VERSION")
    )
}

fn read_proc_field(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .map(|rest| rest.trim().to_string())
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A count with thousands separators (`1,234,567`).
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `a / b` to two decimals, or `n/a` when `b` is zero.
pub fn ratio(numerator: f64, denominator: f64) -> String {
    if denominator > 0.0 {
        format!("{:.2}", numerator / denominator)
    } else {
        "n/a".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn tables_render_as_markdown() {
        let mut table = Table::new(&["a", "b"]);
        table.push(vec!["1".into(), "2".into()]);
        assert_eq!(table.to_string(), "| a | b |\n| --- | --- |\n| 1 | 2 |\n");
    }
}
