//! Tests: the generated GBNF is checked by a strict GBNF parser written here (and by
//! llama.cpp's own parser where a model loads), then run by a small matcher against JSON
//! texts that the schema accepts and rejects.

use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::*;

// ---------------------------------------------------------------------------------------
// A GBNF parser (a syntax checker) and matcher, for tests only.

#[derive(Debug, Clone)]
enum Elem {
    Lit(Vec<char>),
    Class {
        neg: bool,
        ranges: Vec<(char, char)>,
    },
    Ref(String),
    Group(Vec<Vec<Rep>>),
}

#[derive(Debug, Clone)]
struct Rep {
    elem: Elem,
    min: usize,
    max: Option<usize>,
}

#[derive(Debug)]
struct Gbnf {
    rules: HashMap<String, Vec<Vec<Rep>>>,
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn hex(&mut self, n: usize) -> Result<char, String> {
        let mut v = 0u32;
        for _ in 0..n {
            let c = self.peek().ok_or("short hex escape")?;
            v = v * 16 + c.to_digit(16).ok_or(format!("bad hex digit {c:?}"))?;
            self.i += 1;
        }
        char::from_u32(v).ok_or_else(|| "bad code point".into())
    }
    fn char_in(&mut self) -> Result<char, String> {
        let c = self.peek().ok_or("unterminated literal or class")?;
        self.i += 1;
        if c != '\\' {
            return Ok(c);
        }
        let e = self.peek().ok_or("dangling escape")?;
        self.i += 1;
        Ok(match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '\\' | '"' | '[' | ']' => e,
            'x' => self.hex(2)?,
            'u' => self.hex(4)?,
            'U' => self.hex(8)?,
            _ => return Err(format!("unknown escape \\{e}")),
        })
    }
    fn number(&mut self) -> Result<usize, String> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let t: String = self.s[start..self.i].iter().collect();
        t.parse().map_err(|_| format!("bad number at {start}"))
    }
    fn alts(&mut self) -> Result<Vec<Vec<Rep>>, String> {
        let mut alts = vec![self.seq()?];
        while self.eat('|') {
            alts.push(self.seq()?);
        }
        Ok(alts)
    }
    fn seq(&mut self) -> Result<Vec<Rep>, String> {
        let mut seq = Vec::new();
        loop {
            self.skip_spaces();
            let elem = match self.peek() {
                None | Some('|') | Some(')') => return Ok(seq),
                Some('"') => {
                    self.i += 1;
                    let mut lit = Vec::new();
                    while self.peek() != Some('"') {
                        lit.push(self.char_in()?);
                    }
                    self.i += 1;
                    Elem::Lit(lit)
                }
                Some('[') => {
                    self.i += 1;
                    let neg = self.eat('^');
                    let mut ranges = Vec::new();
                    while self.peek() != Some(']') {
                        let a = self.char_in()?;
                        let b = if self.peek() == Some('-') && self.s.get(self.i + 1) != Some(&']')
                        {
                            self.i += 1;
                            self.char_in()?
                        } else {
                            a
                        };
                        ranges.push((a, b));
                    }
                    self.i += 1;
                    Elem::Class { neg, ranges }
                }
                Some('(') => {
                    self.i += 1;
                    let a = self.alts()?;
                    self.skip_spaces();
                    if !self.eat(')') {
                        return Err(format!("expected ')' at {}", self.i));
                    }
                    Elem::Group(a)
                }
                Some(c) if c.is_ascii_alphanumeric() || c == '-' => {
                    let start = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
                    {
                        self.i += 1;
                    }
                    Elem::Ref(self.s[start..self.i].iter().collect())
                }
                Some(c) => return Err(format!("unexpected {c:?} at {}", self.i)),
            };
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    self.i += 1;
                    let m = self.number()?;
                    let r = if self.eat(',') {
                        if self.peek() == Some('}') {
                            (m, None)
                        } else {
                            (m, Some(self.number()?))
                        }
                    } else {
                        (m, Some(m))
                    };
                    if self.peek() != Some('}') {
                        return Err("expected '}'".into());
                    }
                    r
                }
                _ => {
                    seq.push(Rep {
                        elem,
                        min: 1,
                        max: Some(1),
                    });
                    continue;
                }
            };
            self.i += 1;
            seq.push(Rep { elem, min, max });
        }
    }
}

fn refs_of(alts: &[Vec<Rep>], out: &mut Vec<String>) {
    for r in alts.iter().flatten() {
        match &r.elem {
            Elem::Ref(n) => out.push(n.clone()),
            Elem::Group(g) => refs_of(g, out),
            _ => {}
        }
    }
}

/// Parses GBNF as generated (one rule a line), strictly: valid names, no duplicates,
/// every reference defined, a `root`.
fn parse_gbnf(text: &str) -> Result<Gbnf, String> {
    let mut rules = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (name, body) = line
            .split_once(" ::= ")
            .ok_or(format!("no ::= in {line:?}"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad rule name {name:?}"));
        }
        let chars: Vec<char> = body.chars().collect();
        let mut p = Parser { s: &chars, i: 0 };
        let alts = p.alts().map_err(|e| format!("rule {name}: {e}"))?;
        if p.i != chars.len() {
            return Err(format!("rule {name}: trailing text at {}", p.i));
        }
        if rules.insert(name.to_string(), alts).is_some() {
            return Err(format!("rule {name} defined twice"));
        }
    }
    if !rules.contains_key("root") {
        return Err("no root rule".into());
    }
    for (name, alts) in &rules {
        let mut refs = Vec::new();
        refs_of(alts, &mut refs);
        for r in refs {
            if !rules.contains_key(&r) {
                return Err(format!("rule {name} uses undefined {r}"));
            }
        }
    }
    Ok(Gbnf { rules })
}

type Ends = Rc<BTreeSet<usize>>;

struct Matcher<'a> {
    g: &'a Gbnf,
    input: Vec<char>,
    memo: HashMap<(String, usize), Ends>,
}

impl Matcher<'_> {
    fn alts(&mut self, alts: &[Vec<Rep>], at: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for seq in alts {
            let mut cur = BTreeSet::from([at]);
            for rep in seq {
                let mut next = BTreeSet::new();
                for &p in &cur {
                    next.extend(self.rep(rep, p));
                }
                cur = next;
                if cur.is_empty() {
                    break;
                }
            }
            out.extend(cur);
        }
        out
    }

    fn rep(&mut self, rep: &Rep, at: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut level = BTreeSet::from([at]);
        let mut count = 0;
        loop {
            if count >= rep.min {
                let before = out.len();
                out.extend(level.iter().copied());
                if out.len() == before && rep.max.is_none() && count > rep.min {
                    break;
                }
            }
            if rep.max == Some(count) || level.is_empty() {
                break;
            }
            let mut next = BTreeSet::new();
            for &p in &level {
                next.extend(self.elem(&rep.elem, p));
            }
            level = next;
            count += 1;
            assert!(count < 100_000, "runaway repetition");
        }
        out
    }

    fn elem(&mut self, e: &Elem, at: usize) -> BTreeSet<usize> {
        match e {
            Elem::Lit(l) => {
                if self.input.get(at..at + l.len()) == Some(l.as_slice()) {
                    BTreeSet::from([at + l.len()])
                } else {
                    BTreeSet::new()
                }
            }
            Elem::Class { neg, ranges } => match self.input.get(at) {
                Some(&c) if ranges.iter().any(|&(a, b)| a <= c && c <= b) != *neg => {
                    BTreeSet::from([at + 1])
                }
                _ => BTreeSet::new(),
            },
            Elem::Group(g) => self.alts(g, at),
            Elem::Ref(name) => (*self.rule(name, at)).clone(),
        }
    }

    fn rule(&mut self, name: &str, at: usize) -> Ends {
        let key = (name.to_string(), at);
        if let Some(e) = self.memo.get(&key) {
            return e.clone();
        }
        // A rule re-entered at the same position is left recursion: llama.cpp refuses it.
        self.memo.insert(key.clone(), Rc::new(BTreeSet::new()));
        let g = self.g;
        let ends = Rc::new(self.alts(&g.rules[name], at));
        self.memo.insert(key, ends.clone());
        ends
    }
}

fn accepts(g: &Gbnf, text: &str) -> bool {
    let mut m = Matcher {
        g,
        input: text.chars().collect(),
        memo: HashMap::new(),
    };
    let n = m.input.len();
    m.rule("root", 0).contains(&n)
}

/// Whether the GBNF `text` (with a `root` rule) accepts `input`, by the test matcher.
pub(super) fn gbnf_accepts(text: &str, input: &str) -> bool {
    let g = parse_gbnf(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    accepts(&g, input)
}

/// Builds the grammar for `schema` and checks that it accepts every `good` text and
/// rejects every `bad` one.
fn check(schema: Value, good: &[&str], bad: &[&str]) -> String {
    let text = from_schema(&schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
    let g = parse_gbnf(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    if let Err(e) = llama_parses(&text) {
        panic!("llama.cpp refused the grammar: {e}\n{text}");
    }
    for s in good {
        assert!(
            accepts(&g, s),
            "should accept {s:?}\nschema {schema}\n{text}"
        );
    }
    for s in bad {
        assert!(
            !accepts(&g, s),
            "should reject {s:?}\nschema {schema}\n{text}"
        );
    }
    text
}

// ---------------------------------------------------------------------------------------
// The checker itself.

#[test]
fn checker_catches_bad_gbnf() {
    assert!(parse_gbnf("root ::= foo\n").is_err());
    assert!(parse_gbnf("a ::= \"x\"\n").is_err());
    assert!(parse_gbnf("root ::= \"x\n").is_err());
    assert!(parse_gbnf("root ::= (\"x\"\n").is_err());
    assert!(parse_gbnf("root ::= \"x\"\nroot ::= \"y\"\n").is_err());
    assert!(parse_gbnf("ro_ot ::= \"x\"\n").is_err());
    let g = parse_gbnf("root ::= \"a\" [b-d]{1,2} (\"x\" | \"y\")* \"z\"?\n").unwrap();
    assert!(accepts(&g, "ab"));
    assert!(accepts(&g, "acdxyxz"));
    assert!(!accepts(&g, "a"));
    assert!(!accepts(&g, "abcd"));
}

// ---------------------------------------------------------------------------------------
// `format` and JSON mode.

#[test]
fn format_values() {
    assert!(from_format(&Value::Null).unwrap().is_none());
    assert!(from_format(&json!("")).unwrap().is_none());
    assert_eq!(from_format(&json!("json")).unwrap(), Some(json_grammar()));
    assert!(from_format(&json!({"type": "string"})).unwrap().is_some());
    let e = from_format(&json!("xml")).unwrap_err();
    assert!(matches!(e, SchemaError::InvalidFormat(_)), "{e}");
    assert!(from_format(&json!(3)).is_err());
}

#[test]
fn json_mode_is_any_object() {
    let g = parse_gbnf(&json_grammar()).unwrap();
    for s in [
        "{}",
        r#"{"a": 1}"#,
        "{\n  \"a\": [1, 2.5, -3e10, true, null, \"x\\n\\u00e9\"],\n  \"b\": {\"c\": {}}\n}",
        r#"{"unicode": "héllo ☃"}"#,
    ] {
        assert!(accepts(&g, s), "{s}");
    }
    for s in [
        "[]",
        "1",
        "\"x\"",
        r#"{"a": 01}"#,
        r#"{"a": }"#,
        r#"{"a": 1,}"#,
        "{\"a\": \"\n\"}",
        r#"{a: 1}"#,
        "{}                                                  ",
    ] {
        assert!(!accepts(&g, s), "{s}");
    }
}

#[test]
fn empty_schema_is_any_value() {
    for schema in [json!({}), json!(true)] {
        check(
            schema,
            &["1", "\"s\"", "[1, {}]", "null", r#"{"k": false}"#],
            &["", "nul", "[1,]"],
        );
    }
}

// ---------------------------------------------------------------------------------------
// Scalars.

#[test]
fn integer_vs_number() {
    check(
        json!({"type": "integer"}),
        &["0", "-12", "123456"],
        &["1.5", "01", "1e3", "-", "+1", "\"1\""],
    );
    check(
        json!({"type": "number"}),
        &["0", "-12", "1.5", "1e3", "-0.25E-7"],
        &["01", ".5", "1.", "NaN", "1e"],
    );
}

#[test]
fn boolean_and_null() {
    check(
        json!({"type": "boolean"}),
        &["true", "false"],
        &["null", "1", "True"],
    );
    check(json!({"type": "null"}), &["null"], &["false", "\"null\""]);
}

#[test]
fn strings_with_length_bounds() {
    check(
        json!({"type": "string", "minLength": 2, "maxLength": 4}),
        &[r#""ab""#, r#""abcd""#, r#""a\"c""#, r#""é☃""#],
        &[r#""a""#, r#""abcde""#, "ab", r#""""#],
    );
    check(
        json!({"type": "string", "minLength": 1}),
        &[r#""a""#, r#""a long string""#],
        &[r#""""#],
    );
    check(
        json!({"type": "string", "maxLength": 0}),
        &[r#""""#],
        &[r#""a""#],
    );
    // Very large maxima are unbounded; very large minima are refused.
    check(
        json!({"type": "string", "maxLength": 100000}),
        &[r#""abc""#],
        &[],
    );
    assert!(matches!(
        from_schema(&json!({"type": "string", "minLength": 100000})),
        Err(SchemaError::TooLarge)
    ));
    assert!(from_schema(&json!({"type": "string", "minLength": 3, "maxLength": 2})).is_err());
    assert!(from_schema(&json!({"type": "string", "minLength": -1})).is_err());
}

#[test]
fn string_formats() {
    check(
        json!({"type": "string", "format": "date"}),
        &[r#""2024-02-29""#, r#""1999-12-31""#],
        &[
            r#""2024-13-01""#,
            r#""2024-1-01""#,
            r#""2024-01-32""#,
            "2024-01-01",
        ],
    );
    check(
        json!({"type": "string", "format": "time"}),
        &[r#""12:34:56Z""#, r#""23:59:59.123+02:00""#],
        &[r#""24:00:00Z""#, r#""12:34:56""#, r#""12:60:00Z""#],
    );
    check(
        json!({"type": "string", "format": "date-time"}),
        &[
            r#""2024-06-01T08:30:00Z""#,
            r#""2024-06-01T08:30:00.5-05:00""#,
        ],
        &[r#""2024-06-01 08:30:00Z""#, r#""2024-06-01""#],
    );
    check(
        json!({"type": "string", "format": "uuid"}),
        &[r#""123e4567-e89b-12d3-a456-426614174000""#],
        &[
            r#""123e4567e89b12d3a456426614174000""#,
            r#""123e4567-e89b-12d3-a456-42661417400g""#,
        ],
    );
    // Unknown formats, and patterns outside the subset, are ignored.
    check(
        json!({"type": "string", "format": "email", "pattern": "[a-z]+"}),
        &[r#""anything 1""#],
        &["1"],
    );
}

#[test]
fn simple_patterns() {
    check(
        json!({"type": "string", "pattern": "^[a-z]+$"}),
        &[r#""abc""#, r#""z""#],
        &[r#""""#, r#""aBc""#, r#""ab1""#],
    );
    check(
        json!({"type": "string", "pattern": "^\\d{3}-\\d{4}$"}),
        &[r#""555-1234""#],
        &[r#""5551234""#, r#""55-1234""#, r#""555-12345""#],
    );
    check(
        json!({"type": "string", "pattern": "^(?:foo|ba[rz])+\\.(txt|md)?$"}),
        &[r#""foo.txt""#, r#""barbaz.""#, r#""foobar.md""#],
        &[r#"".txt""#, r#""bat.md""#, r#""foo.doc""#],
    );
    check(
        json!({"type": "string", "pattern": "^a\"b\\\\c.$", "maxLength": 1}),
        &[r#""a\"b\\cx""#, r#""a\"b\\c\n""#],
        &[r#""a"b\\cx""#, r#""a\"b\\c""#],
    );
    check(
        json!({"type": "string", "pattern": "^[\\w\\-^\\]]{2,3}$"}),
        &[r#""a-^""#, r#""_]""#],
        &[r#""a""#, r#""a b""#, r#""a-^]""#],
    );
    // Outside the subset: ignored.
    for p in [
        "abc",
        "^a",
        "^[^a]$",
        "^a*?$",
        "^(a$",
        "^\\s$",
        "^$",
        "^a{2000}$",
    ] {
        check(
            json!({"type": "string", "pattern": p}),
            &[r#""anything""#],
            &["1"],
        );
    }
}

#[test]
fn enum_and_const() {
    check(
        json!({"enum": ["red", "green", 3, null, {"a": [1]}]}),
        &[r#""red""#, r#""green""#, "3", "null", r#"{"a":[1]}"#],
        &[r#""blue""#, "4", r#""Red""#, r#"{"a": [1]}"#],
    );
    check(
        json!({"type": "string", "enum": ["a\"b", "c\\d", "e\nf"]}),
        &[r#""a\"b""#, r#""c\\d""#, r#""e\nf""#],
        &[r#""ab""#],
    );
    check(json!({"const": "x"}), &[r#""x""#], &[r#""y""#, "x"]);
    check(json!({"const": 42}), &["42"], &["42.0"]);
    assert!(from_schema(&json!({"enum": []})).is_err());
}

#[test]
fn type_lists_with_null() {
    check(
        json!({"type": ["string", "null"]}),
        &[r#""x""#, "null"],
        &["1", "true"],
    );
    check(
        json!({"type": ["integer", "boolean"], "multipleOf": 3}),
        &["1", "false"],
        &["1.5", "null"],
    );
    check(
        json!({"type": "object", "properties": {"v": {"type": ["number", "null"]}}, "required": ["v"]}),
        &[r#"{"v": null}"#, r#"{"v": 2.5}"#],
        &[r#"{"v": "2"}"#, "{}"],
    );
}

// ---------------------------------------------------------------------------------------
// Objects.

#[test]
fn object_required_and_optional() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "email": {"type": "string"},
            "admin": {"type": "boolean"}
        },
        "required": ["age", "name"]
    });
    // Required first in schema order (name, age), then optional in schema order.
    check(
        schema,
        &[
            r#"{"name": "Ann", "age": 3}"#,
            r#"{"name":"Ann","age":3,"email":"a@b"}"#,
            r#"{"name": "Ann", "age": 3, "admin": true}"#,
            r#"{"name": "Ann", "age": 3, "email": "x", "admin": false}"#,
            "{\n  \"name\": \"Ann\",\n  \"age\": 3\n}",
        ],
        &[
            r#"{"age": 3, "name": "Ann"}"#,
            r#"{"name": "Ann"}"#,
            r#"{"name": "Ann", "age": 3, "admin": true, "email": "x"}"#,
            r#"{"name": "Ann", "age": 3, "other": 1}"#,
            r#"{"name": "Ann", "age": "3"}"#,
            r#"{"name": "Ann", "age": 3,}"#,
        ],
    );
}

#[test]
fn object_all_optional() {
    check(
        json!({"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}}}),
        &[
            "{}",
            r#"{"a": 1}"#,
            r#"{"b": 1}"#,
            r#"{"c": 1}"#,
            r#"{"a": 1, "c": 3}"#,
            r#"{"a":1,"b":2,"c":3}"#,
        ],
        &[
            r#"{"b": 1, "a": 2}"#,
            r#"{, "a": 1}"#,
            r#"{"a": 1,}"#,
            r#"{"d": 1}"#,
        ],
    );
}

#[test]
fn object_additional_properties() {
    // Listed properties plus any others.
    check(
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": true}),
        &[
            r#"{"a": 1}"#,
            r#"{"a": 1, "x": [true]}"#,
            r#"{"a": 1, "x": 1, "y": {}}"#,
        ],
        &[r#"{"x": 1}"#, r#"{"a": 1 "x": 1}"#],
    );
    // A schema for the values of other keys, with only optional listed properties.
    check(
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}}),
        &[
            "{}",
            r#"{"a": 1}"#,
            r#"{"x": "s"}"#,
            r#"{"a": 1, "x": "s", "y": "t"}"#,
        ],
        &[r#"{"x": 1}"#, r#"{"a": 1, "x": 2}"#],
    );
    // No properties: a map.
    check(
        json!({"type": "object", "additionalProperties": {"type": "integer"}}),
        &["{}", r#"{"k": 1, "l": 2}"#],
        &[r#"{"k": "1"}"#],
    );
    check(
        json!({"type": "object"}),
        &["{}", r#"{"k": [1, "x"]}"#],
        &["[]"],
    );
    check(
        json!({"type": "object", "additionalProperties": false}),
        &["{}", "{ }"],
        &[r#"{"k": 1}"#],
    );
}

#[test]
fn nested_objects_and_odd_keys() {
    check(
        json!({
            "type": "object",
            "properties": {
                "user": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "tags": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["id", "tags"]
                },
                "weird key \"q\" / ~": {"type": "null"}
            },
            "required": ["user", "weird key \"q\" / ~"]
        }),
        &[
            r#"{"user": {"id": 1, "tags": []}, "weird key \"q\" / ~": null}"#,
            r#"{"user": {"id": 1, "tags": ["a", "b"]}, "weird key \"q\" / ~": null}"#,
        ],
        &[
            r#"{"user": {"id": 1}, "weird key \"q\" / ~": null}"#,
            r#"{"user": {"id": 1, "tags": [1]}, "weird key \"q\" / ~": null}"#,
        ],
    );
}

#[test]
fn all_of() {
    check(json!({"allOf": [{"type": "integer"}]}), &["1"], &["\"1\""]);
    check(
        json!({
            "$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
            "allOf": [
                {"$ref": "#/$defs/base"},
                {"properties": {"name": {"type": "string"}}, "required": ["name"]}
            ]
        }),
        &[r#"{"id": 1, "name": "n"}"#],
        &[r#"{"id": 1}"#, r#"{"name": "n"}"#],
    );
    // Sibling properties merge too (they come first).
    check(
        json!({
            "properties": {"z": {"type": "null"}},
            "required": ["z"],
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}}
            ]
        }),
        &[
            r#"{"z": null, "a": 1}"#,
            r#"{"z": null, "a": 1, "b": true}"#,
        ],
        &[r#"{"a": 1}"#, r#"{"z": null, "b": true}"#],
    );
    assert!(matches!(
        from_schema(&json!({"allOf": [{"type": "string"}, {"type": "integer"}]})),
        Err(SchemaError::Unsupported { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Arrays.

#[test]
fn arrays_with_bounds() {
    check(
        json!({"type": "array", "items": {"type": "integer"}}),
        &["[]", "[1]", "[1, 2, 3]", "[\n  1,\n  2\n]"],
        &["[1,]", "[\"a\"]", "[", "[1 2]"],
    );
    check(
        json!({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3}),
        &["[1, 2]", "[1, 2, 3]"],
        &["[]", "[1]", "[1, 2, 3, 4]"],
    );
    check(
        json!({"type": "array", "items": {"type": "boolean"}, "minItems": 1}),
        &["[true]", "[true, false, true]"],
        &["[]"],
    );
    check(
        json!({"type": "array", "maxItems": 1}),
        &["[]", "[{\"a\": 1}]"],
        &["[1, 2]"],
    );
    check(json!({"type": "array", "maxItems": 0}), &["[]"], &["[1]"]);
    check(
        json!({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}),
        &["[1, 2]"],
        &["[1]", "[1, 2, 3]"],
    );
    check(
        json!({"type": "array"}),
        &["[]", "[1, \"a\", null]"],
        &["{}"],
    );
    assert!(from_schema(&json!({"type": "array", "minItems": 3, "maxItems": 1})).is_err());
}

#[test]
fn tuples() {
    check(
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}),
        &[r#"["a", 1]"#],
        &[r#"["a"]"#, r#"[1, "a"]"#, r#"["a", 1, 2]"#],
    );
    check(
        json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}),
        &[r#"["a"]"#, r#"["a", 1, 2]"#],
        &[r#"["a", "b"]"#, "[]"],
    );
    // Draft-07 tuples.
    check(
        json!({"type": "array", "items": [{"const": 1}, {"const": 2}]}),
        &["[1, 2]"],
        &["[2, 1]"],
    );
}

// ---------------------------------------------------------------------------------------
// Alternatives and references.

#[test]
fn any_of_and_one_of() {
    check(
        json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]}),
        &[r#""s""#, "[1, 2]"],
        &["1", r#"["s"]"#],
    );
    check(
        json!({"oneOf": [
            {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind", "x"]},
            {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "string"}}, "required": ["kind", "y"]}
        ]}),
        &[r#"{"kind": "a", "x": 1}"#, r#"{"kind": "b", "y": "s"}"#],
        &[r#"{"kind": "a", "y": "s"}"#, r#"{"kind": "c", "x": 1}"#],
    );
}

#[test]
fn refs_to_defs_and_definitions() {
    check(
        json!({
            "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
            "definitions": {"Name": {"type": "string", "maxLength": 3}},
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/Point"},
                "b": {"$ref": "#/$defs/Point"},
                "n": {"$ref": "#/definitions/Name"}
            },
            "required": ["a", "b", "n"]
        }),
        &[r#"{"a": {"x": 1, "y": 2}, "b": {"x": 0.5, "y": -1}, "n": "abc"}"#],
        &[
            r#"{"a": {"x": 1}, "b": {"x": 0.5, "y": -1}, "n": "abc"}"#,
            r#"{"a": {"x": 1, "y": 2}, "b": {"x": 0.5, "y": -1}, "n": "abcd"}"#,
        ],
    );
}

#[test]
fn recursive_linked_list() {
    check(
        json!({
            "$defs": {"Node": {
                "type": "object",
                "properties": {"value": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
                "required": ["value", "next"]
            }},
            "$ref": "#/$defs/Node"
        }),
        &[
            r#"{"value": 1, "next": null}"#,
            r#"{"value": 1, "next": {"value": 2, "next": {"value": 3, "next": null}}}"#,
        ],
        &[
            r#"{"value": 1}"#,
            r#"{"value": 1, "next": {"value": "2", "next": null}}"#,
        ],
    );
}

#[test]
fn recursive_tree_via_root_ref() {
    check(
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#"}}
            },
            "required": ["name"]
        }),
        &[
            r#"{"name": "a"}"#,
            r#"{"name": "a", "children": []}"#,
            r#"{"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}, {"name": "d"}]}"#,
        ],
        &[
            r#"{"name": "a", "children": [{"children": []}]}"#,
            r#"{"name": "a", "children": [1]}"#,
        ],
    );
}

#[test]
fn mutually_recursive_refs() {
    check(
        json!({
            "definitions": {
                "Expr": {"anyOf": [{"type": "integer"}, {"$ref": "#/definitions/Sum"}]},
                "Sum": {"type": "object", "properties": {"add": {"type": "array", "items": {"$ref": "#/definitions/Expr"}, "minItems": 2}}, "required": ["add"]}
            },
            "$ref": "#/definitions/Expr"
        }),
        &[
            "1",
            r#"{"add": [1, 2]}"#,
            r#"{"add": [1, {"add": [2, 3, 4]}]}"#,
        ],
        &[r#"{"add": [1]}"#, r#"{"add": [1, "2"]}"#],
    );
}

// ---------------------------------------------------------------------------------------
// Errors.

#[test]
fn too_deep() {
    let mut s = json!({"type": "integer"});
    for _ in 0..40 {
        s = json!({"type": "object", "properties": {"a": s}});
    }
    let e = from_schema(&s).unwrap_err();
    assert!(matches!(e, SchemaError::TooDeep), "{e}");
    assert_eq!(e.to_string(), "schema too deep (over 32 levels)");
    // 30 levels are fine.
    let mut s = json!({"type": "integer"});
    for _ in 0..30 {
        s = json!({"type": "array", "items": s});
    }
    check(
        s,
        &[&format!("{}1{}", "[".repeat(30), "]".repeat(30))],
        &["1"],
    );
}

#[test]
fn bad_refs() {
    let e = from_schema(&json!({"$ref": "#/$defs/X"})).unwrap_err();
    assert_eq!(e.to_string(), "$ref not found: #/$defs/X");
    assert!(from_schema(&json!({"$ref": "https://example.com/s.json"})).is_err());
    assert!(from_schema(&json!({"$ref": 3})).is_err());
}

#[test]
fn left_recursive_refs_are_refused() {
    for s in [
        json!({"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}),
        json!({"$defs": {"A": {"anyOf": [{"$ref": "#/$defs/B"}, {"type": "integer"}]}, "B": {"allOf": [{"$ref": "#/$defs/A"}]}}, "$ref": "#/$defs/A"}),
        json!({"anyOf": [{"$ref": "#"}, {"type": "null"}]}),
    ] {
        let e = from_schema(&s).unwrap_err();
        assert!(matches!(e, SchemaError::Unsupported { .. }), "{e}");
    }
    // llama.cpp refuses such grammars too (rather than looping).
    assert!(llama_parses("root ::= root \"x\" | \"y\"\n").is_err());
}

#[test]
fn unknown_types() {
    let e =
        from_schema(&json!({"type": "object", "properties": {"x": {"type": "foo"}}})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid JSON schema: unsupported type \"foo\" at /properties/x"
    );
    assert!(matches!(
        from_schema(&json!({"type": ["string", "date"]})),
        Err(SchemaError::UnknownType { .. })
    ));
    assert!(from_schema(&json!({"type": 7})).is_err());
    assert!(from_schema(&json!({"type": []})).is_err());
}

#[test]
fn other_errors() {
    assert!(from_schema(&json!(false)).is_err());
    assert!(from_schema(&json!("string")).is_err());
    assert!(from_schema(&json!({"properties": []})).is_err());
    assert!(from_schema(&json!({"properties": {"a": {}}, "required": ["b"]})).is_err());
    let big = json!({"enum": vec!["x".repeat(1000); 1100]});
    assert!(matches!(from_schema(&big), Err(SchemaError::TooLarge)));
    // Over 5000 rules.
    let props: serde_json::Map<String, Value> = (0..6000)
        .map(|i| (format!("p{i}"), json!({"type": "integer", "maxLength": i})))
        .collect();
    let many = json!({"type": "object", "properties": props});
    assert!(matches!(from_schema(&many), Err(SchemaError::TooLarge)));
}

#[test]
fn ignored_keywords_loosen() {
    check(
        json!({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5, "not": {"const": 1}}}, "required": ["n"], "patternProperties": {"^x": {}}}),
        &[r#"{"n": 1}"#],
        &[r#"{"x": 1}"#],
    );
}

// ---------------------------------------------------------------------------------------
// llama.cpp's own parser.

/// Grammars from a spread of the schemas above.
fn sample_grammars() -> Vec<String> {
    let schemas = [
        json!({}),
        json!({"type": "object", "properties": {"a": {"type": "string", "format": "date-time"}, "b": {"type": ["integer", "null"]}}, "required": ["a"]}),
        json!({"type": "array", "items": {"enum": ["x", "y\"z"]}, "minItems": 1, "maxItems": 4}),
        json!({"type": "string", "minLength": 2, "maxLength": 5}),
        json!({"$defs": {"N": {"type": "object", "properties": {"n": {"anyOf": [{"$ref": "#/$defs/N"}, {"type": "null"}]}}}}, "$ref": "#/$defs/N"}),
        json!({"type": "object", "additionalProperties": {"type": "number"}}),
        json!({"type": "string", "format": "uuid"}),
    ];
    let mut out: Vec<String> = schemas.iter().map(|s| from_schema(s).unwrap()).collect();
    out.push(json_grammar());
    out
}

/// The tiny model's vocabulary: control tokens, a newline byte, and one token per character
/// of simple JSON texts.
fn vocab() -> Vec<String> {
    let mut tokens = vec![
        "<unk>".to_string(),
        "<s>".into(),
        "</s>".into(),
        "<0x0A>".into(),
    ];
    tokens.extend(
        "{}[]\":,0123456789 truefalsn.-bd\\"
            .chars()
            .map(|c| c.to_string()),
    );
    tokens
}

/// A tiny one-layer llama model with a 36-token SentencePiece vocabulary, for llama.cpp to
/// build grammar samplers against.
fn tiny_model_with_vocab() -> Vec<u8> {
    use crate::gguf::{Array, Value as G};
    use crate::gguf::{GgmlType, GgufWriter};
    const E: u64 = 64;
    const V: u64 = 36;
    let tokens = vocab();
    assert_eq!(tokens.len(), V as usize);
    let mut types = vec![2i32, 3, 3, 6];
    types.extend(std::iter::repeat_n(1, V as usize - 4));
    let f = |n: u64, seed: u64| -> Vec<u8> {
        (0..n)
            .flat_map(|i| ((((i * 31 + seed) % 17) as f32 - 8.0) / 64.0).to_le_bytes())
            .collect()
    };
    let mut w = GgufWriter::new()
        .kv("general.architecture", G::String("llama".into()))
        .kv("llama.context_length", G::U32(64))
        .kv("llama.embedding_length", G::U32(E as u32))
        .kv("llama.block_count", G::U32(1))
        .kv("llama.feed_forward_length", G::U32(E as u32))
        .kv("llama.attention.head_count", G::U32(2))
        .kv("llama.attention.head_count_kv", G::U32(2))
        .kv("llama.rope.dimension_count", G::U32(32))
        .kv("llama.attention.layer_norm_rms_epsilon", G::F32(1e-5))
        .kv("llama.vocab_size", G::U32(V as u32))
        .kv("tokenizer.ggml.model", G::String("llama".into()))
        .kv("tokenizer.ggml.tokens", G::Array(Array::String(tokens)))
        .kv(
            "tokenizer.ggml.scores",
            G::Array(Array::F32(vec![0.0; V as usize])),
        )
        .kv("tokenizer.ggml.token_type", G::Array(Array::I32(types)))
        .kv("tokenizer.ggml.bos_token_id", G::U32(1))
        .kv("tokenizer.ggml.eos_token_id", G::U32(2))
        .tensor("token_embd.weight", &[E, V], GgmlType::F32, f(E * V, 1))
        .tensor("output_norm.weight", &[E], GgmlType::F32, f(E, 2))
        .tensor("output.weight", &[E, V], GgmlType::F32, f(E * V, 3))
        .tensor("blk.0.attn_norm.weight", &[E], GgmlType::F32, f(E, 4))
        .tensor("blk.0.ffn_norm.weight", &[E], GgmlType::F32, f(E, 5));
    for (i, n) in [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ]
    .iter()
    .enumerate()
    {
        w = w.tensor(
            &format!("blk.0.{n}.weight"),
            &[E, E],
            GgmlType::F32,
            f(E * E, 10 + i as u64),
        );
    }
    w.to_bytes()
}

/// The tiny model, loaded once for every test.
fn tiny_model() -> &'static llama::Model {
    static MODEL: OnceLock<llama::Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        std::fs::write(&path, tiny_model_with_vocab()).unwrap();
        llama::Model::load(&path, llama::ModelParams::default()).expect("the tiny model loads")
    })
}

/// Whether llama.cpp accepts `gbnf` as a grammar (building a sampler with it).
fn llama_parses(gbnf: &str) -> Result<(), String> {
    llama::Sampler::new(
        tiny_model(),
        &llama::SamplerParams::default().grammar(llama::Grammar::new(gbnf)),
    )
    .map(drop)
    .map_err(|e| e.to_string())
}

/// Whether llama.cpp's grammar sampler lets the tiny model write `text` (one token per
/// character) and then end.
fn llama_accepts(gbnf: &str, text: &str) -> bool {
    let vocab = vocab();
    let mut sampler = llama::Sampler::new(
        tiny_model(),
        &llama::SamplerParams::greedy().grammar(llama::Grammar::new(gbnf)),
    )
    .unwrap();
    let tokens = text.chars().map(|c| {
        let piece = if c == '\n' {
            "<0x0A>".to_string()
        } else {
            c.to_string()
        };
        vocab
            .iter()
            .position(|t| *t == piece)
            .unwrap_or_else(|| panic!("{c:?} is not in the vocabulary"))
    });
    for want in tokens.chain([2]) {
        let mut logits = vec![0.0f32; vocab.len()];
        logits[want] = 10.0;
        match sampler.sample_logits(&logits) {
            Ok(got) if got as usize == want => {}
            _ => return false,
        }
    }
    true
}

#[test]
fn llama_cpp_and_the_matcher_agree() {
    let cases = [
        (
            json!({"type": "object", "properties": {"a": {"type": "integer"}, "s": {"type": ["number", "null"]}}, "required": ["a"]}),
            vec![
                r#"{"a": 1}"#,
                r#"{"a":10,"s":null}"#,
                "{\n  \"a\": 0,\n  \"s\": 2.5e3\n}",
                r#"{"a": 01}"#,
                r#"{"s": 1}"#,
                r#"{"a": 1.5}"#,
                r#"{"a": 1} "#,
                r#"{"a": 1}  "#,
            ],
        ),
        (
            json!({"type": "array", "items": {"enum": ["t", "f", 1]}, "minItems": 1, "maxItems": 2}),
            vec![
                r#"["t"]"#,
                r#"["t", 1]"#,
                "[]",
                r#"["t", "f", 1]"#,
                r#"["n"]"#,
            ],
        ),
        (
            json!({"$defs": {"L": {"type": "object", "properties": {"n": {"anyOf": [{"$ref": "#/$defs/L"}, {"type": "null"}]}}, "required": ["n"]}}, "$ref": "#/$defs/L"}),
            vec![
                r#"{"n": null}"#,
                r#"{"n": {"n": {"n": null}}}"#,
                r#"{"n": {}}"#,
                r#"{"n": {"n": 1}}"#,
            ],
        ),
        (
            json!({"type": "string", "minLength": 2, "maxLength": 3, "format": "x"}),
            vec![r#""ab""#, r#""a\"""#, r#""a""#, r#""abed""#],
        ),
        (
            json!({"type": "string", "pattern": "^\\d+\\.\\d{2}$"}),
            vec![r#""12.50""#, r#""1.5""#, r#"".50""#],
        ),
        (
            json!({"type": "string", "format": "date"}),
            vec![r#""2024-02-29""#, r#""2024-13-01""#],
        ),
    ];
    let mut n = 0;
    for (schema, texts) in cases {
        let g = from_schema(&schema).unwrap();
        let parsed = parse_gbnf(&g).unwrap();
        for t in texts {
            let (ours, theirs) = (accepts(&parsed, t), llama_accepts(&g, t));
            assert_eq!(
                ours, theirs,
                "{t:?}: matcher {ours}, llama.cpp {theirs}\n{g}"
            );
            n += usize::from(ours);
        }
    }
    assert!(n >= 8, "{n} accepted");
    // JSON mode.
    let g = json_grammar();
    assert!(llama_accepts(&g, r#"{"a": [1, true, null, "s"]}"#));
    assert!(!llama_accepts(&g, "[1]"));
}

#[test]
fn llama_cpp_parses_the_grammars() {
    for g in sample_grammars() {
        if let Err(e) = llama_parses(&g) {
            panic!("llama.cpp refused the grammar: {e}\n{g}");
        }
    }
    assert!(llama_parses("root ::= undefined-rule\n").is_err());
    assert!(llama_parses("root ::= (\"x\"\n").is_err());
}

#[test]
fn numeric_bounds() {
    check(
        json!({"type": "integer", "minimum": 1, "maximum": 9}),
        &["1", "5", "9"],
        &["0", "10", "-1", "5.0"],
    );
    check(
        json!({"type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": 120}),
        &["-2", "0", "119"],
        &["-3", "120", "-0x"],
    );
    check(
        json!({"type": "number", "minimum": 0, "maximum": 1}),
        &["0", "0.25", "1", "1.0"],
        &["1.5", "-0.1", "2", "1e0"],
    );
    check(
        json!({"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 10}),
        &["0.5", "10", "3"],
        &["0", "0.0", "11"],
    );
    check(
        json!({"type": "object", "properties": {"p": {"type": "number", "exclusiveMaximum": 0}}, "required": ["p"]}),
        &[r#"{"p": -1.5}"#, r#"{"p": -0.001}"#],
        &[r#"{"p": 0}"#, r#"{"p": 2}"#, r#"{"p": -0.0}"#],
    );
    let e = from_schema(&json!({"type": "integer", "minimum": 5, "maximum": 4})).unwrap_err();
    assert!(
        e.to_string().contains("no integer lies within the bounds"),
        "{e}"
    );
}

#[test]
fn map_property_counts() {
    check(
        json!({"type": "object", "additionalProperties": {"type": "integer"}, "maxProperties": 2}),
        &["{}", r#"{"a": 1}"#, r#"{"a": 1, "b": 2}"#],
        &[r#"{"a": 1, "b": 2, "c": 3}"#, r#"{"a": "x"}"#],
    );
    check(
        json!({"type": "object", "minProperties": 1, "maxProperties": 1}),
        &[r#"{"a": [1]}"#],
        &["{}", r#"{"a": 1, "b": 2}"#],
    );
    check(
        json!({"type": "object", "additionalProperties": true, "minProperties": 2}),
        &[r#"{"a": 1, "b": null, "c": 3}"#],
        &["{}", r#"{"a": 1}"#],
    );
}
