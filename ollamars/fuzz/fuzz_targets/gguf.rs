//! Feeds arbitrary bytes to the GGUF reader. It must return `Ok` or `Err`, never panic, and never
//! allocate more than the input justifies. Run with `cargo fuzz run gguf` from `ollamars/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ollamars::gguf::Gguf;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::from_bytes(data) {
        // Everything derived from an accepted file must be computable too.
        let _ = g.model_info(true);
        let _ = g.details();
        let _ = g.capabilities(None, false);
        for t in g.tensors() {
            assert!(g.data_offset() + t.offset + t.size <= data.len() as u64);
        }
    }
});
