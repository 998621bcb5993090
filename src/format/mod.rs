//! Output shared by the image commands: Docker's `--format` (Go templates, `table`, `json`), its
//! column layout, and its human sizes and times.

mod template;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{Map, Value};

pub(crate) use template::Template;

/// Renders list rows (JSON objects) the way Docker's list commands do.
///
/// `format` is the user's `--format` (`None` or `table` for `default_table`); `json` prints each
/// row as one JSON object a line; `table ...` prints a header (from `headers`: field → column
/// name) and aligns the columns; anything else is a template applied to each row.
pub(crate) fn render_rows(
    format: Option<&str>,
    default_table: &str,
    headers: &[(&str, &str)],
    rows: &[Value],
) -> Result<String> {
    let format = match format {
        None | Some("" | "table") => default_table,
        Some(format) => format,
    };
    if format == "json" {
        let mut out = String::new();
        for row in rows {
            out.push_str(&serde_json::to_string(row)?);
            out.push('\n');
        }
        return Ok(out);
    }
    let (table, body) = match format.strip_prefix("table") {
        Some(body) => (true, body),
        None => (false, format),
    };
    let body = body.trim_matches(' ').replace(r"\t", "\t").replace(r"\n", "\n");
    let template = Template::parse(&body)?;
    let mut lines = Vec::with_capacity(rows.len() + 1);
    if table {
        lines.push(template.render(&header_row(headers, rows))?);
    }
    for row in rows {
        lines.push(template.render(row)?);
    }
    if !table {
        let mut out = String::new();
        for line in &lines {
            out.push_str(line);
            out.push('\n');
        }
        return Ok(out);
    }
    Ok(tabulate(&lines))
}

/// The header "row": every field a row has, named as its column (empty when it has no name).
fn header_row(headers: &[(&str, &str)], rows: &[Value]) -> Value {
    let mut header = Map::new();
    for (field, name) in headers {
        header.insert((*field).to_owned(), Value::String((*name).to_owned()));
    }
    if let Some(Value::Object(row)) = rows.first() {
        for key in row.keys() {
            header
                .entry(key.clone())
                .or_insert_with(|| Value::String(String::new()));
        }
    }
    Value::Object(header)
}

/// Aligns tab-separated cells as Docker's tabwriter does (minimum width 10, padding 3); the
/// last cell of a line is not padded.
pub(crate) fn tabulate(lines: &[String]) -> String {
    let split: Vec<Vec<Vec<&str>>> = lines
        .iter()
        .map(|text| text.split('\n').map(|line| line.split('\t').collect()).collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in split.iter().flatten() {
        for (i, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let width = (cell.chars().count() + 3).max(10);
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    for cells in split.iter().flatten() {
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// go-units' `HumanSizeWithPrecision`: decimal units, `precision` significant digits (`%g`).
pub(crate) fn human_size(bytes: u64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    #[allow(clippy::cast_precision_loss)] // sizes are shown to 3 or 4 digits
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g(size, precision), UNITS[unit])
}

/// Go's `%.{precision}g` for a non-negative number.
fn go_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let scientific = format!("{:.*e}", precision.saturating_sub(1), value);
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} exponents are integers");
    let precision_i = i32::try_from(precision).unwrap_or(i32::MAX);
    if exponent < -4 || exponent >= precision_i {
        let mantissa = trim_fraction(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = usize::try_from(precision_i - 1 - exponent).unwrap_or(0);
    trim_fraction(&format!("{value:.decimals$}")).to_owned()
}

fn trim_fraction(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// go-units' `HumanDuration`: "Less than a second", "5 minutes", "About an hour", "3 weeks"...
pub(crate) fn human_duration(seconds: i64) -> String {
    let hours = (seconds + 1800) / 3600;
    match seconds {
        s if s < 1 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".to_owned(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// Now, in unix seconds.
pub(crate) fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// An RFC 3339 timestamp as image configs hold them, kept in its own offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp {
    date: (i64, u32, u32),
    time: (u32, u32, u32),
    /// Seconds east of UTC.
    offset: i32,
}

impl Timestamp {
    /// Parses `2024-01-02T03:04:05[.frac](Z|±hh:mm)`.
    pub(crate) fn parse(text: &str) -> Option<Timestamp> {
        let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
        let bytes = text.as_bytes();
        if bytes.len() < 20
            || bytes[4] != b'-'
            || bytes[7] != b'-'
            || !matches!(bytes[10], b'T' | b't' | b' ')
        {
            return None;
        }
        let date = (i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
        let time = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut rest = &text[19..];
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            rest = &fraction[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let (h, m) = rest[1..].split_once(':')?;
                sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60)
            }
        };
        let valid = (1..=12).contains(&date.1)
            && (1..=31).contains(&date.2)
            && time.0 < 24
            && time.1 < 60
            && time.2 < 61;
        valid.then_some(Timestamp { date, time, offset })
    }

    /// Unix seconds.
    pub(crate) fn unix(self) -> i64 {
        let (y, m, d) = self.date;
        let days = days_from_civil(y, m, d);
        days * 86_400 + i64::from(self.time.0 * 3600 + self.time.1 * 60 + self.time.2)
            - i64::from(self.offset)
    }

    /// Go's `time.Time.String()` without the fraction: `2024-01-02 03:04:05 +0000 UTC`.
    pub(crate) fn go_string(self) -> String {
        let zone = if self.offset == 0 {
            "UTC".to_owned()
        } else {
            self.offset_text("")
        };
        format!("{} {} {zone}", self.date_time(' '), self.offset_text(""))
    }

    /// RFC 3339 to the second: `2024-01-02T03:04:05Z`.
    pub(crate) fn rfc3339(self) -> String {
        let zone = if self.offset == 0 {
            "Z".to_owned()
        } else {
            self.offset_text(":")
        };
        format!("{}{zone}", self.date_time('T'))
    }

    fn date_time(self, sep: char) -> String {
        let ((y, mo, d), (h, mi, s)) = (self.date, self.time);
        format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}")
    }

    fn offset_text(self, sep: &str) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let minutes = self.offset.abs() / 60;
        format!("{sign}{:02}{sep}{:02}", minutes / 60, minutes % 60)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Docker's CREATED column: `3 weeks ago`, or `N/A` for an image without a creation time.
pub(crate) fn created_since(created: Option<&str>) -> String {
    match created.and_then(Timestamp::parse) {
        Some(time) => format!("{} ago", human_duration(now() - time.unix())),
        None => "N/A".to_owned(),
    }
}

/// Docker's CREATED AT column.
pub(crate) fn created_at(created: Option<&str>) -> String {
    created
        .and_then(Timestamp::parse)
        .map(Timestamp::go_string)
        .unwrap_or_default()
}

/// A digest's short ID (12 hex digits), or the whole `sha256:…` with `--no-trunc`.
pub(crate) fn image_id(digest: &kiln_builder::content::Digest, no_trunc: bool) -> String {
    if no_trunc {
        digest.to_string()
    } else {
        digest.short().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0, 3), "0B");
        assert_eq!(human_size(100, 3), "100B");
        assert_eq!(human_size(1240, 3), "1.24kB");
        assert_eq!(human_size(4_263_936, 3), "4.26MB");
        assert_eq!(human_size(4_263_936, 4), "4.264MB");
        assert_eq!(human_size(12_000_000, 3), "12MB");
        assert_eq!(human_size(999_999, 3), "1e+03kB");
    }

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(20 * 86_400), "2 weeks");
        assert_eq!(human_duration(100 * 86_400), "3 months");
        assert_eq!(human_duration(1000 * 86_400), "2 years");
    }

    #[test]
    fn timestamps_parse_and_print() {
        let t = Timestamp::parse("2024-02-29T23:59:59.123456789Z").unwrap();
        assert_eq!(t.unix(), 1_709_251_199);
        assert_eq!(t.go_string(), "2024-02-29 23:59:59 +0000 UTC");
        assert_eq!(t.rfc3339(), "2024-02-29T23:59:59Z");
        let t = Timestamp::parse("1970-01-01T02:00:00+02:00").unwrap();
        assert_eq!(t.unix(), 0);
        assert_eq!(t.rfc3339(), "1970-01-01T02:00:00+02:00");
        assert_eq!(Timestamp::parse("yesterday"), None);
    }

    #[test]
    fn tables_align_like_docker() {
        let lines = [
            "REPOSITORY\tTAG\tSIZE".to_owned(),
            "busybox\tlatest\t1MB".to_owned(),
        ];
        assert_eq!(
            tabulate(&lines),
            "REPOSITORY   TAG       SIZE\nbusybox      latest    1MB\n"
        );
    }
}
