//! Feeds arbitrary strings to the model-name parser. An accepted name must have only safe path
//! components and must read back the same from its full display form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ollamars::name::ModelName;

fuzz_target!(|s: &str| {
    if let Ok(n) = ModelName::parse(s) {
        for c in n.manifest_components() {
            assert!(!c.is_empty() && c != "." && c != "..");
            assert!(!c.contains('/') && !c.contains('\\') && !c.contains('\0'));
        }
        let back = ModelName::parse(&n.to_string()).expect("display form must parse");
        assert_eq!(back.manifest_components(), n.manifest_components());
    }
});
