//! Feeds arbitrary bytes to the envelope parser, and whatever parses to the
//! document parsers: nothing may panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phare_protocol::document::parse_document;
use phare_protocol::{Alert, Assignment, Command, Envelope, Root};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::from_slice(data)
        && let Ok(payload) = envelope.payload_bytes()
    {
        let _ = parse_document::<Assignment>(&payload, "assignment").map(|a| a.validate());
        let _ = parse_document::<Root>(&payload, "root").map(|r| r.validate());
        let _ = parse_document::<Alert>(&payload, "alert");
        let _ = parse_document::<Command>(&payload, "command");
    }
});
