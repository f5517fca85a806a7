//! RFC 4180 output: every CSV file semid writes is read back correctly by other tools.
//!
//! A field is written as is unless it holds a comma, a double quote, a tab, a line break, or
//! leading or trailing whitespace (which many readers trim); then it is enclosed in double
//! quotes with each inner quote doubled. MovieLens titles such as
//! `American President, The (1995)` need this: a quarter of ML-1M's titles hold a comma.

use std::borrow::Cow;

/// `field` as one RFC 4180 CSV field (quoted only when it must be).
pub fn csv_field(field: &str) -> Cow<'_, str> {
    let needs = field.contains([',', '"', '\t', '\n', '\r'])
        || field.starts_with(char::is_whitespace)
        || field.ends_with(char::is_whitespace);
    if needs {
        Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(field)
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn plain_fields_are_written_as_they_are() {
        assert_eq!(csv_field("1193"), "1193");
        assert_eq!(csv_field("Toy Story (1995)"), "Toy Story (1995)");
    }

    #[test]
    fn commas_quotes_tabs_breaks_and_edge_spaces_are_quoted() {
        assert_eq!(
            csv_field("American President, The (1995)"),
            "\"American President, The (1995)\""
        );
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("a\tb"), "\"a\tb\"");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
        assert_eq!(csv_field(" x "), "\" x \"");
    }
}
