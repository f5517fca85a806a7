//! A reader of whole RFC 4180 files, the inverse of [`crate::io::csv_field`]: a quoted field
//! may hold commas, doubled quotes, tabs, line breaks and edge spaces, all kept verbatim.
//!
//! The shared table reader of `data::delimited` trims unquoted fields and keeps a record on
//! one line, which suits hand-made input; the files read here (`predictions.csv`,
//! `codes.csv`) are semid's own output, so every byte `csv_field` wrote must come back.

/// One record and the 1-based line it starts on.
pub(crate) struct Record {
    pub(crate) line: usize,
    pub(crate) fields: Vec<String>,
}

/// A malformed record: the 1-based line where it starts and what is wrong.
pub(crate) struct RecordError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Splits `text` into records (`\n` or `\r\n` ends a record outside quotes). Empty lines are
/// skipped, so a final line break adds no record.
pub(crate) fn records(text: &str) -> Result<Vec<Record>, RecordError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted_field = false;
        loop {
            match chars.next() {
                None => {
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some('"') if field.is_empty() && !quoted_field => {
                    quoted_field = true;
                    loop {
                        match chars.next() {
                            None => {
                                return Err(RecordError {
                                    line: start,
                                    message: format!(
                                        "field {} has an unterminated quote",
                                        fields.len() + 1
                                    ),
                                })
                            }
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some('"') => break,
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                field.push(c);
                            }
                        }
                    }
                    match chars.peek() {
                        None | Some(',') | Some('\n') | Some('\r') => {}
                        Some(&c) => {
                            return Err(RecordError {
                                line: start,
                                message: format!(
                                    "field {} has `{c}` after its closing quote",
                                    fields.len() + 1
                                ),
                            })
                        }
                    }
                }
                Some(',') => {
                    fields.push(std::mem::take(&mut field));
                    quoted_field = false;
                }
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some('\n') => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some(c) => field.push(c),
            }
        }
        if !(fields.len() == 1 && fields[0].is_empty()) {
            out.push(Record {
                line: start,
                fields,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::records;
    use crate::io::csv_field;

    #[test]
    fn every_field_csv_field_writes_comes_back_verbatim() {
        let ids = [
            "plain",
            "a, b",
            "say \"hi\"",
            " edge ",
            "two\nlines",
            "tab\there",
            "",
        ];
        let line: Vec<String> = ids.iter().map(|s| csv_field(s).into_owned()).collect();
        let text = format!("h\r\n{}\nlast\n", line.join(","));
        let r = records(&text).ok().unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].fields, ids);
        assert_eq!((r[0].line, r[1].line, r[2].line), (1, 2, 4));
    }

    #[test]
    fn an_unterminated_quote_names_the_line_where_the_record_starts() {
        let e = records("a\nb,\"open\nmore").err().unwrap();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated"), "{}", e.message);
        assert!(records("a,\"x\"y\n").is_err());
    }
}
