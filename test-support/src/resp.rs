//! A minimal RESP2 encoder and decoder, just enough for test assertions.

use std::fmt;
use std::io::{self, BufRead};

/// Largest bulk string accepted (Redis's own `proto-max-bulk-len` default).
const MAX_BULK_LEN: i64 = 512 * 1024 * 1024;
/// Deepest nesting of arrays accepted before the reply is treated as corrupt.
const MAX_DEPTH: usize = 64;

/// One RESP2 reply from the server.
///
/// `Debug` prints bulk strings as escaped byte strings (`Bulk(b"v")`), so
/// failed assertions stay readable.
///
/// ```no_run
/// use cache_test_support::{RedisServer, Reply};
///
/// let server = RedisServer::start();
/// match server.cmd(&["GET", "missing"]) {
///     Reply::Nil => {}
///     other => panic!("expected nil, got {other:?}"),
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Reply {
    /// A null bulk string or null array (`$-1` / `*-1`).
    Nil,
    /// An integer reply (`:`).
    Int(i64),
    /// A simple string reply (`+`), such as `OK` or `PONG`.
    Status(String),
    /// An error reply (`-`), such as `ERR unknown command`.
    Error(String),
    /// A bulk string reply (`$`).
    Bulk(Vec<u8>),
    /// An array reply (`*`).
    Array(Vec<Reply>),
}

impl Reply {
    /// Returns the integer of an [`Reply::Int`].
    ///
    /// # Panics
    ///
    /// Panics, naming the reply it got, for any other kind of reply.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// assert_eq!(server.cmd(&["PTTL", "missing"]).as_int(), -2);
    /// ```
    #[track_caller]
    #[must_use]
    pub fn as_int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// Returns the bytes of a [`Reply::Bulk`] or [`Reply::Status`], or `None`
    /// for [`Reply::Nil`].
    ///
    /// # Panics
    ///
    /// Panics, naming the reply it got, for integers, errors and arrays.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// server.cmd_bytes(&[b"SET", b"k", b"\x00\xff"]);
    /// assert_eq!(server.cmd(&["GET", "k"]).as_bytes(), Some(&b"\x00\xff"[..]));
    /// assert_eq!(server.cmd(&["GET", "missing"]).as_bytes(), None);
    /// ```
    #[track_caller]
    #[must_use]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Nil => None,
            Reply::Bulk(bytes) => Some(bytes),
            Reply::Status(s) => Some(s.as_bytes()),
            other => panic!("expected a bulk string, status or nil reply, got {other:?}"),
        }
    }

    /// Returns a [`Reply::Bulk`] or [`Reply::Status`] as a `String`, or
    /// `None` for [`Reply::Nil`].
    ///
    /// # Panics
    ///
    /// Panics, naming the reply it got, for integers, errors, arrays and bulk
    /// strings that are not valid UTF-8.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// server.cmd(&["SET", "k", "v"]);
    /// assert_eq!(server.cmd(&["GET", "k"]).as_string().as_deref(), Some("v"));
    /// ```
    #[track_caller]
    #[must_use]
    pub fn as_string(&self) -> Option<String> {
        let bytes = self.as_bytes()?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Some(s.to_owned()),
            Err(_) => panic!("expected a UTF-8 string reply, got {self:?}"),
        }
    }

    /// Returns the elements of a [`Reply::Array`].
    ///
    /// # Panics
    ///
    /// Panics, naming the reply it got, for any other kind of reply
    /// (including [`Reply::Nil`]).
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// let save = server.cmd(&["CONFIG", "GET", "save"]);
    /// assert_eq!(save.as_array()[1].as_string().as_deref(), Some(""));
    /// ```
    #[track_caller]
    #[must_use]
    pub fn as_array(&self) -> &[Reply] {
        match self {
            Reply::Array(items) => items,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    /// Returns `true` for [`Reply::Nil`].
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// assert!(server.cmd(&["GET", "missing"]).is_nil());
    /// ```
    #[must_use]
    pub fn is_nil(&self) -> bool {
        matches!(self, Reply::Nil)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Nil => f.write_str("Nil"),
            Reply::Int(n) => f.debug_tuple("Int").field(n).finish(),
            Reply::Status(s) => f.debug_tuple("Status").field(s).finish(),
            Reply::Error(s) => f.debug_tuple("Error").field(s).finish(),
            Reply::Bulk(bytes) => write!(f, "Bulk(b\"{}\")", bytes.escape_ascii()),
            Reply::Array(items) => f.debug_tuple("Array").field(items).finish(),
        }
    }
}

/// Encodes one command as a RESP array of bulk strings.
pub(crate) fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one complete reply.
pub(crate) fn read_reply<R: BufRead>(reader: &mut R) -> io::Result<Reply> {
    read_nested(reader, 0)
}

fn read_nested<R: BufRead>(reader: &mut R, depth: usize) -> io::Result<Reply> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "reply nests arrays more than {MAX_DEPTH} deep"
        )));
    }
    let line = read_line(reader)?;
    let (&kind, rest) = line
        .split_first()
        .ok_or_else(|| invalid("empty reply line".to_owned()))?;
    match kind {
        b'+' => Ok(Reply::Status(String::from_utf8_lossy(rest).into_owned())),
        b'-' => Ok(Reply::Error(String::from_utf8_lossy(rest).into_owned())),
        b':' => Ok(Reply::Int(parse_int(rest)?)),
        b'$' => {
            let len = parse_int(rest)?;
            if len == -1 {
                return Ok(Reply::Nil);
            }
            if !(0..=MAX_BULK_LEN).contains(&len) {
                return Err(invalid(format!("invalid bulk string length {len}")));
            }
            let len = usize::try_from(len)
                .map_err(|_| invalid(format!("bulk string length {len} does not fit in memory")))?;
            let mut data = vec![0; len + 2];
            reader.read_exact(&mut data).map_err(eof_context)?;
            if !data.ends_with(b"\r\n") {
                return Err(invalid("bulk string is not terminated by CRLF".to_owned()));
            }
            data.truncate(len);
            Ok(Reply::Bulk(data))
        }
        b'*' => {
            let len = parse_int(rest)?;
            if len == -1 {
                return Ok(Reply::Nil);
            }
            let len =
                usize::try_from(len).map_err(|_| invalid(format!("invalid array length {len}")))?;
            let mut items = Vec::with_capacity(len.min(1024));
            for _ in 0..len {
                items.push(read_nested(reader, depth + 1)?);
            }
            Ok(Reply::Array(items))
        }
        other => Err(invalid(format!(
            "unexpected RESP type byte {:?} in line {:?} (only RESP2 is supported)",
            other as char,
            line.escape_ascii().to_string()
        ))),
    }
}

/// Reads one CRLF-terminated line and returns it without the CRLF.
fn read_line<R: BufRead>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.is_empty() || !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a complete reply was received",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(invalid(format!(
            "reply line {:?} is not terminated by CRLF",
            line.escape_ascii().to_string()
        )));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_int(digits: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            invalid(format!(
                "expected an integer, got {:?}",
                digits.escape_ascii().to_string()
            ))
        })
}

fn eof_context(err: io::Error) -> io::Error {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of a bulk string",
        )
    } else {
        err
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> io::Result<Reply> {
        let mut reader = input;
        let reply = read_reply(&mut reader)?;
        assert!(reader.is_empty(), "unconsumed input: {reader:?}");
        Ok(reply)
    }

    fn parse_err(input: &[u8]) -> io::Error {
        match read_reply(&mut &input[..]) {
            Ok(reply) => panic!("expected an error for {input:?}, got {reply:?}"),
            Err(err) => err,
        }
    }

    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let payload = std::panic::catch_unwind(f).expect_err("expected a panic");
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&[b"SET", b"k", b"a\r\nb", b""], &mut out);
        assert_eq!(
            out,
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn parses_scalar_replies() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            parse(b"-ERR unknown command\r\n").unwrap(),
            Reply::Error("ERR unknown command".into())
        );
        assert_eq!(parse(b":-2\r\n").unwrap(), Reply::Int(-2));
        assert_eq!(
            parse(b":1234567890123\r\n").unwrap(),
            Reply::Int(1234567890123)
        );
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Nil);
        assert_eq!(parse(b"*-1\r\n").unwrap(), Reply::Nil);
        assert_eq!(parse(b"$0\r\n\r\n").unwrap(), Reply::Bulk(Vec::new()));
    }

    #[test]
    fn bulk_strings_are_binary_safe() {
        assert_eq!(
            parse(b"$6\r\na\r\n\0\xffb\r\n").unwrap(),
            Reply::Bulk(b"a\r\n\0\xffb".to_vec())
        );
    }

    #[test]
    fn parses_nested_arrays() {
        let reply = parse(b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n*0\r\n").unwrap();
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Bulk(b"a".to_vec()),
                Reply::Array(vec![Reply::Int(1), Reply::Nil]),
                Reply::Array(Vec::new()),
            ])
        );
    }

    #[test]
    fn reads_consecutive_replies_from_one_stream() {
        let mut reader = &b"+PONG\r\n:7\r\n"[..];
        assert_eq!(
            read_reply(&mut reader).unwrap(),
            Reply::Status("PONG".into())
        );
        assert_eq!(read_reply(&mut reader).unwrap(), Reply::Int(7));
        assert_eq!(
            read_reply(&mut reader).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(parse_err(b"").kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(parse_err(b"+OK").kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(parse_err(b"$5\r\nab").kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            parse_err(b"*2\r\n:1\r\n").kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(parse_err(b"+OK\n").kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse_err(b":abc\r\n").kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse_err(b"$2\r\nabcd").kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse_err(b"$-5\r\n").kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse_err(b"*-3\r\n").kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse_err(b"\r\n").kind(), io::ErrorKind::InvalidData);
        let err = parse_err(b"%1\r\n");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("'%'"), "{err}");
    }

    #[test]
    fn rejects_absurd_nesting() {
        let input = b"*1\r\n".repeat(MAX_DEPTH + 2);
        assert_eq!(parse_err(&input).kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn accessors_return_values() {
        assert_eq!(Reply::Int(5).as_int(), 5);
        assert_eq!(Reply::Bulk(b"v".to_vec()).as_bytes(), Some(&b"v"[..]));
        assert_eq!(Reply::Status("OK".into()).as_bytes(), Some(&b"OK"[..]));
        assert_eq!(Reply::Nil.as_bytes(), None);
        assert_eq!(Reply::Bulk(b"v".to_vec()).as_string(), Some("v".to_owned()));
        assert_eq!(Reply::Nil.as_string(), None);
        assert_eq!(Reply::Array(vec![Reply::Nil]).as_array(), &[Reply::Nil]);
        assert!(Reply::Nil.is_nil());
        assert!(!Reply::Bulk(Vec::new()).is_nil());
    }

    #[test]
    fn accessors_say_what_they_got_when_they_panic() {
        let msg = panic_message(|| {
            let _ = Reply::Error("WRONGTYPE bad".into()).as_int();
        });
        assert!(msg.contains("expected an integer"), "{msg}");
        assert!(msg.contains("Error(\"WRONGTYPE bad\")"), "{msg}");

        let msg = panic_message(|| {
            let _ = Reply::Int(3).as_bytes();
        });
        assert!(msg.contains("Int(3)"), "{msg}");

        let msg = panic_message(|| {
            let _ = Reply::Bulk(b"\xff".to_vec()).as_string();
        });
        assert!(
            msg.contains("UTF-8") && msg.contains(r#"Bulk(b"\xff")"#),
            "{msg}"
        );

        let msg = panic_message(|| {
            let _ = Reply::Nil.as_array();
        });
        assert!(msg.contains("expected an array reply, got Nil"), "{msg}");
    }

    #[test]
    fn debug_shows_bulk_strings_as_escaped_bytes() {
        let reply = Reply::Array(vec![Reply::Bulk(b"a\"\n\x01".to_vec()), Reply::Int(1)]);
        assert_eq!(
            format!("{reply:?}"),
            r#"Array([Bulk(b"a\"\n\x01"), Int(1)])"#
        );
    }
}
