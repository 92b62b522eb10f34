//! Criterion benchmarks for the sans-I/O core, each beside a baseline run in
//! the same process so that the ratio, not the absolute time, is the result.
//!
//! ```text
//! taskset -c 1 cargo bench --bench core
//! ```
//!
//! * `unmask`: [`wsloop::proto::mask::apply_mask`] in place, the byte-wise
//!   reference [`wsloop::proto::mask::apply_mask_plain`], and `copy_from_slice` of a
//!   buffer of the same size (the goal: unmasking within 2x of the copy).
//! * `decode_text_64k`: one masked 64 KiB text frame through
//!   [`wsloop::proto::Connection::read`] (header, unmask, UTF-8
//!   validation), beside `std::str::from_utf8` of the same text. Both the
//!   decode arm and the `copy+from_utf8` arm first copy a pristine 64 KiB
//!   buffer into the work buffer (the decoder unmasks in place, so it needs a
//!   fresh masked frame every iteration); the `copy` arm measures that copy
//!   on its own.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsloop::proto::frame::Role;
use wsloop::proto::mask::{apply_mask, apply_mask_plain};
use wsloop::proto::{Connection, Event};
use wsloop::Config;

// The tests' frame builder.
#[path = "../tests/support/frame.rs"]
mod frame;

use frame::{Frame, MASK};

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

fn size_label(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    }
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for size in [16, 1 << 10, 64 << 10, 1 << 20] {
        group.throughput(Throughput::Bytes(size as u64));
        let label = size_label(size);

        // In place, over and over: XOR twice restores the data, which
        // does not matter for the timing.
        let mut buf = bytes(size);
        group.bench_function(BenchmarkId::new("apply_mask", &label), |b| {
            b.iter(|| apply_mask(black_box(&mut buf[..]), black_box(MASK), 0))
        });
        group.bench_function(BenchmarkId::new("apply_mask_plain", &label), |b| {
            b.iter(|| apply_mask_plain(black_box(&mut buf[..]), black_box(MASK), 0))
        });

        let src = bytes(size);
        let mut dst = vec![0u8; size];
        group.bench_function(BenchmarkId::new("copy", &label), |b| {
            b.iter(|| {
                black_box(&mut dst[..]).copy_from_slice(black_box(&src[..]));
            })
        });
    }
    group.finish();
}

/// Mostly ASCII with a multibyte char (2, 3 and 4 bytes) every few words.
fn text_64k() -> String {
    let words = [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "héllo", "naïve", "€uro",
        "日本", "𝄞clef", "wsloop",
    ];
    let mut s = String::with_capacity(64 << 10);
    let mut i = 0usize;
    loop {
        let w = words[(i * 7 + i / 3) % words.len()];
        if s.len() + w.len() + 1 > 64 << 10 {
            break;
        }
        s.push_str(w);
        s.push(' ');
        i += 1;
    }
    while s.len() < 64 << 10 {
        s.push('.');
    }
    s
}

fn decode_text_64k(c: &mut Criterion) {
    let text = text_64k();
    assert_eq!(text.len(), 64 << 10);
    assert!(text.len() > text.chars().count(), "has multibyte chars");
    let pristine = Frame::text(&text).encode(); // masked with MASK
    let mut work = pristine.clone();
    let mut conn = Connection::new(Role::Server, &Config::default());

    // Sanity: the decoder yields the text, borrowed from the input.
    {
        let (used, event) = conn.read(&mut work).expect("valid frame");
        assert_eq!(used, pristine.len());
        match event {
            Some(Event::Message(m)) => {
                assert!(m.is_text() && m.is_borrowed());
                assert_eq!(m.bytes(), text.as_bytes());
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }

    let mut group = c.benchmark_group("decode_text_64k");
    group.throughput(Throughput::Bytes(text.len() as u64));

    group.bench_function("copy+Connection::read", |b| {
        b.iter(|| {
            work.copy_from_slice(black_box(&pristine));
            let (used, event) = conn.read(black_box(&mut work)).expect("valid frame");
            assert!(event.is_some());
            black_box(used)
        })
    });

    let plain = text.as_bytes().to_vec();
    let mut plain_work = plain.clone();
    group.bench_function("copy+from_utf8", |b| {
        b.iter(|| {
            plain_work.copy_from_slice(black_box(&plain));
            black_box(std::str::from_utf8(black_box(&plain_work)).is_ok())
        })
    });
    group.bench_function("from_utf8", |b| {
        b.iter(|| black_box(std::str::from_utf8(black_box(&plain)).is_ok()))
    });
    group.bench_function("copy", |b| {
        b.iter(|| {
            black_box(&mut work[..]).copy_from_slice(black_box(&pristine));
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = unmask, decode_text_64k
}
criterion_main!(benches);
