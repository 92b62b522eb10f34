// A chat server on uWebSockets' pub/sub (uWS::App, one topic), the peer of
// wsloop's /chat for the broadcast rows of the load generator
// (`loadgen broadcast`). It does what src/bin/wsloop/app.rs does on /chat:
//
//   - name from `?name=` (the first `name`, form-decoded: `+` is a space,
//     `%XX` a byte, a bad `%` kept, invalid UTF-8 as U+FFFD; control
//     characters dropped, at most 32 characters, trimmed), else `guestN`;
//   - on open: `<name> joined` to the others, then to the newcomer alone
//     `welcome <name>: <N> other(s) here, your messages go to everyone`;
//   - a text message: `<name>: <text>` to everyone, the sender included
//     (binary messages are ignored);
//   - on close: `<name> left` to the others.
//
// No TLS, no compression (loadgen broadcast offers no permessage-deflate,
// so wsloop sends plain frames too). Limits as wsloop's
// defaults: 16 MiB messages, a 16 MiB send queue past which the client is
// closed (uWS would otherwise drop messages silently), about 120 s of
// silence before closing.
//
//   uws-chat PORT        listens on 127.0.0.1:PORT, path /chat; SIGTERM ends it
//
// Build (uWebSockets and uSockets are kept OUTSIDE this repository; uWS
// wants uSockets at $UWS_DIR/uSockets, a submodule there, a symlink here):
//
//   export UWS_DIR=/work/uws/uWebSockets          # with uSockets in $UWS_DIR/uSockets
//   make -C $UWS_DIR/uSockets                      # WITH_OPENSSL=0: -DLIBUS_NO_SSL, -flto, *.o + uSockets.a
//   g++ -std=c++20 -O3 -flto -DLIBUS_NO_SSL \
//       -I$UWS_DIR/src -I$UWS_DIR/uSockets/src \
//       bench/peers/uws-chat.cpp $UWS_DIR/uSockets/*.o -lz -o /work/uws/bin/uws-chat
//
// (uSockets' *.o or its uSockets.a, same objects; -lz because uWS's
// permessage-deflate code is compiled in, though never used here.)

#include "App.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct PerSocketData {
    std::string name;
};

uWS::App *app;
unsigned long long guests = 0;

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// application/x-www-form-urlencoded, as Rust's form_urlencoded decodes it.
std::string form_decode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            out += (char) (hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

// UTF-8 to code points, each maximal invalid subpart as U+FFFD (what
// String::from_utf8_lossy does), so that names count characters as wsloop's.
std::vector<char32_t> decode_lossy(std::string_view s) {
    std::vector<char32_t> cps;
    size_t i = 0;
    while (i < s.size()) {
        unsigned char b = (unsigned char) s[i];
        int len = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
        if (len == 0) { cps.push_back(0xFFFD); i++; continue; }
        char32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
        // The second byte's range depends on the first (no overlongs, no
        // surrogates, nothing past U+10FFFF).
        unsigned char lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
        int k = 1;
        for (; k < len && i + k < s.size(); k++) {
            unsigned char c = (unsigned char) s[i + k];
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) break;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (k == len) { cps.push_back(cp); } else { cps.push_back(0xFFFD); }
        i += k;
    }
    return cps;
}

void encode_utf8(char32_t cp, std::string &out) {
    if (cp < 0x80) { out += (char) cp; }
    else if (cp < 0x800) { out += (char) (0xC0 | cp >> 6); out += (char) (0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) { out += (char) (0xE0 | cp >> 12); out += (char) (0x80 | ((cp >> 6) & 0x3F)); out += (char) (0x80 | (cp & 0x3F)); }
    else { out += (char) (0xF0 | cp >> 18); out += (char) (0x80 | ((cp >> 12) & 0x3F)); out += (char) (0x80 | ((cp >> 6) & 0x3F)); out += (char) (0x80 | (cp & 0x3F)); }
}

// Rust's char::is_whitespace (Unicode White_Space), for str::trim.
bool is_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// app.rs's name_from_query, then chat_name's `guestN` fallback.
std::string chat_name(std::string_view query) {
    std::string name;
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (pair.empty()) continue;
        size_t eq = pair.find('=');
        std::string_view key = pair.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        if (form_decode(key) != "name") continue;
        std::vector<char32_t> kept;
        for (char32_t c : decode_lossy(form_decode(value))) {
            bool control = c < 0x20 || (c >= 0x7F && c <= 0x9F);
            if (!control && kept.size() < 32) kept.push_back(c);
        }
        size_t a = 0, b = kept.size();
        while (a < b && is_space(kept[a])) a++;
        while (b > a && is_space(kept[b - 1])) b--;
        for (size_t i = a; i < b; i++) encode_utf8(kept[i], name);
        break; // the first `name` only, even when it decodes to nothing
    }
    if (name.empty()) name = "guest" + std::to_string(++guests);
    return name;
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: uws-chat PORT\n");
        return 2;
    }
    int port = std::atoi(argv[1]);

    uWS::App chat;
    app = &chat;
    chat.ws<PerSocketData>("/chat", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        .idleTimeout = 120,
        .maxBackpressure = 16 * 1024 * 1024,
        .closeOnBackpressureLimit = true,
        .upgrade = [](auto *res, uWS::HttpRequest *req, auto *context) {
            // The name is decided here, where the query is still at hand.
            res->template upgrade<PerSocketData>({chat_name(req->getQuery())},
                req->getHeader("sec-websocket-key"), req->getHeader("sec-websocket-protocol"),
                req->getHeader("sec-websocket-extensions"), context);
        },
        .open = [](auto *ws) {
            const std::string &name = ws->getUserData()->name;
            unsigned others = app->numSubscribers("chat");
            ws->subscribe("chat");
            // ws->publish skips the publisher: the notice reaches the others.
            ws->publish("chat", name + " joined", uWS::OpCode::TEXT);
            ws->send("welcome " + name + ": " + std::to_string(others) + " other" + (others == 1 ? "" : "s") +
                     " here, your messages go to everyone", uWS::OpCode::TEXT);
        },
        .message = [](auto *ws, std::string_view text, uWS::OpCode op) {
            if (op != uWS::OpCode::TEXT) return; // the chat is text only
            // app->publish (not ws->publish): the sender gets its own line too.
            app->publish("chat", ws->getUserData()->name + ": " + std::string(text), uWS::OpCode::TEXT);
        },
        .close = [](auto *ws, int, std::string_view) {
            // uWS has already unsubscribed the closing socket.
            app->publish("chat", ws->getUserData()->name + " left", uWS::OpCode::TEXT);
        },
    }).get("/chat", [](auto *res, auto *) {
        res->writeStatus("426 Upgrade Required")->writeHeader("Upgrade", "websocket")->end("WebSocket only\n");
    }).any("/*", [](auto *res, auto *) {
        res->writeStatus("404 Not Found")->end("not found\n");
    }).listen("127.0.0.1", port, [port](auto *listen_socket) {
        if (!listen_socket) {
            std::fprintf(stderr, "uws-chat: cannot listen on 127.0.0.1:%d\n", port);
            std::exit(1);
        }
        std::printf("uws-chat listening on 127.0.0.1:%d\n", port);
        std::fflush(stdout);
    }).run();
}
