//! The few Go `fmt` renderings BuildKit writes into image history, so kiln writes the same bytes.
//!
//! BuildKit formats history entries with `fmt.Sprintf`: `%v` of a string slice (`[a b]`), `%q` of one
//! (`["a" "b"]`), and `%+v` of the healthcheck struct, whose durations print as Go's
//! `time.Duration.String` does (`1m30s`, `500ms`, `0s`).

use std::fmt::Write as _;

use kiln_frontend::syntax::go_quote;

/// `fmt.Sprintf("%v", slice)`: the elements space-separated in brackets.
pub(crate) fn slice_v(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// `fmt.Sprintf("%q", slice)`: each element Go-quoted, space-separated in brackets.
pub(crate) fn slice_q(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `time.Duration.String` for a count of nanoseconds.
pub(crate) fn duration(nanos: i64) -> String {
    const SECOND: u64 = 1_000_000_000;
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u < SECOND {
        let (scale, unit) = match u {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", fraction(u, scale));
    }
    let total_secs = u / SECOND;
    let mut out = String::from(sign);
    let hours = total_secs / 3600;
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if total_secs >= 60 {
        let _ = write!(out, "{}m", (total_secs / 60) % 60);
    }
    out.push_str(&fraction(u % (60 * SECOND), SECOND));
    out.push('s');
    out
}

/// `value / scale` with the remainder as a decimal fraction, trailing zeros dropped.
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go() {
        let s = 1_000_000_000;
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(30 * s), "30s");
        assert_eq!(duration(90 * s), "1m30s");
        assert_eq!(duration(3600 * s), "1h0m0s");
        assert_eq!(duration(s + s / 2), "1.5s");
        assert_eq!(duration(500_000_000), "500ms");
        assert_eq!(duration(1_500), "1.5µs");
        assert_eq!(duration(7), "7ns");
        assert_eq!(duration(-2 * s), "-2s");
        assert_eq!(duration(3723 * s + 1), "1h2m3.000000001s");
    }

    #[test]
    fn slices_print_as_go() {
        let items = vec!["/bin/sh".to_owned(), "-c".to_owned(), "echo \"hi\"".to_owned()];
        assert_eq!(slice_v(&items), r#"[/bin/sh -c echo "hi"]"#);
        assert_eq!(slice_q(&items), r#"["/bin/sh" "-c" "echo \"hi\""]"#);
        assert_eq!(slice_q(&[]), "[]");
    }
}
