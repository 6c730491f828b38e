//! The event-stream decoder on arbitrary bytes, split at an arbitrary point:
//! never panics, stays bounded, any split yields the same frames, and every id
//! it keeps can be sent back as `Last-Event-ID`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantage_proto::sse::{Decoder, Frame, valid_event_id};

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let whole = Decoder::new(128, 512).feed(data);
    let mut d = Decoder::new(128, 512);
    let mut split = d.feed(&data[..cut]);
    split.extend(d.feed(&data[cut..]));
    assert_eq!(whole, split);
    assert!(d.last_id().is_none_or(valid_event_id));
    for frame in whole.into_iter().flatten() {
        if let Frame::Event(e) = frame {
            assert!(e.data.len() <= 512);
            assert!(e.id.as_deref().is_none_or(valid_event_id));
        }
    }
});
