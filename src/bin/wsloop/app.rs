//! The binary's routes and the demos of the classic PHP and Resin servers,
//! as one [`Handler`].
//!
//! ```text
//! GET /            plain: the HTML client page   WebSocket: the command demo
//! GET /echo        plain: 426                    WebSocket: every message back unchanged
//! GET /push        plain: 426                    WebSocket: "I am waiting N seconds", wait N s, repeat; `quit` ends it
//! GET /chat        plain: 426                    WebSocket: the topic "chat": every message to every /chat client, join/leave notices
//! anything else    404 (plain or WebSocket); non-GET: 405 (the library)
//! ```
//!
//! Each connection's [`Conn`] records its route, set in `on_open` from the
//! request path. Push timers live in the server's loop: one timer per
//! pushing client, tagged with its [`ConnId`], re-armed when it fires.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{debug, info, log_enabled, Level};
use wsloop::Request;
use wsloop::{close_code, ConnId, Ctx, Decision, Handler, HttpResponse, Message, TimerId};

/// The HTML client page, compiled in.
pub const PAGE: &str = include_str!("../../../assets/index.html");

/// The topic every `/chat` client subscribes to.
const CHAT: &str = "chat";

/// Longest chat name kept (characters).
const MAX_NAME: usize = 32;

/// Which endpoint a client is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Route {
    /// `/`: the command demo.
    #[default]
    Demo,
    /// `/echo`.
    Echo,
    /// `/push`.
    Push,
    /// `/chat`.
    Chat,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Demo => "/",
            Route::Echo => "/echo",
            Route::Push => "/push",
            Route::Chat => "/chat",
        }
    }

    fn from_path(path: &str) -> Option<Route> {
        match path {
            "/" => Some(Route::Demo),
            "/echo" => Some(Route::Echo),
            "/push" => Some(Route::Push),
            "/chat" => Some(Route::Chat),
            _ => None,
        }
    }
}

/// Per-connection state.
#[derive(Debug, Default)]
pub struct Conn {
    route: Route,
    /// The pending push timer (`/push`).
    timer: Option<TimerId>,
}

/// The range the push demo draws its waits from, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushInterval {
    min_ms: u64,
    max_ms: u64,
}

impl Default for PushInterval {
    /// 2 to 5 seconds, as the classic push demo.
    fn default() -> Self {
        PushInterval {
            min_ms: 2_000,
            max_ms: 5_000,
        }
    }
}

impl PushInterval {
    /// Whole seconds at both ends: waits are whole seconds too.
    fn whole_seconds(&self) -> bool {
        self.min_ms % 1000 == 0 && self.max_ms % 1000 == 0
    }

    /// Draws one wait.
    fn draw(&self, rng: &mut fastrand::Rng) -> Duration {
        let ms = if self.whole_seconds() {
            rng.u64(self.min_ms / 1000..=self.max_ms / 1000) * 1000
        } else {
            rng.u64(self.min_ms..=self.max_ms)
        };
        Duration::from_millis(ms)
    }
}

impl FromStr for PushInterval {
    type Err = String;

    /// `MIN-MAX` or one value, in seconds, decimals allowed down to
    /// milliseconds: `2-5`, `0.05-0.2`, `3`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (lo, hi) = s.split_once('-').unwrap_or((s, s));
        let min_ms = seconds_to_ms(lo.trim())?;
        let max_ms = seconds_to_ms(hi.trim())?;
        if min_ms == 0 {
            return Err("the shortest wait must be at least 0.001 seconds".into());
        }
        if min_ms > max_ms {
            return Err(format!("MIN ({lo}) is larger than MAX ({hi})"));
        }
        if max_ms > 86_400_000 {
            return Err("the longest wait is 86400 seconds".into());
        }
        Ok(PushInterval { min_ms, max_ms })
    }
}

impl fmt::Display for PushInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            format_seconds(self.min_ms),
            format_seconds(self.max_ms)
        )
    }
}

/// `"2.5"` -> 2500: seconds with at most three decimals.
fn seconds_to_ms(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a number of seconds such as 3 or 0.25");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 3 {
        return Err(format!("{s:?}: at most three decimals (milliseconds)"));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_ms: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(frac_ms))
        .ok_or_else(bad)
}

/// 3000 -> "3", 250 -> "0.25".
fn format_seconds(ms: u64) -> String {
    if ms % 1000 == 0 {
        return (ms / 1000).to_string();
    }
    let s = format!("{}.{:03}", ms / 1000, ms % 1000);
    s.trim_end_matches('0').to_owned()
}

/// The push demo's line for a wait.
fn push_line(wait: Duration) -> String {
    let ms = wait.as_millis() as u64;
    let unit = if ms == 1000 { "second" } else { "seconds" };
    format!("I am waiting {} {unit}", format_seconds(ms))
}

/// The binary's handler: every route of the table above.
pub struct App {
    push: PushInterval,
    /// Seeded from the process's entropy: waits differ from run to run.
    rng: fastrand::Rng,
    /// Open `/chat` clients' names (kept here rather than in every
    /// connection's `Conn`, which stays small); who hears what is the
    /// topic [`CHAT`]'s business.
    chat: HashMap<ConnId, String>,
    /// Shared by every loop's `App` (`--threads`): the room is one.
    room: Arc<Room>,
}

/// The `/chat` room as the whole process sees it, whichever loop a client
/// landed on.
#[derive(Debug, Default)]
pub struct Room {
    /// Members on every loop (a topic's count is per loop).
    members: AtomicUsize,
    /// Guest names handed out, so that `guestN` is unique in the process.
    guests: AtomicU64,
}

impl App {
    /// The routes, with the push demo drawing from `push`; every loop's
    /// `App` holds the same `room`.
    pub fn new(push: PushInterval, room: Arc<Room>) -> App {
        App {
            push,
            rng: fastrand::Rng::new(),
            chat: HashMap::new(),
            room,
        }
    }

    /// Sends the next push line to `id` and arms the timer for the one after.
    fn push_next(&mut self, ctx: &mut Ctx<'_, Conn>, id: ConnId) {
        let wait = self.push.draw(&mut self.rng);
        ctx.send(id, Message::Text(&push_line(wait)));
        let timer = ctx.set_timer(wait, id.to_u64());
        if let Some(conn) = ctx.data(id) {
            conn.timer = Some(timer);
        }
    }

    fn chat_name(&mut self, req: &Request) -> String {
        let name = req.query().map(name_from_query).unwrap_or_default();
        if name.is_empty() {
            let n = self.room.guests.fetch_add(1, Relaxed) + 1;
            format!("guest{n}")
        } else {
            name
        }
    }
}

/// The chat name in a query string: the first `name` value, decoded as
/// `application/x-www-form-urlencoded` (`+` as space, `%XX` as a byte, a
/// `%` not followed by two hex digits kept as it is, invalid UTF-8 as
/// U+FFFD), control characters dropped, trimmed, at most [`MAX_NAME`]
/// characters. Empty when there is none.
fn name_from_query(query: &str) -> String {
    let Some((_, value)) = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "name")
    else {
        return String::new();
    };
    let kept: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    kept.trim().to_owned()
}

/// The canned reply of the classic demos, or `None` for other text.
fn canned(command: &str, now: SystemTime) -> Option<String> {
    let reply = match command {
        "hello" => "hello human".to_owned(),
        "hi" => "zup human".to_owned(),
        "name" => "my name is Multivac, silly I know".to_owned(),
        "age" => "I am older than time itself".to_owned(),
        "date" => {
            let t = utc(now);
            format!("today is {:04}.{:02}.{:02}", t.year(), t.month(), t.day())
        }
        "time" => {
            let t = utc(now);
            format!(
                "server time is {:02}:{:02}:{:02}",
                t.hour(),
                t.minute(),
                t.second()
            )
        }
        "thanks" => "you're welcome".to_owned(),
        "bye" => "bye".to_owned(),
        "server" => "wsloop (Rust), after Resin PHP".to_owned(),
        _ => return None,
    };
    Some(reply)
}

/// The UTC calendar date and time of day of `t` (jiff). A clock outside
/// jiff's range (years -9999 to 9999) reads as the epoch.
fn utc(t: SystemTime) -> jiff::civil::DateTime {
    let t = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    jiff::tz::Offset::UTC.to_datetime(t)
}

impl Handler for App {
    type Data = Conn;

    fn on_open(&mut self, ctx: &mut Ctx<'_, Conn>, id: ConnId, req: &Request) -> Decision {
        let Some(route) = Route::from_path(req.path()) else {
            return Decision::reject(404, format!("no WebSocket endpoint at {}", req.path()));
        };
        if let Some(conn) = ctx.data(id) {
            conn.route = route;
        }
        if log_enabled!(Level::Info) {
            // With the extension agreed, if any: `... opened as #0.1 with
            // permessage-deflate; client_max_window_bits=15`.
            let (peer, path) = (peer(ctx, id), route.path());
            match ctx.extensions(id) {
                Some(ext) => info!("{peer} {path} opened as {id} with {ext}"),
                None => info!("{peer} {path} opened as {id}"),
            }
        }
        match route {
            Route::Push => self.push_next(ctx, id),
            Route::Chat => {
                let name = self.chat_name(req);
                // The whole process's count: members on other loops are
                // not in this loop's topic.
                let others = self.room.members.fetch_add(1, Relaxed);
                // Published before it subscribes: to the others.
                ctx.publish(CHAT, Message::Text(&format!("{name} joined")));
                ctx.subscribe(id, CHAT);
                let s = if others == 1 { "" } else { "s" };
                ctx.send(
                    id,
                    Message::Text(&format!(
                        "welcome {name}: {others} other{s} here, your messages go to everyone"
                    )),
                );
                debug!("chat: {id} joined as {name}");
                self.chat.insert(id, name);
            }
            Route::Demo | Route::Echo => {}
        }
        Decision::accept()
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Conn>, id: ConnId, msg: Message<'_>) {
        let Some(route) = ctx.data(id).map(|c| c.route) else {
            return;
        };
        match route {
            Route::Echo => {
                ctx.send(id, msg);
            }
            Route::Demo => {
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Binary(b) => {
                        let reply = format!("You have entered: {} bytes of binary data", b.len());
                        ctx.send(id, Message::Text(&reply));
                        return;
                    }
                };
                let command = text.trim().to_ascii_lowercase();
                match canned(&command, SystemTime::now()) {
                    Some(reply) => {
                        ctx.send(id, Message::Text(&reply));
                        if command == "bye" {
                            ctx.close(id, close_code::NORMAL, "bye");
                        }
                    }
                    None => {
                        ctx.send(id, Message::Text(&format!("You have entered: {text}")));
                    }
                }
            }
            Route::Push => {
                // Anything but `quit` is ignored: the pushes go on.
                if matches!(msg, Message::Text(t) if t.trim().eq_ignore_ascii_case("quit")) {
                    if let Some(timer) = ctx.data(id).and_then(|c| c.timer.take()) {
                        ctx.cancel_timer(timer);
                    }
                    ctx.close(id, close_code::NORMAL, "quit");
                }
            }
            Route::Chat => {
                let Message::Text(text) = msg else {
                    return; // the chat is text only
                };
                let Some(name) = self.chat.get(&id) else {
                    return;
                };
                ctx.publish(CHAT, Message::Text(&format!("{name}: {text}")));
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, Conn>, id: ConnId, code: u16, reason: &str) {
        if log_enabled!(Level::Info) {
            let path = ctx.data(id).map_or("?", |c| c.route.path());
            info!(
                "{} {path} {id} closed with {code} {reason:?}",
                peer(ctx, id)
            );
        }
        let Some(conn) = ctx.data(id) else {
            return;
        };
        let (route, timer) = (conn.route, conn.timer.take());
        match route {
            Route::Push => {
                if let Some(timer) = timer {
                    ctx.cancel_timer(timer);
                }
            }
            Route::Chat => {
                if let Some(name) = self.chat.remove(&id) {
                    self.room.members.fetch_sub(1, Relaxed);
                    debug!("chat: {id} ({name}) left");
                    // It has left the topic already (a closing client does).
                    ctx.publish(CHAT, Message::Text(&format!("{name} left")));
                }
            }
            Route::Demo | Route::Echo => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Conn>, _timer: TimerId, tag: u64) {
        let id = ConnId::from_u64(tag);
        let pushing = ctx.data(id).is_some_and(|c| c.route == Route::Push);
        if pushing && ctx.is_open(id) {
            self.push_next(ctx, id);
        } else if let Some(conn) = ctx.data(id) {
            conn.timer = None;
        }
    }

    fn on_http(&mut self, req: &Request) -> Option<HttpResponse> {
        match Route::from_path(req.path()) {
            Some(Route::Demo) => {
                let mut page = HttpResponse::new(200, "text/html; charset=utf-8", PAGE);
                page.headers
                    .push(("Cache-Control".into(), "no-cache".into()));
                Some(page)
            }
            // WebSocket only: the library answers 426.
            Some(_) => None,
            None => Some(HttpResponse::text(
                404,
                &format!("no page at {}", req.path()),
            )),
        }
    }
}

/// The client's address for a log line ("-" once a reset made the kernel
/// forget it; the `opened` line has it).
fn peer(ctx: &Ctx<'_, Conn>, id: ConnId) -> String {
    ctx.peer_addr(id)
        .map_or_else(|| "-".into(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn push_interval_parses_seconds_and_ranges() {
        assert_eq!(PushInterval::from_str("2-5"), Ok(PushInterval::default()));
        let p: PushInterval = "0.05-0.2".parse().unwrap();
        assert_eq!((p.min_ms, p.max_ms), (50, 200));
        let p: PushInterval = "3".parse().unwrap();
        assert_eq!((p.min_ms, p.max_ms), (3000, 3000));
        assert_eq!(p.to_string(), "3-3");
        for bad in ["", "-", "5-2", "a-b", "0", "1.2345", "-3", "1e3", "0-1"] {
            assert!(bad.parse::<PushInterval>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn waits_stay_in_range_and_whole_seconds_stay_whole() {
        let mut rng = fastrand::Rng::new();
        let p = PushInterval::default();
        let mut seen = [false; 6];
        for _ in 0..1000 {
            let w = p.draw(&mut rng);
            assert_eq!(w.subsec_nanos(), 0);
            let s = w.as_secs() as usize;
            assert!((2..=5).contains(&s), "{s}");
            seen[s] = true;
        }
        assert!(seen[2..].iter().all(|&x| x), "every value drawn");
        let p: PushInterval = "0.05-0.1".parse().unwrap();
        for _ in 0..1000 {
            let ms = p.draw(&mut rng).as_millis();
            assert!((50..=100).contains(&ms), "{ms}");
        }
    }

    #[test]
    fn push_lines_state_the_seconds() {
        assert_eq!(push_line(Duration::from_secs(3)), "I am waiting 3 seconds");
        assert_eq!(push_line(Duration::from_secs(1)), "I am waiting 1 second");
        assert_eq!(
            push_line(Duration::from_millis(250)),
            "I am waiting 0.25 seconds"
        );
        assert_eq!(
            push_line(Duration::from_millis(1005)),
            "I am waiting 1.005 seconds"
        );
    }

    #[test]
    fn date_and_time_replies_are_utc_with_zero_padding() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let date = |s| canned("date", at(s)).unwrap();
        let time = |s| canned("time", at(s)).unwrap();
        assert_eq!(date(0), "today is 1970.01.01");
        assert_eq!(time(0), "server time is 00:00:00");
        assert_eq!(date(951_782_400), "today is 2000.02.29");
        assert_eq!(date(1_709_251_199), "today is 2024.02.29");
        assert_eq!(time(1_709_251_199), "server time is 23:59:59");
        assert_eq!(date(4_102_444_800), "today is 2100.01.01");
        assert_eq!(date(1_700_000_000), "today is 2023.11.14");
        assert_eq!(time(1_700_000_000), "server time is 22:13:20");
        // Before the epoch (a clock set back): the calendar still holds.
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(canned("date", before).unwrap(), "today is 1969.12.31");
        assert_eq!(canned("time", before).unwrap(), "server time is 23:59:59");
    }

    #[test]
    fn chat_names_are_decoded_and_cleaned() {
        let name = |query: &str| name_from_query(query);
        assert_eq!(name("name=alice"), "alice");
        assert_eq!(name("name=Ada+Lovelace"), "Ada Lovelace");
        assert_eq!(name("name=Bob%20B"), "Bob B");
        assert_eq!(name("name=%C3%A9mile"), "émile");
        assert_eq!(name("name=a%2Bb"), "a+b", "an encoded + stays a plus");
        assert_eq!(name("name=a%0Ab"), "ab");
        assert_eq!(name("name=100%"), "100%");
        assert_eq!(name("name=%zz"), "%zz");
        assert_eq!(name("name=%+1x"), "% 1x");
        assert_eq!(name("name=%FF"), "\u{fffd}", "invalid UTF-8");
        assert_eq!(name(&format!("name={}", "x".repeat(100))).len(), MAX_NAME);
        assert_eq!(name("name=+++"), "");
        // The pair is found anywhere, the first one wins, keys decode too.
        assert_eq!(name("x=1&name=carol&name=dave"), "carol");
        assert_eq!(name("na%6De=erin"), "erin");
        assert_eq!(name("nickname=frank"), "");
        assert_eq!(name("name"), "");
        assert_eq!(name(""), "");
    }
}
