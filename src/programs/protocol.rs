//! The JSON lines a shared program speaks (docs/programs-protocol.md): one
//! object per line each way. Events go to its stdin, commands come from
//! its stdout. serde_json does the JSON (escapes, UTF-8, numbers); this
//! module only says which objects there are.

use std::borrow::Cow;
use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{Message, Request};

/// What happened to a client of the route, for the program's stdin.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(super) enum Event<'a> {
    /// A client connected (its `101` is on the way).
    Open {
        id: u64,
        path: &'a str,
        query: &'a str,
        /// Lower-case names; a header given twice is joined with ", ".
        headers: serde_json::Map<String, serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
    /// A whole message: `text`, or `binary` as base64.
    Message {
        id: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        binary: Option<String>,
    },
    /// The client is gone: no command reaches it any more.
    Close { id: u64, code: u16, reason: &'a str },
}

impl<'a> Event<'a> {
    pub(super) fn open(id: u64, req: &'a Request, peer: Option<SocketAddr>) -> Event<'a> {
        let mut headers = serde_json::Map::new();
        for (name, value) in req.headers() {
            let value = String::from_utf8_lossy(value);
            match headers.entry(name.to_ascii_lowercase()) {
                serde_json::map::Entry::Occupied(mut e) => {
                    if let serde_json::Value::String(s) = e.get_mut() {
                        s.push_str(", ");
                        s.push_str(&value);
                    }
                }
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(value.into_owned().into());
                }
            }
        }
        Event::Open {
            id,
            path: req.path(),
            query: req.query().unwrap_or(""),
            headers,
            peer: peer.map(|p| p.to_string()),
        }
    }

    pub(super) fn message(id: u64, msg: &Message<'a>) -> Event<'a> {
        let (text, binary) = match msg {
            Message::Text(t) => (Some(*t), None),
            Message::Binary(b) => (None, Some(BASE64.encode(b))),
        };
        Event::Message { id, text, binary }
    }

    /// Appends the event and its newline to `out`.
    pub(super) fn write_line(&self, out: &mut Vec<u8>) {
        // Invariant: serializing these types to a Vec cannot fail (string
        // keys, no maps with other keys, no I/O).
        serde_json::to_writer(&mut *out, self).expect("an event serializes");
        out.push(b'\n');
    }
}

/// One line from the program, as it was written.
#[derive(Debug, Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    id: Option<u64>,
    ids: Option<Vec<u64>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    binary: Option<Cow<'a, str>>,
    code: Option<u16>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
}

/// The payload of a send or broadcast.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Payload<'a> {
    Text(Cow<'a, str>),
    Binary(Vec<u8>),
}

impl Payload<'_> {
    pub(super) fn message(&self) -> Message<'_> {
        match self {
            Payload::Text(t) => Message::Text(t),
            Payload::Binary(b) => Message::Binary(b),
        }
    }
}

/// What the program asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Command<'a> {
    /// One message to one client.
    Send { id: u64, payload: Payload<'a> },
    /// One message to these clients, or (`None`) to every client of the
    /// route.
    Broadcast {
        ids: Option<Vec<u64>>,
        payload: Payload<'a>,
    },
    /// Close a client (1000 unless it says).
    Close {
        id: u64,
        code: u16,
        reason: Cow<'a, str>,
    },
}

/// Reads one line (without its newline); the error says what is wrong
/// with it, for the log.
pub(super) fn parse(line: &[u8]) -> Result<Command<'_>, String> {
    let line: Line<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let id = |line: &Line<'_>| {
        line.id
            .ok_or_else(|| format!("\"{}\" without an \"id\"", line.kind))
    };
    match line.kind.as_ref() {
        "send" => Ok(Command::Send {
            id: id(&line)?,
            payload: payload(&line)?,
        }),
        "broadcast" => Ok(Command::Broadcast {
            ids: line.ids.as_ref().cloned(),
            payload: payload(&line)?,
        }),
        "close" => {
            let code = line.code.unwrap_or(crate::proto::frame::close_code::NORMAL);
            if !crate::proto::frame::close_code::is_valid(code) {
                return Err(format!("{code} is not a close code a server may send"));
            }
            Ok(Command::Close {
                id: id(&line)?,
                code,
                reason: line.reason.unwrap_or_default(),
            })
        }
        other => Err(format!("unknown \"type\": {other:?}")),
    }
}

fn payload<'a>(line: &Line<'a>) -> Result<Payload<'a>, String> {
    match (&line.text, &line.binary) {
        (Some(t), None) => Ok(Payload::Text(t.clone())),
        (None, Some(b)) => BASE64
            .decode(b.as_bytes())
            .map(Payload::Binary)
            .map_err(|e| format!("\"binary\" is not base64: {e}")),
        _ => Err(format!(
            "\"{}\" needs exactly one of \"text\" and \"binary\"",
            line.kind
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_escapes_defaults_and_base64() {
        assert_eq!(
            parse(br#"{"type":"send","id":7,"text":"a\nb \u00e9"}"#),
            Ok(Command::Send {
                id: 7,
                payload: Payload::Text("a\nb é".into())
            })
        );
        assert_eq!(
            parse(br#"{"type":"broadcast","binary":"AAEC","extra":true}"#),
            Ok(Command::Broadcast {
                ids: None,
                payload: Payload::Binary(vec![0, 1, 2])
            })
        );
        assert_eq!(
            parse(br#"{"type":"broadcast","ids":[1,2],"text":""}"#),
            Ok(Command::Broadcast {
                ids: Some(vec![1, 2]),
                payload: Payload::Text("".into())
            })
        );
        assert_eq!(
            parse(br#"{"type":"close","id":3}"#),
            Ok(Command::Close {
                id: 3,
                code: 1000,
                reason: "".into()
            })
        );
    }

    #[test]
    fn bad_commands_say_why() {
        for (line, why) in [
            (&b"nope"[..], "expected"),
            (br#"{"id":1,"text":"x"}"#, "missing field `type`"),
            (br#"{"type":"send","text":"x"}"#, "without an \"id\""),
            (br#"{"type":"send","id":1}"#, "exactly one of"),
            (
                br#"{"type":"send","id":1,"text":"x","binary":""}"#,
                "exactly one of",
            ),
            (br#"{"type":"send","id":1,"binary":"!"}"#, "not base64"),
            (br#"{"type":"close","id":1,"code":1006}"#, "1006 is not"),
            (br#"{"type":"send","id":-1,"text":"x"}"#, "invalid value"),
            (br#"{"type":"jump"}"#, "unknown"),
        ] {
            let err = parse(line).expect_err(why);
            assert!(err.contains(why), "{err:?} should say {why:?}");
        }
    }

    #[test]
    fn events_are_one_line_each_with_the_type_first() {
        let mut out = Vec::new();
        Event::message(5, &Message::Text("line\nbreak \"q\"")).write_line(&mut out);
        Event::message(5, &Message::Binary(&[255, 0])).write_line(&mut out);
        Event::Close {
            id: 5,
            code: 1006,
            reason: "",
        }
        .write_line(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"message\",\"id\":5,\"text\":\"line\\nbreak \\\"q\\\"\"}\n\
             {\"type\":\"message\",\"id\":5,\"binary\":\"/wA=\"}\n\
             {\"type\":\"close\",\"id\":5,\"code\":1006,\"reason\":\"\"}\n"
        );
    }
}
