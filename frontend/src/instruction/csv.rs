//! One-record CSV as Go's `encoding/csv` reads it.

/// Why a CSV line did not parse, in Go's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error on line 1, column {column}: {reason}")]
pub struct CsvError {
    /// The 1-based column where reading failed.
    pub column: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

/// The fields of a one-record CSV line, as Go's `encoding/csv` reads it (quotes allowed around a
/// field, `""` inside quotes for a quote): how BuildKit reads `RUN --mount` values and buildx its
/// `--output` and `--secret` flags.
///
/// ```
/// use kiln_frontend::instruction::csv_record;
///
/// assert_eq!(csv_record(r#"id=t,"src=/a,b""#)?, ["id=t", "src=/a,b"]);
/// assert_eq!(
///     csv_record(r#"a"b"#).unwrap_err().to_string(),
///     r#"parse error on line 1, column 2: bare " in non-quoted field"#
/// );
/// # Ok::<(), kiln_frontend::instruction::CsvError>(())
/// ```
pub fn csv_record(line: &str) -> Result<Vec<String>, CsvError> {
    if !line.contains('"') {
        // The common case: no quoting, so fields are the text between commas.
        return Ok(line.split(',').map(str::to_owned).collect());
    }
    let mut fields = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        let mut field = String::new();
        if chars.peek().is_some_and(|&(_, c)| c == '"') {
            chars.next();
            loop {
                match chars.next() {
                    Some((_, '"')) if chars.peek().is_some_and(|&(_, c)| c == '"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some((_, '"')) => break,
                    Some((_, c)) => field.push(c),
                    None => {
                        return Err(CsvError {
                            column: line.len() + 1,
                            reason: "extraneous or missing \" in quoted-field",
                        });
                    }
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some((_, ',')) => {}
                Some((i, _)) => {
                    return Err(CsvError {
                        column: i + 1,
                        reason: "extraneous or missing \" in quoted-field",
                    });
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some((_, ',')) => break,
                    Some((i, '"')) => {
                        return Err(CsvError {
                            column: i + 1,
                            reason: "bare \" in non-quoted field",
                        });
                    }
                    Some((_, c)) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}
