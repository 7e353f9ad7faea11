//! The chunked coding (RFC 9112 §7.1), checked as it is copied through:
//! the bytes go on as they came, once this says they frame a body.

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk size (`digits` so far).
    Size {
        digits: u8,
    },
    /// Whitespace after the size, before `;`.
    SizeSpace,
    /// In chunk extensions.
    Ext,
    /// The LF of a size line.
    SizeLf,
    /// Data bytes left in this chunk.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (after the last chunk).
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Checks a chunked body as its bytes go by.
#[derive(Debug)]
pub(super) struct Chunked {
    state: State,
    size: u64,
    /// Data bytes so far.
    pub(super) data: u64,
    /// Bytes of size lines and trailers (bounded, as a head is).
    meta: usize,
}

/// The body is not validly chunked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Invalid(pub(super) &'static str);

/// Bytes of chunk-size lines and trailers allowed in one body.
const MAX_META: usize = 64 * 1024;

impl Chunked {
    pub(super) fn new() -> Chunked {
        Chunked {
            state: State::Size { digits: 0 },
            size: 0,
            data: 0,
            meta: 0,
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Checks `bytes`, which follow what it has seen; returns how many of
    /// them belong to the body (all, unless it ends within them).
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<usize, Invalid> {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == State::Done {
                return Ok(i);
            }
            if self.state == State::Data {
                let take = (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                i += take;
                self.size -= take as u64;
                self.data += take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.meta += 1;
            if self.meta > MAX_META {
                return Err(Invalid("chunk size lines or trailers too long"));
            }
            self.state = match (self.state, b) {
                (State::Size { digits }, b) if b.is_ascii_hexdigit() => {
                    if digits == 15 {
                        return Err(Invalid("chunk size too large"));
                    }
                    let d = (b as char).to_digit(16).unwrap_or_default();
                    self.size = self.size * 16 + u64::from(d);
                    State::Size { digits: digits + 1 }
                }
                (State::Size { digits: 0 }, _) => return Err(Invalid("invalid chunk size")),
                (State::Size { .. } | State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
                (State::Size { .. } | State::SizeSpace, b';') => State::Ext,
                (State::Size { .. }, b'\r') => State::SizeLf,
                (State::Size { .. } | State::SizeSpace, _) => {
                    return Err(Invalid("invalid chunk size"));
                }
                (State::Ext, b'\r') => State::SizeLf,
                (State::Ext, b'\t') => State::Ext,
                (State::Ext, b) if b < 0x20 || b == 0x7f => {
                    return Err(Invalid("invalid chunk extension"));
                }
                (State::Ext, _) => State::Ext,
                (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size { digits: 0 },
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::TrailerStart | State::Trailer, b)
                    if b >= 0x20 && b != 0x7f || b == b'\t' =>
                {
                    State::Trailer
                }
                (State::Trailer, b'\r') => State::TrailerLf,
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::EndLf, b'\n') => State::Done,
                (State::SizeLf | State::DataLf | State::TrailerLf | State::EndLf, _) => {
                    return Err(Invalid("a CR without its LF"));
                }
                (State::DataCr, _) => return Err(Invalid("a chunk longer than its size")),
                _ => return Err(Invalid("invalid chunked framing")),
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &[u8]) -> Result<(usize, u64, bool), Invalid> {
        let mut c = Chunked::new();
        let n = c.feed(s)?;
        Ok((n, c.data, c.is_done()))
    }

    #[test]
    fn valid_bodies_end_where_they_end() {
        assert_eq!(all(b"5\r\nhello\r\n0\r\n\r\nGET"), Ok((15, 5, true)));
        assert_eq!(
            all(b"5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
            Ok((27, 5, true))
        );
        assert_eq!(all(b"A \r\n"), Err(Invalid("invalid chunk size")));
        assert_eq!(all(b"a ;x\r\n0123456789\r\n0\r\n\r\n"), Ok((23, 10, true)));
        // Byte by byte: the same.
        let body = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
        let mut c = Chunked::new();
        for b in body.iter() {
            assert_eq!(c.feed(std::slice::from_ref(b)), Ok(1));
        }
        assert!(c.is_done());
        assert_eq!(c.data, 19);
    }

    #[test]
    fn invalid_bodies_are_refused() {
        for bad in [
            &b"-1\r\n"[..],
            b"0x10\r\n",
            b"ffffffffffffffffff\r\n",
            b"5\nhello\r\n",
            b"5\r\nhello!\r\n",
            b"\r\n",
            b"5\r\nhello\r\n0\r\n\r",
            b"5;\x01\r\n",
            b"g\r\n",
        ] {
            let mut c = Chunked::new();
            let r = c.feed(bad);
            assert!(
                r.is_err() || !c.is_done() && bad.ends_with(b"\r"),
                "{bad:?}: {r:?}"
            );
            if !bad.ends_with(b"\r") {
                assert!(r.is_err(), "{bad:?}");
            }
        }
    }
}
