use super::render::{quote, representable};
use super::*;

fn parse(s: &str) -> Modelfile {
    Modelfile::parse(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .modelfile
}

fn perr(s: &str) -> String {
    match Modelfile::parse(s) {
        Ok(m) => panic!("{s:?} parsed as {m:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_instruction() {
    let text = r#"# a comment
   # an indented comment
FROM llama3.2
from ./mmproj.gguf
Adapter ./lora.gguf
DRAFT ./draft.gguf
TEMPLATE """{{ if .System }}<|system|>
{{ .System }}{{ end }}
<|user|> "quoted" {{ .Prompt }}"""
SYSTEM "You are
  a # helpful assistant."
RENDERER qwen3
PARSER qwen3
REQUIRES v0.14.0
PARAMETER temperature 0.7
PARAMETER	num_ctx	4096
PARAMETER stop <|im_end|>
PARAMETER stop "<|user|>"
PARAMETER use_mmap false
PARAMETER top_k 40
license MIT
LICENSE """Line one
line two"""
MESSAGE user Is the sky blue?
MESSAGE assistant   Yes.  
"#;
    let p = Modelfile::parse(text).unwrap();
    assert!(p.warnings.is_empty());
    let m = p.modelfile;
    assert_eq!(m.from, vec!["llama3.2", "./mmproj.gguf"]);
    assert_eq!(m.adapters, vec!["./lora.gguf"]);
    assert_eq!(m.draft.as_deref(), Some("./draft.gguf"));
    assert_eq!(
        m.template.as_deref(),
        Some(
            "{{ if .System }}<|system|>\n{{ .System }}{{ end }}\n<|user|> \"quoted\" {{ .Prompt }}"
        )
    );
    assert_eq!(
        m.system.as_deref(),
        Some("You are\n  a # helpful assistant.")
    );
    assert_eq!(m.renderer.as_deref(), Some("qwen3"));
    assert_eq!(m.parser.as_deref(), Some("qwen3"));
    assert_eq!(m.requires.as_deref(), Some("v0.14.0"));
    assert_eq!(m.parameters["temperature"], ParamValue::Float(0.7));
    assert_eq!(m.parameters["num_ctx"], ParamValue::Int(4096));
    assert_eq!(m.parameters["top_k"], ParamValue::Int(40));
    assert_eq!(m.parameters["use_mmap"], ParamValue::Bool(false));
    assert_eq!(
        m.parameters["stop"],
        ParamValue::Strings(vec!["<|im_end|>".into(), "<|user|>".into()])
    );
    assert_eq!(m.licenses, vec!["MIT", "Line one\nline two"]);
    assert_eq!(
        m.messages,
        vec![
            Message {
                role: Role::User,
                content: "Is the sky blue?".into()
            },
            Message {
                role: Role::Assistant,
                content: "Yes.".into()
            },
        ]
    );
    let json = m.parameters_json();
    assert_eq!(json["stop"], serde_json::json!(["<|im_end|>", "<|user|>"]));
    assert_eq!(json["num_ctx"], 4096);
    assert_eq!(json["temperature"], 0.7);
    assert_eq!(json["use_mmap"], false);
}

#[test]
fn values_and_repeats() {
    // `#` inside a value is literal; internal spaces kept; value trimmed.
    let m = parse("FROM x\nSYSTEM   hello # world   \n");
    assert_eq!(m.system.as_deref(), Some("hello # world"));
    // Quoted values keep inner whitespace.
    let m = parse("FROM x\nSYSTEM \"  padded  \"\n");
    assert_eq!(m.system.as_deref(), Some("  padded  "));
    // A quoted value ends on the line where the trimmed text ends with the quote.
    let m = parse("FROM x\nSYSTEM \"a\" b\nc\"\n");
    assert_eq!(m.system.as_deref(), Some("a\" b\nc"));
    let m = parse("FROM x\nTEMPLATE \"\"\"a\"\"\" b\nc\"\"\"   \n");
    assert_eq!(m.template.as_deref(), Some("a\"\"\" b\nc"));
    // An empty value.
    let m = parse("FROM x\nSYSTEM \n");
    assert_eq!(m.system.as_deref(), Some(""));
    // Later TEMPLATE/SYSTEM win; the first scalar PARAMETER wins; stop accumulates.
    let m = parse("FROM a\nSYSTEM one\nSYSTEM two\nPARAMETER seed 1\nPARAMETER seed 2\n");
    assert_eq!(m.system.as_deref(), Some("two"));
    assert_eq!(m.parameters["seed"], ParamValue::Int(1));
    // Keywords in any case; no trailing newline needed.
    let m = parse("fRoM a\nsYsTeM b");
    assert_eq!((m.from[0].as_str(), m.system.as_deref()), ("a", Some("b")));
    // Bools and numbers the way Go parses them.
    let m = parse("FROM a\nPARAMETER use_mmap T\nPARAMETER seed -1\nPARAMETER top_p 1e-1\n");
    assert_eq!(m.parameters["use_mmap"], ParamValue::Bool(true));
    assert_eq!(m.parameters["seed"], ParamValue::Int(-1));
    assert_eq!(m.parameters["top_p"], ParamValue::Float(0.1));
}

#[test]
fn encodings_and_line_endings() {
    let m = Modelfile::parse_bytes(b"\xEF\xBB\xBFFROM a\r\nSYSTEM \"x\r\ny\"\rLICENSE l\r\n")
        .unwrap()
        .modelfile;
    assert_eq!(m.from, vec!["a"]);
    assert_eq!(m.system.as_deref(), Some("x\ny"));
    assert_eq!(m.licenses, vec!["l"]);
    let text = "FROM é\nSYSTEM s\u{1}t\n";
    let le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    for bytes in [le, be] {
        let m = Modelfile::parse_bytes(&bytes).unwrap().modelfile;
        assert_eq!(m.from, vec!["é"]);
        assert_eq!(
            m.system.as_deref(),
            Some("st"),
            "control characters are dropped"
        );
    }
    assert_eq!(
        Modelfile::parse_bytes(&[0xFF, 0xFE, 0x00]).unwrap_err(),
        ModelfileError::InvalidUtf16
    );
    assert_eq!(
        Modelfile::parse_bytes(&[0xFF, 0xFE, 0x00, 0xD8]).unwrap_err(),
        ModelfileError::InvalidUtf16
    );
}

#[test]
fn every_error_message() {
    let cmd = INVALID_COMMAND;
    assert_eq!(
        cmd,
        r#"command must be one of "from", "license", "template", "system", "adapter", "renderer", "parser", "parameter", "message", or "requires""#
    );
    let cases: &[(&str, String)] = &[
        ("FROM a\nFOO bar\n", format!("(line 2): {cmd}")),
        ("FROM a\n\n  1FROM b\n", format!("(line 3): {cmd}")),
        ("FROM a\nFROM\nb\n", format!("(line 2): {cmd}")),
        ("FROM a\n-x\n", format!("(line 2): {cmd}")),
        ("FROM a\nFROM-x y\n", format!("(line 2): {cmd}")),
        ("FROM a\nFROM", "(line 2): unexpected EOF".into()),
        (
            "FROM a\nSYSTEM \"open\nstill open\n",
            "(line 2): unexpected EOF".into(),
        ),
        (
            "FROM a\nTEMPLATE \"\"\"open\n\"\"\n",
            "(line 2): unexpected EOF".into(),
        ),
        ("FROM a\nPARAMETER\n", format!("(line 2): {cmd}")),
        (
            "FROM a\nPARAMETER temperature\n",
            "(line 2): unexpected EOF".into(),
        ),
        (
            "FROM a\nPARAMETER temp-erature 1\n",
            "(line 2): unexpected EOF".into(),
        ),
        ("FROM a\nMESSAGE user\n", "(line 2): unexpected EOF".into()),
        (
            "FROM a\nMESSAGE root hi\n",
            format!("(line 2): {INVALID_ROLE}"),
        ),
        (
            "FROM a\nMESSAGE User hi\n",
            format!("(line 2): {INVALID_ROLE}"),
        ),
        ("SYSTEM x\n", "no FROM line".into()),
        ("", "no FROM line".into()),
        ("# only a comment\n", "no FROM line".into()),
        (
            "FROM a\nPARAMETER tfs_z 1\n",
            "(line 2): unknown parameter 'tfs_z'".into(),
        ),
        (
            "FROM a\nPARAMETER numa true\n",
            "(line 2): unknown parameter 'numa'".into(),
        ),
        (
            "FROM a\nPARAMETER Temperature 1\n",
            "(line 2): unknown parameter 'Temperature'".into(),
        ),
        (
            "FROM a\nPARAMETER num_ctx 4k\n",
            "(line 2): invalid int value [4k]".into(),
        ),
        (
            "FROM a\nPARAMETER seed 1.5\n",
            "(line 2): invalid int value [1.5]".into(),
        ),
        (
            "FROM a\nPARAMETER temperature 0.7 # hot\n",
            "(line 2): invalid float value [0.7 # hot]".into(),
        ),
        (
            "FROM a\nPARAMETER top_p NaN\n",
            "(line 2): invalid float value [NaN]".into(),
        ),
        (
            "FROM a\nPARAMETER use_mmap yes\n",
            "(line 2): invalid bool value [yes]".into(),
        ),
        (
            "FROM a\nREQUIRES latest\n",
            "(line 2): invalid version \"latest\" in REQUIRES".into(),
        ),
        (
            "FROM a\nREQUIRES 1.2.3.4\n",
            "(line 2): invalid version \"1.2.3.4\" in REQUIRES".into(),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(&perr(input), want, "{input:?}");
    }
    // Line numbers count CR, LF and CRLF line ends, and lines inside quoted values.
    assert_eq!(
        perr("FROM a\r\nSYSTEM \"\"\"x\ny\"\"\"\rBAD x"),
        format!("(line 4): {cmd}")
    );
}

#[test]
fn deprecated_parameters_warn_and_are_skipped() {
    let p = Modelfile::parse(
        "FROM a\nPARAMETER mirostat 1\nPARAMETER penalize_newline true\nPARAMETER top_k 5\n",
    )
    .unwrap();
    assert_eq!(p.warnings.len(), 2);
    assert_eq!(p.warnings[0].line, 2);
    assert!(p.warnings[0].message.contains("mirostat"));
    assert_eq!(p.warnings[1].line, 3);
    assert_eq!(p.modelfile.parameters.len(), 1);
    for name in params::DEPRECATED {
        let p = Modelfile::parse(&format!("FROM a\nPARAMETER {name} 1\n")).unwrap();
        assert_eq!(p.warnings.len(), 1, "{name}");
        assert!(p.modelfile.parameters.is_empty());
    }
}

#[test]
fn render_like_show_modelfile() {
    let m = parse(
        "FROM /blobs/sha256-aa\nFROM /blobs/sha256-pp\nADAPTER /blobs/sha256-ad\nTEMPLATE {{ .Prompt }}\nSYSTEM \"\"\"say \"hi\"\nplease\"\"\"\nPARAMETER stop a\nPARAMETER stop  b \nPARAMETER temperature 1\nLICENSE x\nMESSAGE user hi\n",
    );
    let want = "# Modelfile generated by \"ollama show\"\n\
# To build a new Modelfile based on this, replace FROM with:\n\
# FROM m:latest\n\
\n\
FROM /blobs/sha256-aa\n\
ADAPTER /blobs/sha256-ad\n\
FROM /blobs/sha256-pp\n\
TEMPLATE {{ .Prompt }}\n\
SYSTEM \"\"\"say \"hi\"\nplease\"\"\"\n\
PARAMETER stop a\n\
PARAMETER stop b\n\
PARAMETER temperature 1\n\
LICENSE x\n\
MESSAGE user hi\n";
    assert_eq!(m.render(Some("m:latest")), want);
    assert_eq!(parse(&m.render(Some("m:latest"))), m);
    assert!(!m.render(None).starts_with('#'));

    assert_eq!(quote("plain text"), "plain text");
    assert_eq!(quote(" lead"), "\" lead\"");
    assert_eq!(quote("trail "), "\"trail \"");
    assert_eq!(quote("two\nlines"), "\"two\nlines\"");
    assert_eq!(quote("say \"x\"\nok"), "\"\"\"say \"x\"\nok\"\"\"");
    assert_eq!(quote("a \"b\" c"), "a \"b\" c");
    assert_eq!(quote("\"starts"), "\"\"\"\"starts\"\"\"");
}

/// A small deterministic generator (xorshift) for the round-trip property.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn text(&mut self) -> String {
        const ALPHABET: &[&str] = &[
            "a",
            "b",
            "Z",
            " ",
            " ",
            "\t",
            "\n",
            "\"",
            "\"\"\"",
            "#",
            "é",
            ":",
            "{{ .Prompt }}",
            "PARAMETER",
            "FROM",
        ];
        let len = self.below(12);
        (0..len)
            .map(|_| ALPHABET[self.below(ALPHABET.len())])
            .collect()
    }
    fn word(&mut self) -> String {
        let t = self.text().replace(['\n', '"'], "");
        let t = t.trim();
        if t.is_empty() { "x".into() } else { t.into() }
    }
}

fn random_modelfile(r: &mut Rng) -> Modelfile {
    let mut m = Modelfile {
        from: (0..1 + r.below(3)).map(|_| r.text()).collect(),
        adapters: (0..r.below(2)).map(|_| r.text()).collect(),
        licenses: (0..r.below(3)).map(|_| r.text()).collect(),
        ..Default::default()
    };
    let opt = |r: &mut Rng| (r.below(2) == 0).then(|| r.text());
    m.draft = opt(r);
    m.template = opt(r);
    m.system = opt(r);
    m.renderer = opt(r);
    m.parser = opt(r);
    if r.below(3) == 0 {
        m.requires = Some(["0.14.0", "v1.2", "2", "v0.5.0-rc1"][r.below(4)].into());
    }
    for _ in 0..r.below(4) {
        let role = [Role::System, Role::User, Role::Assistant][r.below(3)];
        m.messages.push(Message {
            role,
            content: r.text(),
        });
    }
    let _ = r.word();
    if r.below(2) == 0 {
        let n = 1 + r.below(3);
        m.parameters.insert(
            "stop".into(),
            ParamValue::Strings((0..n).map(|_| r.text()).collect()),
        );
    }
    for name in ["num_ctx", "seed", "temperature", "top_p", "use_mmap"] {
        if r.below(2) == 0 {
            let v = match param_kind(name) {
                Some(ParamKind::Int) => ParamValue::Int(r.next() as i64 >> r.below(64)),
                Some(ParamKind::Float) => {
                    ParamValue::Float((r.next() >> 11) as f64 / (1u64 << r.below(60)) as f64)
                }
                _ => ParamValue::Bool(r.below(2) == 0),
            };
            m.parameters.insert(name.into(), v);
        }
    }
    m
}

fn all_values(m: &Modelfile) -> Vec<&str> {
    let mut v: Vec<&str> = m
        .from
        .iter()
        .chain(&m.adapters)
        .chain(&m.licenses)
        .map(String::as_str)
        .collect();
    for o in [&m.draft, &m.template, &m.system, &m.renderer, &m.parser] {
        v.extend(o.as_deref());
    }
    v.extend(m.messages.iter().map(|x| x.content.as_str()));
    if let Some(ParamValue::Strings(s)) = m.parameters.get("stop") {
        v.extend(s.iter().map(String::as_str));
    }
    v
}

#[test]
fn parse_render_round_trip_property() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    for _ in 0..3000 {
        let m = random_modelfile(&mut r);
        if !all_values(&m).into_iter().all(representable) {
            continue;
        }
        let text = m.render(Some("x:latest"));
        let back = Modelfile::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(back.modelfile, m, "rendered as {text:?}");
        // Rendering is stable.
        assert_eq!(back.modelfile.render(None), m.render(None));
        checked += 1;
    }
    assert!(
        checked > 2000,
        "only {checked} generated models were representable"
    );
}

#[test]
fn round_trip_of_parsed_examples() {
    for text in [
        "FROM a\nSYSTEM \"\"\"x\"\"\"\n",
        "FROM a\nTEMPLATE \"\"\"{{ if .System }}\n\"{{ .System }}\"\n{{ end }}\"\"\"\nPARAMETER stop \"\"\"\"q\"\"\"\"\n",
        "FROM ./m.gguf\nMESSAGE system \" sys \"\nMESSAGE user \"\"\"a \"b\"\n c \"\"\"\n",
        "FROM a\nPARAMETER temperature 0.1\nPARAMETER num_predict -2\nPARAMETER repeat_penalty 1e3\n",
    ] {
        let m = parse(text);
        assert_eq!(parse(&m.render(None)), m, "{text:?}");
    }
    assert!(!representable("a\nb\"\"\"\nc"));
    assert!(!representable("x\u{7}"));
    assert!(representable("a\n\"\"\"b"));
}

#[test]
fn show_parameters_text_like_ollama() {
    let params: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        r#"{"stop":["<|im_start|>","say \"hi\"\n\u0001"],"temperature":0.7,"num_ctx":4096,"seed":1000000,"min_p":0.00001,"top_p":0.0001,"use_mmap":false,"x":1234567.5}"#,
    )
    .unwrap();
    let want = [
        "min_p                          1e-05",
        "num_ctx                        4096",
        "seed                           1e+06",
        "stop                           \"<|im_start|>\"",
        "stop                           \"say \\\"hi\\\"\\n\\x01\"",
        "temperature                    0.7",
        "top_p                          0.0001",
        "use_mmap                       false",
        "x                              1.2345675e+06",
    ]
    .join("\n");
    assert_eq!(show_parameters(&params), want);
    // A parsed Modelfile's parameters render the same way.
    let m = parse("FROM a\nPARAMETER stop x\nPARAMETER num_predict -1\n");
    assert_eq!(
        show_parameters(&m.parameters_json()),
        "num_predict                    -1\nstop                           \"x\""
    );
}
