//! A shared program (docs/programs-protocol.md) that echoes every message
//! of every client: the benchmark's shared handler (scripts/bench-programs),
//! and the protocol from a compiled language.
//!
//! ```sh
//! cargo build --release --example shared_echo
//! wsloop --shared -- target/release/examples/shared_echo
//! ```
//!
//! It reads events as they come and writes its commands in one go whenever
//! its input has nothing more buffered: many echoes per write when busy,
//! one at once when not.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, BufWriter, Write};

use serde::{Deserialize, Serialize};

/// The fields of an event this program uses (the others are skipped).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    id: u64,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    binary: Option<Cow<'a, str>>,
}

/// A `send` command.
#[derive(Serialize)]
struct Send<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<Cow<'a, str>>,
}

fn main() -> io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return out.flush();
        }
        match serde_json::from_str::<Event<'_>>(&line) {
            Ok(event) if event.kind == "message" => {
                let send = Send {
                    kind: "send",
                    id: event.id,
                    text: event.text,
                    binary: event.binary,
                };
                serde_json::to_writer(&mut out, &send)?;
                out.write_all(b"\n")?;
            }
            Ok(_) => {} // open, close
            Err(e) => eprintln!("not an event ({e}): {}", line.trim_end()),
        }
        if input.buffer().is_empty() {
            out.flush()?;
        }
    }
}
