//! Feeds arbitrary bytes to the Modelfile parser. It must never panic, and an accepted
//! Modelfile whose values can be quoted must read back the same after rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ollamars::modelfile::{Modelfile, ParamValue, representable};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Modelfile::parse_bytes(data) {
        let m = p.modelfile;
        let mut values: Vec<&str> = m.from.iter().chain(&m.adapters).chain(&m.licenses).map(String::as_str).collect();
        for v in [&m.draft, &m.template, &m.system, &m.renderer, &m.parser] {
            values.extend(v.as_deref());
        }
        values.extend(m.messages.iter().map(|x| x.content.as_str()));
        if let Some(ParamValue::Strings(stops)) = m.parameters.get("stop") {
            values.extend(stops.iter().map(String::as_str));
        }
        if values.into_iter().all(representable) {
            let back = Modelfile::parse(&m.render(None)).expect("rendered Modelfile must parse");
            assert_eq!(back.modelfile, m);
        }
    }
});
