//! Line-based delimited text (CSV, TSV, RecBole atomic files): line numbering and field
//! splitting shared by the text loaders.
//!
//! Rules: one record per line (`\n` or `\r\n`); blank lines are skipped. With a comma
//! separator a field may be double-quoted (`"a, b"`, with `""` for a literal quote); a quoted
//! field cannot span lines. Tab-separated files are split verbatim, quotes included (RecBole
//! writes titles such as `"Great Day in Harlem, A" (1994)` unquoted).

/// The separator of a delimited file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sep {
    /// `,` with optional double-quoting.
    Comma,
    /// `\t`, verbatim.
    Tab,
}

impl Sep {
    /// The separator for a path: `.tsv`, `.inter`, `.item`, `.user` → tab, `.csv` → comma;
    /// otherwise a tab in `first_line` picks tab, else comma.
    pub(crate) fn detect(path: &std::path::Path, first_line: &str) -> Sep {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "tsv" | "inter" | "item" | "user" | "tab" => Sep::Tab,
            "csv" => Sep::Comma,
            _ if first_line.contains('\t') => Sep::Tab,
            _ => Sep::Comma,
        }
    }
}

/// The non-blank lines of `text` with their 1-based line numbers (`\r` stripped).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Splits one line into fields. Fields are trimmed of surrounding spaces for comma files.
/// The error is a message (an unterminated quote, or text after a closing quote).
pub(crate) fn split(line: &str, sep: Sep) -> Result<Vec<String>, String> {
    match sep {
        Sep::Tab => Ok(line.split('\t').map(str::to_string).collect()),
        Sep::Comma => split_csv(line),
    }
}

fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("field {} has an unterminated quote", out.len())),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(c) => {
                    return Err(format!(
                        "field {} has `{c}` after its closing quote",
                        out.len()
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field.trim_end().to_string());
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            out.push(field.trim_end().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_csv() {
        let f = split(r#"a, "b, c" ,"d""e",,f"#, Sep::Comma).unwrap();
        assert_eq!(f, vec!["a", "b, c", "d\"e", "", "f"]);
        assert!(split(r#"a,"b"#, Sep::Comma).is_err());
        assert!(split(r#"a,"b"x"#, Sep::Comma).is_err());
        assert_eq!(
            split("a\t\"b\"\t", Sep::Tab).unwrap(),
            vec!["a", "\"b\"", ""]
        );
    }
}
