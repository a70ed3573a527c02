//! What people read: `check`'s table, JSON and CSV, `explain`'s timelines and
//! derivations, and the audit export. Each takes an evaluation from
//! [`crate::domain`] and writes; none reads the database itself.

pub mod check;
pub mod explain;
pub mod export;
pub mod stream;
pub mod table;

/// Text for a terminal: a writer that shows each control character of the
/// text written through it (ESC, carriage return, backspace, DEL, the C1
/// controls…) as an escape such as `\u{1b}`, keeping only newlines and
/// tabs. Case values are written by people and ETL alike; one holding an
/// escape sequence must not clear a screen or retitle a window.
pub struct Printable<W: std::io::Write> {
    inner: W,
    /// The start of a character split between two writes.
    carry: Vec<u8>,
}

impl<W: std::io::Write> Printable<W> {
    pub fn new(inner: W) -> Printable<W> {
        Printable {
            inner,
            carry: Vec::new(),
        }
    }

    fn put(&mut self, text: &str) -> std::io::Result<()> {
        let mut rest = text;
        while let Some(i) = rest.find(|c: char| c.is_control() && c != '\n' && c != '\t') {
            let (plain, from) = rest.split_at(i);
            self.inner.write_all(plain.as_bytes())?;
            let mut chars = from.chars();
            if let Some(c) = chars.next() {
                write!(self.inner, "{}", c.escape_unicode())?;
            }
            rest = chars.as_str();
        }
        self.inner.write_all(rest.as_bytes())
    }
}

impl<W: std::io::Write> std::io::Write for Printable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.carry.extend_from_slice(buf);
        let bytes = std::mem::take(&mut self.carry);
        let (text, rest) = match std::str::from_utf8(&bytes) {
            Ok(t) => (t, &[][..]),
            // Bytes that end part-way through a character wait for the rest.
            Err(e) if e.error_len().is_none() => {
                let (a, b) = bytes.split_at(e.valid_up_to());
                (std::str::from_utf8(a).unwrap_or_default(), b)
            }
            Err(_) => {
                let lossy = String::from_utf8_lossy(&bytes).into_owned();
                self.put(&lossy)?;
                return Ok(buf.len());
            }
        };
        self.put(text)?;
        self.carry = rest.to_vec();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.carry.is_empty() {
            let lossy = String::from_utf8_lossy(&std::mem::take(&mut self.carry)).into_owned();
            self.put(&lossy)?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::Printable;
    use std::io::Write;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        let mut out = Printable::new(Vec::new());
        out.write_all("BAR-1\x1b[2J\r\u{9b}31m\u{7f}\tok\n".as_bytes())
            .expect("write");
        out.flush().expect("flush");
        assert_eq!(
            String::from_utf8(out.inner).expect("utf8"),
            "BAR-1\\u{1b}[2J\\u{d}\\u{9b}31m\\u{7f}\tok\n"
        );
    }

    #[test]
    fn a_character_split_between_writes_is_kept_whole() {
        let mut out = Printable::new(Vec::new());
        let text = "Café \u{9b}";
        let bytes = text.as_bytes();
        for chunk in bytes.chunks(1) {
            out.write_all(chunk).expect("write");
        }
        out.flush().expect("flush");
        assert_eq!(String::from_utf8(out.inner).expect("utf8"), "Café \\u{9b}");
    }
}
