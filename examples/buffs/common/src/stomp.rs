//! A small STOMP 1.2 client over tokio: CONNECT, SEND and SUBSCRIBE with
//! receipts, MESSAGE frames, DISCONNECT. Enough for the buffs events; see
//! the example's README for why STOMP.
//!
//! Frames are `COMMAND\nheader:value\n...\n\nbody\0`. Header values are
//! escaped (`\\`, `\n`, `\r`, `\c`) except in CONNECT and CONNECTED; a body
//! is read by `content-length` when given, else up to the NUL. Lone EOLs
//! between frames are heart-beats and are skipped.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest frame accepted from the broker.
const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad STOMP URL `{0}`: expected stomp://[user:password@]host:port")]
    Url(String),
    #[error("cannot reach the broker at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("broker connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the broker sent an ERROR frame: {0}")]
    Broker(String),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Where the broker is and who we are: `stomp://[user:password@]host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub addr: String,
    pub login: Option<(String, String)>,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, Error> {
        let rest = s
            .strip_prefix("stomp://")
            .ok_or_else(|| Error::Url(s.into()))?;
        let rest = rest.trim_end_matches('/');
        let (login, addr) = match rest.rsplit_once('@') {
            Some((cred, addr)) => {
                let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
                (Some((u.to_owned(), p.to_owned())), addr)
            }
            None => (None, rest),
        };
        if addr.is_empty() || !addr.contains(':') {
            return Err(Error::Url(s.into()));
        }
        Ok(Url {
            addr: addr.to_owned(),
            login,
        })
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        // The first occurrence wins (STOMP 1.2, "Repeated Header Entries").
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn error_text(&self) -> String {
        let msg = self.header("message").unwrap_or("").to_owned();
        let body = String::from_utf8_lossy(&self.body).trim().to_owned();
        match (msg.is_empty(), body.is_empty()) {
            (_, true) => msg,
            (true, false) => body,
            (false, false) => format!("{msg}: {body}"),
        }
    }
}

/// A connected session.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
    receipts: u64,
    timeout: Duration,
}

impl Client {
    /// Connects and logs in; `timeout` bounds every wait for the broker.
    pub async fn connect(url: &Url, timeout: Duration) -> Result<Client, Error> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(&url.addr))
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map_err(|source| Error::Connect {
                addr: url.addr.clone(),
                source,
            })?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut c = Client {
            reader: BufReader::new(r),
            writer: BufWriter::new(w),
            receipts: 0,
            timeout,
        };
        let mut headers = vec![
            ("accept-version", "1.2".to_owned()),
            ("host", "/".to_owned()),
            ("heart-beat", "0,0".to_owned()),
        ];
        if let Some((user, pass)) = &url.login {
            headers.push(("login", user.clone()));
            headers.push(("passcode", pass.clone()));
        }
        c.write("CONNECT", &headers, b"", false).await?;
        let frame = c.read_timed().await?;
        match frame.command.as_str() {
            "CONNECTED" => Ok(c),
            "ERROR" => Err(Error::Broker(frame.error_text())),
            other => Err(Error::Protocol(format!("expected CONNECTED, got {other}"))),
        }
    }

    /// Sends `body` to `destination` and waits for the broker's receipt.
    pub async fn send(
        &mut self,
        destination: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), Error> {
        let receipt = self.next_receipt();
        let headers = [
            ("destination", destination.to_owned()),
            ("content-type", content_type.to_owned()),
            ("receipt", receipt.clone()),
        ];
        self.write("SEND", &headers, body, true).await?;
        self.await_receipt(&receipt).await
    }

    /// Subscribes (`ack:auto`) and waits for the broker's receipt.
    pub async fn subscribe(&mut self, id: &str, destination: &str) -> Result<(), Error> {
        let receipt = self.next_receipt();
        let headers = [
            ("id", id.to_owned()),
            ("destination", destination.to_owned()),
            ("ack", "auto".to_owned()),
            ("receipt", receipt.clone()),
        ];
        self.write("SUBSCRIBE", &headers, b"", true).await?;
        self.await_receipt(&receipt).await
    }

    /// The next frame from the broker (a MESSAGE, usually); waits as long as
    /// it takes. An ERROR frame is returned as an error.
    pub async fn next(&mut self) -> Result<Frame, Error> {
        let frame = read_frame(&mut self.reader).await?;
        if frame.command == "ERROR" {
            return Err(Error::Broker(frame.error_text()));
        }
        Ok(frame)
    }

    /// Ends the session cleanly: DISCONNECT, and the broker's receipt.
    pub async fn disconnect(mut self) -> Result<(), Error> {
        let receipt = self.next_receipt();
        self.write("DISCONNECT", &[("receipt", receipt.clone())], b"", true)
            .await?;
        self.await_receipt(&receipt).await
    }

    fn next_receipt(&mut self) -> String {
        self.receipts += 1;
        format!("r-{}", self.receipts)
    }

    async fn await_receipt(&mut self, id: &str) -> Result<(), Error> {
        loop {
            let frame = self.read_timed().await?;
            match frame.command.as_str() {
                "RECEIPT" if frame.header("receipt-id") == Some(id) => return Ok(()),
                "ERROR" => return Err(Error::Broker(frame.error_text())),
                // A MESSAGE may arrive before the receipt of a later frame;
                // this client only waits for receipts on sessions that do
                // not consume (publishers) or before consuming starts.
                _ => continue,
            }
        }
    }

    async fn read_timed(&mut self) -> Result<Frame, Error> {
        tokio::time::timeout(self.timeout, read_frame(&mut self.reader))
            .await
            .map_err(|_| Error::Timeout(self.timeout))?
    }

    async fn write(
        &mut self,
        command: &str,
        headers: &[(&str, String)],
        body: &[u8],
        escape_values: bool,
    ) -> Result<(), Error> {
        let mut head = String::with_capacity(128);
        head.push_str(command);
        head.push('\n');
        for (k, v) in headers {
            head.push_str(k);
            head.push(':');
            if escape_values {
                head.push_str(&escape(v));
            } else {
                head.push_str(v);
            }
            head.push('\n');
        }
        if !body.is_empty() {
            head.push_str(&format!("content-length:{}\n", body.len()));
        }
        head.push('\n');
        self.writer.write_all(head.as_bytes()).await?;
        self.writer.write_all(body).await?;
        self.writer.write_all(b"\0").await?;
        tokio::time::timeout(self.timeout, self.writer.flush())
            .await
            .map_err(|_| Error::Timeout(self.timeout))??;
        Ok(())
    }
}

/// Reads one frame, skipping heart-beat EOLs before it.
pub async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<Frame, Error> {
    let mut line = Vec::new();
    let command = loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let text = trim_eol(&line);
        if !text.is_empty() {
            break String::from_utf8_lossy(text).into_owned();
        }
    };
    let decode = command != "CONNECTED";
    let mut headers = Vec::new();
    let mut size = line.len();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        size += n;
        if size > MAX_FRAME {
            return Err(Error::Protocol(format!(
                "frame head over {MAX_FRAME} bytes"
            )));
        }
        let text = trim_eol(&line);
        if text.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(text);
        let (k, v) = text
            .split_once(':')
            .ok_or_else(|| Error::Protocol(format!("header line without `:`: {text}")))?;
        let (k, v) = if decode {
            (unescape(k)?, unescape(v)?)
        } else {
            (k.to_owned(), v.to_owned())
        };
        headers.push((k, v));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| Error::Protocol(format!("bad content-length `{v}`")))
        })
        .transpose()?;
    let body = match length {
        Some(n) if n > MAX_FRAME => {
            return Err(Error::Protocol(format!(
                "body of {n} bytes is over {MAX_FRAME}"
            )));
        }
        Some(n) => {
            let mut body = vec![0; n];
            r.read_exact(&mut body).await?;
            let mut nul = [0u8; 1];
            r.read_exact(&mut nul).await?;
            if nul[0] != 0 {
                return Err(Error::Protocol("body not followed by NUL".into()));
            }
            body
        }
        None => {
            let mut body = Vec::new();
            (&mut *r)
                .take(MAX_FRAME as u64 + 1)
                .read_until(0, &mut body)
                .await?;
            if body.pop() != Some(0) {
                return Err(Error::Protocol("body without NUL terminator".into()));
            }
            body
        }
    };
    Ok(Frame {
        command,
        headers,
        body,
    })
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ':' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(v: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            other => {
                return Err(Error::Protocol(format!(
                    "undefined escape `\\{}` in a header",
                    other.map(String::from).unwrap_or_default()
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Frame, Error> {
        read_frame(&mut BufReader::new(bytes)).await
    }

    #[tokio::test]
    async fn frames_with_and_without_content_length() {
        let f = parse(b"\n\r\nMESSAGE\ndestination:/topic/a\\cb\ncontent-length:3\n\na\0b\0")
            .await
            .unwrap();
        assert_eq!(f.command, "MESSAGE");
        assert_eq!(f.header("destination"), Some("/topic/a:b"));
        assert_eq!(f.body, b"a\0b");
        let f = parse(b"RECEIPT\r\nreceipt-id:r-1\r\n\r\n\0").await.unwrap();
        assert_eq!(f.header("receipt-id"), Some("r-1"));
        assert!(f.body.is_empty());
        let f = parse(b"CONNECTED\nserver:x\\y\n\n\0").await.unwrap();
        assert_eq!(
            f.header("server"),
            Some("x\\y"),
            "CONNECTED values are not unescaped"
        );
    }

    #[tokio::test]
    async fn bad_frames_are_errors() {
        assert!(matches!(
            parse(b"MESSAGE\nno-colon\n\n\0").await,
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse(b"MESSAGE\nk:\\t\n\n\0").await,
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse(b"MESSAGE\ncontent-length:2\n\nabc\0").await,
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse(b"MESSAGE\n\nunterminated").await,
            Err(Error::Protocol(_))
        ));
        assert!(matches!(parse(b"MESS").await, Err(Error::Io(_))));
    }

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("stomp://127.0.0.1:61613").unwrap(),
            Url {
                addr: "127.0.0.1:61613".into(),
                login: None
            }
        );
        assert_eq!(
            Url::parse("stomp://u:p@mq:61613/").unwrap(),
            Url {
                addr: "mq:61613".into(),
                login: Some(("u".into(), "p".into()))
            }
        );
        assert!(Url::parse("tcp://mq:61613").is_err());
        assert!(Url::parse("stomp://mq").is_err());
    }

    #[test]
    fn escaping_round_trips() {
        let v = "a:b\\c\nd\re";
        assert_eq!(unescape(&escape(v)).unwrap(), v);
    }
}
