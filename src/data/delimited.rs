//! Line-based delimited text (CSV, TSV, RecBole atomic files): line numbering, field
//! splitting, and the one table reader ([`Table`]) shared by the text loaders.
//!
//! Rules: UTF-8 (a leading byte-order mark is dropped; invalid UTF-8 is an error naming its
//! line); one record per line (`\n` or `\r\n`); blank lines are skipped. With a comma
//! separator a field may be double-quoted (`"a, b"`, with `""` for a literal quote); a quoted
//! field cannot span lines. Tab-separated files are split verbatim, quotes included (RecBole
//! writes titles such as `"Great Day in Harlem, A" (1994)` unquoted).
//!
//! A RecBole atomic file (`.inter`, `.item`, `.link`, `.kg`, ...) is tab-separated and starts
//! with a header of `name:type` fields ([`Layout::Atomic`]).

use super::fileio::{data_err, read_text, snippet_list};
use crate::error::Result;
use std::path::{Path, PathBuf};

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

    /// `tab-separated` or `comma-separated`, for error messages.
    fn describe(self) -> &'static str {
        match self {
            Sep::Comma => "comma-separated",
            Sep::Tab => "tab-separated",
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

/// The 0-based index of the field that the end of `prefix` (the start of a line) lies in,
/// following the same quoting rules as [`split`]; used to name the field of a bad byte.
pub(crate) fn field_index(prefix: &str, sep: Sep) -> usize {
    if sep == Sep::Tab {
        return prefix.matches('\t').count();
    }
    #[derive(PartialEq)]
    enum St {
        Start,
        Bare,
        Quoted,
        Closed,
    }
    let (mut st, mut n) = (St::Start, 0);
    for c in prefix.chars() {
        st = match (st, c) {
            (St::Quoted, '"') => St::Closed,
            (St::Quoted, _) => St::Quoted,
            (St::Closed, '"') => St::Quoted,
            (_, ',') => {
                n += 1;
                St::Start
            }
            (St::Start, ' ') => St::Start,
            (St::Start, '"') => St::Quoted,
            (St::Closed, _) => St::Closed,
            (_, _) => St::Bare,
        };
    }
    n
}

/// How a [`Table`] reads its first line.
pub(crate) enum Layout<'a> {
    /// A RecBole atomic file: tab-separated, and the first line is a header whose every field
    /// is `name:type` (both parts non-empty).
    Atomic,
    /// Separator from [`Sep::detect`]; the first line is a header when the predicate holds for
    /// its fields, else it is data.
    Detect(&'a dyn Fn(&[&str]) -> bool),
}

/// A delimited text file, read whole, with its header parsed. Rows are visited with
/// [`Table::for_each_row`], which checks that every row has as many fields as the header (or
/// the first line of a headerless file).
pub(crate) struct Table {
    path: PathBuf,
    text: String,
    sep: Sep,
    /// The header fields as written (`name:type` kept), and the line of the header.
    header: Option<(Vec<String>, usize)>,
    width: usize,
}

impl Table {
    /// Reads `path` and its first non-blank line. An empty file (or one of blank lines) is a
    /// data error on line 1, field `text`; so is invalid UTF-8 (at the line of the first bad
    /// byte) and a badly quoted first line. With [`Layout::Atomic`] a header field that is not
    /// `name:type` is a data error naming that field.
    pub(crate) fn open(path: &Path, layout: Layout<'_>) -> Result<Table> {
        let text = read_text(path)?;
        let Some((first_no, first_line)) = lines(&text).next() else {
            let message = match layout {
                Layout::Atomic => {
                    "empty file: expected a header of tab-separated `name:type` fields"
                }
                Layout::Detect(_) => "empty file",
            };
            return Err(data_err(path, 1, "text", message));
        };
        let sep = match layout {
            Layout::Atomic => Sep::Tab,
            Layout::Detect(_) => Sep::detect(path, first_line),
        };
        let first = split(first_line, sep).map_err(|m| data_err(path, first_no, "text", m))?;
        let is_header = match layout {
            Layout::Atomic => {
                if let Some(bad) = first.iter().find(|f| {
                    f.rsplit_once(':')
                        .is_none_or(|(n, t)| n.trim().is_empty() || t.trim().is_empty())
                }) {
                    return Err(data_err(
                        path,
                        first_no,
                        bad.as_str(),
                        "header field is not of the form `name:type`",
                    ));
                }
                true
            }
            Layout::Detect(is_header) => {
                is_header(&first.iter().map(String::as_str).collect::<Vec<_>>())
            }
        };
        let width = first.len();
        Ok(Table {
            path: path.to_path_buf(),
            sep,
            header: is_header.then_some((first, first_no)),
            width,
            text,
        })
    }

    /// The header fields as written (with any `:type` suffix), or `None` for a headerless file.
    pub(crate) fn header(&self) -> Option<&[String]> {
        self.header.as_ref().map(|(h, _)| h.as_slice())
    }

    /// The number of fields of every row.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The name of column `c`: its header name without the `:type` suffix, or `column {c}`
    /// in a headerless file.
    pub(crate) fn name(&self, c: usize) -> String {
        match self.header() {
            Some(h) => base_name(&h[c]).to_string(),
            None => format!("column {c}"),
        }
    }

    /// The type of column `c` in a typed (`name:type`) header; empty when untyped.
    pub(crate) fn field_type(&self, c: usize) -> &str {
        self.header()
            .and_then(|h| h[c].rsplit_once(':'))
            .map_or("", |(_, t)| t.trim())
    }

    /// The index of the column named `name` (without its `:type`); a missing one is a data
    /// error on the header line naming `name` and listing the header.
    pub(crate) fn column(&self, name: &str) -> Result<usize> {
        let names: Vec<String> = (0..self.width).map(|c| self.name(c)).collect();
        names.iter().position(|n| n == name).ok_or_else(|| {
            let line = self.header.as_ref().map_or(1, |(_, l)| *l);
            data_err(
                &self.path,
                line,
                name,
                format!("missing column; the header has {}", snippet_list(&names)),
            )
        })
    }

    /// Calls `f(line, fields)` for each data row in file order (1-based line numbers; fields
    /// as written, not trimmed). A row with the wrong number of fields is a data error naming
    /// the first missing column (or the last one when there are too many).
    pub(crate) fn for_each_row(
        &self,
        mut f: impl FnMut(usize, &[&str]) -> Result<()>,
    ) -> Result<()> {
        let mut rows = lines(&self.text);
        if self.header.is_some() {
            rows.next();
        }
        let path = self.path.as_path();
        let mut buf: Vec<&str> = Vec::with_capacity(self.width);
        for (no, line) in rows {
            let (owned, csv): (Vec<String>, Vec<&str>);
            let fields: &[&str] = match self.sep {
                Sep::Tab => {
                    buf.clear();
                    buf.extend(line.split('\t'));
                    &buf
                }
                Sep::Comma => {
                    owned = split_csv(line).map_err(|m| data_err(path, no, "text", m))?;
                    csv = owned.iter().map(String::as_str).collect();
                    &csv
                }
            };
            if fields.len() != self.width {
                return Err(data_err(
                    path,
                    no,
                    self.name(fields.len().min(self.width - 1)),
                    format!(
                        "expected {} {} fields, found {}",
                        self.width,
                        self.sep.describe(),
                        fields.len()
                    ),
                ));
            }
            f(no, fields)?;
        }
        Ok(())
    }
}

/// The name of a header field without its `:type` suffix, trimmed.
pub(crate) fn base_name(field: &str) -> &str {
    field.rsplit_once(':').map_or(field, |(b, _)| b).trim()
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

    fn file(name: &str, bytes: &[u8]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("semid-delimited-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn rows(t: &Table) -> Result<Vec<(usize, Vec<String>)>> {
        let mut out = Vec::new();
        t.for_each_row(|no, f| {
            out.push((no, f.iter().map(|s| s.to_string()).collect()));
            Ok(())
        })?;
        Ok(out)
    }

    /// `(row, field, message)` of a data error.
    fn data(e: crate::Error) -> (usize, String, String) {
        match e {
            crate::Error::Data {
                row,
                field,
                message,
                ..
            } => (row, field, message),
            other => panic!("expected a data error, got {other}"),
        }
    }

    #[test]
    fn field_index_follows_quoting() {
        assert_eq!(field_index("", Sep::Comma), 0);
        assert_eq!(field_index("a,b", Sep::Comma), 1);
        assert_eq!(field_index(r#"a,"x, y"#, Sep::Comma), 1);
        assert_eq!(field_index(r#"a,"x"", y", "#, Sep::Comma), 2);
        assert_eq!(field_index(r#"a"b,c"#, Sep::Comma), 1);
        assert_eq!(field_index("a\t\"b,c\"\t", Sep::Tab), 2);
    }

    #[test]
    fn atomic_table() {
        let p = file(
            "a.item",
            "\u{feff}item_id:token\ttitle:token_seq\r\n\r\n1\t\"A, b\" c\r\n  \n2\tB\n".as_bytes(),
        );
        let t = Table::open(&p, Layout::Atomic).unwrap();
        assert_eq!(t.header().unwrap(), ["item_id:token", "title:token_seq"]);
        assert_eq!(
            (t.name(0), t.field_type(1)),
            ("item_id".into(), "token_seq")
        );
        assert_eq!(t.column("title").unwrap(), 1);
        let e = data(t.column("genre").unwrap_err());
        assert_eq!((e.0, e.1.as_str()), (1, "genre"));
        assert!(e.2.contains("item_id, title"), "{}", e.2);
        assert_eq!(
            rows(&t).unwrap(),
            [
                (3, vec!["1".into(), "\"A, b\" c".into()]),
                (5, vec!["2".into(), "B".into()])
            ]
        );

        let short = file("s.inter", b"a:token\tb:token\tc:float\n1\t2\t3\n1\n");
        let t = Table::open(&short, Layout::Atomic).unwrap();
        let e = data(rows(&t).unwrap_err());
        assert_eq!((e.0, e.1.as_str()), (3, "b"));
        assert_eq!(e.2, "expected 3 tab-separated fields, found 1");
        let long = file("l.inter", b"a:token\tb:token\n1\t2\t3\n");
        let e = data(rows(&Table::open(&long, Layout::Atomic).unwrap()).unwrap_err());
        assert_eq!((e.0, e.1.as_str()), (2, "b"));
        assert_eq!(e.2, "expected 2 tab-separated fields, found 3");

        let untyped = file("u.inter", b"a:token\tb\n1\t2\n");
        let e = data(Table::open(&untyped, Layout::Atomic).err().unwrap());
        assert_eq!((e.0, e.1.as_str()), (1, "b"));
        assert!(e.2.contains("`name:type`"));
        for (name, bytes, line) in [
            ("e.inter", &b""[..], 1),
            ("blank.inter", b"\r\n \n", 1),
            ("utf.inter", b"a:token\n1\n\xff\n", 3),
        ] {
            let e = data(
                Table::open(&file(name, bytes), Layout::Atomic)
                    .err()
                    .unwrap(),
            );
            assert_eq!((e.0, e.1.as_str()), (line, "text"), "{name}");
        }
    }

    #[test]
    fn detected_table() {
        let p = file("d.csv", b"1,\"x, y\"\n2,z\n");
        let t = Table::open(&p, Layout::Detect(&|f| f[0] == "id")).unwrap();
        assert!(t.header().is_none());
        assert_eq!((t.width(), t.name(1)), (2, "column 1".to_string()));
        assert_eq!(rows(&t).unwrap()[0], (1, vec!["1".into(), "x, y".into()]));
        let p = file("h.txt", b"id\tv:float\n7\t8\n");
        let t = Table::open(&p, Layout::Detect(&|f| f[0] == "id")).unwrap();
        assert_eq!((t.name(1), t.field_type(1)), ("v".to_string(), "float"));
        assert_eq!(rows(&t).unwrap(), [(2, vec!["7".into(), "8".into()])]);
        let bad = file("q.csv", b"a,b\n1,\"2\n");
        let e = data(rows(&Table::open(&bad, Layout::Detect(&|_| true)).unwrap()).unwrap_err());
        assert_eq!((e.0, e.1.as_str()), (2, "text"));
        assert!(e.2.contains("unterminated quote"), "{}", e.2);
    }
}
