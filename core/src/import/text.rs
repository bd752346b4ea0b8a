//! A text contacts file: its encoding, its separator, and its records with the line each starts
//! on. The records are split here rather than by the csv crate, which reads an unterminated
//! quote to the end of the file as one field without a word; here it is a bad row at the line
//! the quote opened, and reading goes on with the next line.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::RowProblem;

/// How the file's bytes were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "utf-8-bom")]
    Utf8Bom,
    /// What Excel on Windows writes as "CSV (semicolon delimited)" in western Europe.
    #[serde(rename = "windows-1252")]
    Windows1252,
    /// Lines pasted together from two sources: each line read as UTF-8 if it is valid UTF-8
    /// with a character beyond ASCII, the others as Windows-1252.
    #[serde(rename = "windows-1252+utf-8")]
    Windows1252WithUtf8Lines,
    /// Excel's "Unicode text": UTF-16 with a byte order mark, tab-separated.
    #[serde(rename = "utf-16le")]
    Utf16Le,
    #[serde(rename = "utf-16be")]
    Utf16Be,
}

impl Encoding {
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 with BOM",
            Encoding::Windows1252 => "Windows-1252",
            Encoding::Windows1252WithUtf8Lines => "Windows-1252, with some lines in UTF-8",
            Encoding::Utf16Le => "UTF-16 LE",
            Encoding::Utf16Be => "UTF-16 BE",
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: Encoding,
    /// Bytes that were not valid in the encoding became U+FFFD (only possible for UTF-8 and
    /// UTF-16: every byte is a character in Windows-1252).
    pub damaged: bool,
}

/// A byte order mark first; else UTF-8 if the bytes are valid UTF-8; else Windows-1252, which
/// is what a file that is not UTF-8 comes from in practice (Excel, Windows, western Europe).
pub fn decode(input: &[u8]) -> Decoded<'_> {
    let (encoding, rest, codec) = if let Some(rest) = input.strip_prefix(b"\xEF\xBB\xBF") {
        (Encoding::Utf8Bom, rest, encoding_rs::UTF_8)
    } else if let Some(rest) = input.strip_prefix(b"\xFF\xFE") {
        (Encoding::Utf16Le, rest, encoding_rs::UTF_16LE)
    } else if let Some(rest) = input.strip_prefix(b"\xFE\xFF") {
        (Encoding::Utf16Be, rest, encoding_rs::UTF_16BE)
    } else if let Some(encoding) = utf16_without_bom(input) {
        // NULs every other byte: UTF-16 that lost its byte order mark (a header is ASCII).
        (encoding, input, if encoding == Encoding::Utf16Le { encoding_rs::UTF_16LE } else { encoding_rs::UTF_16BE })
    } else if let Ok(text) = std::str::from_utf8(input) {
        return Decoded { text: Cow::Borrowed(text), encoding: Encoding::Utf8, damaged: false };
    } else {
        return windows_1252_by_line(input);
    };
    let (text, damaged) = codec.decode_without_bom_handling(rest);
    Decoded { text, encoding, damaged }
}

/// Windows-1252, except lines that are valid UTF-8 with a character beyond ASCII: a file put
/// together from two exports would otherwise turn "Åsa" into "Ã…sa" on those lines unseen.
fn windows_1252_by_line(input: &[u8]) -> Decoded<'static> {
    let mut text = String::with_capacity(input.len() + input.len() / 8);
    let mut mixed = false;
    for line in input.split_inclusive(|b| *b == b'\n') {
        match std::str::from_utf8(line) {
            Ok(utf8) if !utf8.is_ascii() => {
                mixed = true;
                text.push_str(utf8);
            }
            _ => text.push_str(&encoding_rs::WINDOWS_1252.decode_without_bom_handling(line).0),
        }
    }
    let encoding = if mixed { Encoding::Windows1252WithUtf8Lines } else { Encoding::Windows1252 };
    Decoded { text: Cow::Owned(text), encoding, damaged: false }
}

fn utf16_without_bom(input: &[u8]) -> Option<Encoding> {
    let head = &input[..input.len().min(64) & !1];
    if head.len() < 4 {
        return None;
    }
    let pairs = || head.chunks_exact(2);
    if pairs().all(|p| p[1] == 0 && p[0] != 0) {
        Some(Encoding::Utf16Le)
    } else if pairs().all(|p| p[0] == 0 && p[1] != 0) {
        Some(Encoding::Utf16Be)
    } else {
        None
    }
}

/// The records of a delimited text, each with the line it starts on (1-based, as an editor
/// counts: a newline inside a quoted field counts too).
pub struct Records<'a> {
    text: &'a str,
    pos: usize,
    line: u64,
    delimiter: u8,
}

impl<'a> Records<'a> {
    /// Takes the separator from Excel's `sep=;` first line if there is one, else guesses it
    /// from the header line.
    pub fn new(text: &'a str) -> Self {
        let first_line = text.split(['\r', '\n']).next().unwrap_or(text);
        let mut records = Self { text, pos: 0, line: 1, delimiter: sniff_delimiter(first_line.as_bytes()) };
        if let Some(sep) = first_line.strip_prefix("sep=").or_else(|| first_line.strip_prefix("SEP=")) {
            if let [b] = sep.as_bytes() {
                records.delimiter = *b;
                records.pos = first_line.len();
                if records.pos < text.len() {
                    records.eat_terminator();
                }
            }
        }
        records
    }

    pub fn delimiter(&self) -> char {
        char::from(self.delimiter)
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn at_terminator(&self, at: usize) -> bool {
        matches!(self.bytes().get(at), Some(b'\r' | b'\n'))
    }

    /// Steps over one `\r\n`, `\n` or `\r`.
    fn eat_terminator(&mut self) {
        let b = self.bytes();
        if b[self.pos] == b'\r' && b.get(self.pos + 1) == Some(&b'\n') {
            self.pos += 2;
        } else {
            self.pos += 1;
        }
        self.line += 1;
    }

    fn quoted(&mut self) -> Result<String, RowProblem> {
        let b = self.bytes();
        let (opened_at, opened_line) = (self.pos, self.line);
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(offset) = self.text[self.pos..].find('"') else {
                return Err(self.recover(opened_at, opened_line, "a quote opens a field on this line and is never closed".into()));
            };
            let chunk = &self.text[self.pos..self.pos + offset];
            self.line += count_lines(chunk);
            value.push_str(chunk);
            self.pos += offset + 1;
            if b.get(self.pos) == Some(&b'"') {
                value.push('"');
                self.pos += 1;
                continue;
            }
            // Spaces between a closing quote and the separator are a hand-edited file's slip.
            let mut after = self.pos;
            while self.delimiter != b' ' && b.get(after) == Some(&b' ') {
                after += 1;
            }
            if after >= b.len() || b[after] == self.delimiter || self.at_terminator(after) {
                self.pos = after;
                return Ok(value);
            }
            let reason = if self.line == opened_line {
                "a quote inside a quoted field must be doubled (\"\"); the field's text is unclear".to_owned()
            } else {
                format!(
                    "a quote opens a field on this line and only closes on line {} in the middle of a field; is a closing quote missing?",
                    self.line
                )
            };
            return Err(self.recover(opened_at, opened_line, reason));
        }
    }

    /// Goes on reading at the line after the one where the broken quote opened, so the rows
    /// after it are read as rows instead of as one field's text.
    fn recover(&mut self, opened_at: usize, opened_line: u64, reason: String) -> RowProblem {
        self.pos = opened_at;
        while self.pos < self.text.len() && !self.at_terminator(self.pos) {
            self.pos += 1;
        }
        self.line = opened_line;
        if self.pos < self.text.len() {
            self.eat_terminator();
        }
        RowProblem { line: opened_line, reason }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<(u64, Vec<String>), RowProblem>;

    fn next(&mut self) -> Option<Self::Item> {
        // Blank lines hold no record.
        while self.at_terminator(self.pos) {
            self.eat_terminator();
        }
        if self.pos >= self.text.len() {
            return None;
        }
        let b = self.bytes();
        let line = self.line;
        let mut fields = Vec::new();
        loop {
            let mut start = self.pos;
            while self.delimiter != b' ' && b.get(start) == Some(&b' ') {
                start += 1;
            }
            let value = if b.get(start) == Some(&b'"') {
                self.pos = start;
                match self.quoted() {
                    Ok(value) => value,
                    Err(problem) => return Some(Err(problem)),
                }
            } else {
                // A quote inside an unquoted field is text, as the csv crate and Excel read it.
                let start = self.pos;
                while self.pos < b.len() && b[self.pos] != self.delimiter && !self.at_terminator(self.pos) {
                    self.pos += 1;
                }
                self.text[start..self.pos].to_owned()
            };
            fields.push(value);
            if self.pos >= b.len() {
                break;
            }
            if b[self.pos] == self.delimiter {
                self.pos += 1;
                continue;
            }
            self.eat_terminator();
            break;
        }
        Some(Ok((line, fields)))
    }
}

/// Lines that end inside `text`: at each `\r\n`, `\n` or lone `\r`.
fn count_lines(text: &str) -> u64 {
    let b = text.as_bytes();
    (0..b.len()).filter(|&i| b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n'))).count() as u64
}

/// Picks the separator that splits the header line into the most fields, ignoring quoted text.
fn sniff_delimiter(first_line: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in first_line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for (d, n) in counts.iter_mut() {
                if b == *d {
                    *n += 1;
                }
            }
        }
    }
    // Ties go to the first: a one-column file is comma-separated.
    counts.iter().rev().max_by_key(|(_, n)| *n).map(|(d, _)| *d).unwrap_or(b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<Result<(u64, Vec<String>), RowProblem>> {
        Records::new(text).collect()
    }

    fn ok(line: u64, fields: &[&str]) -> Result<(u64, Vec<String>), RowProblem> {
        Ok((line, fields.iter().map(|f| f.to_string()).collect()))
    }

    #[test]
    fn a_file_mixing_utf8_and_windows_1252_lines_reads_each_line_right_and_says_so() {
        let mut input = "Förnamn;E-post\r\nÅsa;asa@example.se\r\n".as_bytes().to_vec();
        input.extend_from_slice(b"\xd6rjan;orjan@example.se\r\n");
        let d = decode(&input);
        assert_eq!(d.encoding, Encoding::Windows1252WithUtf8Lines);
        assert_eq!(&*d.text, "Förnamn;E-post\r\nÅsa;asa@example.se\r\nÖrjan;orjan@example.se\r\n");
        assert_eq!(d.encoding.label(), "Windows-1252, with some lines in UTF-8");
    }

    #[test]
    fn utf8_with_and_without_bom_is_told_apart() {
        let plain = decode("email\nå@x.example\n".as_bytes());
        assert_eq!((plain.encoding, plain.damaged), (Encoding::Utf8, false));
        assert!(matches!(plain.text, Cow::Borrowed(_)), "valid UTF-8 is not copied");
        let bom = decode("\u{feff}email\nå@x.example\n".as_bytes());
        assert_eq!((bom.encoding, &*bom.text), (Encoding::Utf8Bom, "email\nå@x.example\n"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_read_as_windows_1252() {
        // "Förnamn;Åsa – €" as Excel on Windows saves it.
        let input = b"F\xF6rnamn;\xC5sa \x96 \x80\r\n";
        let d = decode(input);
        assert_eq!((d.encoding, &*d.text, d.damaged), (Encoding::Windows1252, "Förnamn;Åsa – €\r\n", false));
    }

    #[test]
    fn utf16_with_a_byte_order_mark_is_read_in_either_byte_order() {
        let text = "E-post\tFörnamn\r\nåsa@x.example\tÅsa\r\n";
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        for (bytes, encoding) in [(le, Encoding::Utf16Le), (be, Encoding::Utf16Be)] {
            let d = decode(&bytes);
            assert_eq!((d.encoding, &*d.text, d.damaged), (encoding, text, false));
        }
        let bare: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(decode(&bare).encoding, Encoding::Utf16Le, "a lost byte order mark is recognised by the NULs");
    }

    #[test]
    fn a_broken_byte_after_a_utf8_bom_is_marked_damaged() {
        let d = decode(b"\xEF\xBB\xBFemail,name\nx@y.example,\xC5sa\n");
        assert_eq!((d.encoding, d.damaged), (Encoding::Utf8Bom, true));
        assert!(d.text.contains('\u{FFFD}'));
    }

    #[test]
    fn the_separator_is_guessed_from_the_header_or_taken_from_excels_sep_line() {
        assert_eq!(Records::new("a;b;c\n").delimiter(), ';');
        assert_eq!(Records::new("a\tb\tc\n").delimiter(), '\t');
        assert_eq!(Records::new("\"a;b\",c\n").delimiter(), ',');
        assert_eq!(Records::new("email\n").delimiter(), ',');
        let mut r = Records::new("sep=;\r\nemail;name\r\na@x.example;A,B\r\n");
        assert_eq!(r.delimiter(), ';');
        assert_eq!(r.next(), Some(ok(2, &["email", "name"])));
        assert_eq!(r.next(), Some(ok(3, &["a@x.example", "A,B"])));
    }

    #[test]
    fn records_carry_the_line_they_start_on_across_blank_lines_and_quoted_newlines() {
        let got = records("a,b\r\n\r\n\"x\r\ny\",2\n\n\n3,\"\"\"q\"\"\"\r4,\n");
        assert_eq!(got, vec![ok(1, &["a", "b"]), ok(3, &["x\r\ny", "2"]), ok(7, &["3", "\"q\""]), ok(8, &["4", ""])]);
    }

    #[test]
    fn an_unterminated_quote_is_reported_where_it_opened_and_the_rows_after_it_are_read() {
        let got = records("email,note\na@x.example,\"never closed\nb@x.example,fine\nc@x.example,also fine\n");
        assert_eq!(got.len(), 4, "{got:?}");
        let problem = got[1].as_ref().unwrap_err();
        assert_eq!(problem.line, 2);
        assert!(problem.reason.contains("never closed"), "{}", problem.reason);
        assert_eq!(got[2], ok(3, &["b@x.example", "fine"]));
        assert_eq!(got[3], ok(4, &["c@x.example", "also fine"]));
    }

    #[test]
    fn a_quote_that_closes_lines_later_in_the_middle_of_a_field_does_not_swallow_the_rows_between() {
        let got = records("email,note\na@x.example,\"oops\nb@x.example,\"ok\"\nc@x.example,x\n");
        let problem = got[1].as_ref().unwrap_err();
        assert_eq!(problem.line, 2);
        assert!(problem.reason.contains("line 3"), "{}", problem.reason);
        assert_eq!(got[2..], [ok(3, &["b@x.example", "ok"]), ok(4, &["c@x.example", "x"])]);
    }

    #[test]
    fn an_undoubled_quote_inside_a_quoted_field_is_a_bad_row_not_garbled_text() {
        let got = records("email,company\na@x.example,\"Berg \"Lund\" AB\"\nb@x.example,Lund\n");
        assert_eq!(got[1].as_ref().unwrap_err().line, 2);
        assert_eq!(got[2], ok(3, &["b@x.example", "Lund"]));
    }

    #[test]
    fn quotes_inside_unquoted_fields_and_spaces_around_quoted_ones_are_tolerated() {
        assert_eq!(records("a,b\nBerg \"Lund\",x\n")[1], ok(2, &["Berg \"Lund\"", "x"]));
        assert_eq!(records("a,b\n \"x, y\" ,z\n")[1], ok(2, &["x, y", "z"]));
        assert_eq!(records("a,b\nx,")[1], ok(2, &["x", ""]), "a last line without a newline");
    }
}
