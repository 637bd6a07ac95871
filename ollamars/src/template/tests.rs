//! Unit tests of the template module, and the Go conformance vectors.

use std::path::{Path, PathBuf};

use super::*;
use serde_json::json;

/// 2026-01-02, the date the conformance vectors were made with.
fn fixed_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 2).expect("a valid date")
}

fn values(messages: Vec<Message>) -> Values {
    Values {
        messages,
        today: Some(fixed_day()),
        ..Values::default()
    }
}

fn render(text: &str, values: &Values) -> String {
    Template::parse(text)
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
        .render(values)
        .unwrap_or_else(|e| panic!("{text:?} should render: {e}"))
}

fn user(content: &str) -> Message {
    Message::new("user", content)
}

fn assistant(content: &str) -> Message {
    Message::new("assistant", content)
}

fn system(content: &str) -> Message {
    Message::new("system", content)
}

fn weather_tool() -> Tool {
    serde_json::from_value(json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather <now> & later",
            "parameters": {
                "type": "object",
                "required": ["location"],
                "properties": {
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "location": {"type": ["string", "null"], "description": "City"}
                }
            }
        }
    }))
    .expect("a valid tool")
}

fn tool_call_message() -> Message {
    serde_json::from_value(json!({
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather",
            "arguments": {"unit": "celsius", "location": "Paris", "days": 3, "big": 1000000}}}]
    }))
    .expect("a valid message")
}

// ---------------------------------------------------------------------------------------------
// Conformance: Go's text/template fed Ollama's data

/// Where the shared conformance vectors live: `../shared` beside the repository.
fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/go-templates")
}

#[derive(serde::Deserialize)]
struct Case {
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    tools: Vec<Tool>,
    think: Option<bool>,
    is_think_set: Option<bool>,
}

fn case_values(path: &Path) -> Values {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let case: Case = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    Values {
        messages: case.messages,
        tools: case.tools,
        think: case.think.unwrap_or(false),
        is_think_set: case.is_think_set.unwrap_or(case.think.is_some()),
        today: Some(fixed_day()),
        ..Values::default()
    }
}

/// The first differing line of two texts, with a little context.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.split('\n').collect();
    let a: Vec<&str> = actual.split('\n').collect();
    let first = (0..e.len().max(a.len()))
        .find(|&i| e.get(i) != a.get(i))
        .unwrap_or(0);
    let mut out = format!("first difference at line {}:\n", first + 1);
    for i in first.saturating_sub(2)..(first + 3).min(e.len().max(a.len())) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("    {x:?}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("  - {x:?}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("  + {y:?}\n"));
                }
            }
        }
    }
    out
}

#[test]
fn go_template_conformance() {
    let dir = conformance_dir();
    assert!(
        dir.join("expected").is_dir(),
        "the Go template conformance vectors are expected at {} (the shared/ folder beside the \
         repository root; CI provides it)",
        dir.display()
    );
    let mut expected: Vec<PathBuf> = std::fs::read_dir(dir.join("expected"))
        .expect("the expected folder is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    expected.sort();
    assert!(
        !expected.is_empty(),
        "no expected outputs in {}",
        dir.display()
    );

    let mut failures = Vec::new();
    for path in &expected {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name");
        let (name, case) = stem.rsplit_once('.').expect("<template>.<case>.txt");
        let template_path = dir.join("templates").join(format!("{name}.gotmpl"));
        let text = std::fs::read_to_string(&template_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", template_path.display()));
        let want = std::fs::read_to_string(path).expect("expected output is readable");
        let values = case_values(&dir.join("cases").join(format!("{case}.json")));
        match Template::parse(&text).and_then(|t| t.render(&values)) {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!("{stem}: {}", diff(&want, &got))),
            Err(e) => failures.push(format!("{stem}: error: {e}")),
        }
    }
    let total = expected.len();
    println!(
        "Go template conformance: {}/{total} byte-identical",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}/{total} conformance cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Parse: the appended .Response, vars, capabilities

#[test]
fn response_is_appended_only_without_messages_or_response() {
    let prompt_only = Template::parse("{{ .Prompt }}").unwrap();
    assert_eq!(
        prompt_only.vars(),
        BTreeSet::from(["prompt".to_string(), "response".to_string()])
    );
    // The appended action prints the assistant's (prefilled) text of the last turn.
    let v = values(vec![user("Hi"), assistant("Hel")]);
    assert_eq!(prompt_only.render(&v).unwrap(), "HiHel");

    let with_response = Template::parse("[{{ .Prompt }}]{{ .Response }}<end>").unwrap();
    assert_eq!(
        with_response.render(&values(vec![user("a")])).unwrap(),
        "[a]"
    );

    let messages = Template::parse("{{ range .Messages }}{{ .Content }}{{ end }}!").unwrap();
    assert!(!messages.vars().contains("response"));
    assert_eq!(messages.render(&values(vec![user("a")])).unwrap(), "a!");

    let default = Template::default_template();
    assert_eq!(default.text(), "{{ .Prompt }}");
    assert_eq!(default.render(&values(vec![user("x")])).unwrap(), "x");
}

#[test]
fn vars_lists_fields_and_variables_lower_cased() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "{{ .System }} {{ .Prompt }}",
            &["prompt", "response", "system"],
        ),
        (
            "{{ with .Tools }}{{ . }}{{ end }} {{ .Prompt }}",
            &["prompt", "response", "tools"],
        ),
        (
            "{{ range .Messages }}{{ if eq .Role \"tool\" }}{{ .ToolName }}{{ end }}{{ end }}",
            &["messages", "role", "toolname"],
        ),
        (
            "{{ range $i, $m := .Messages }}{{ if eq (len (slice $.Messages $i)) 1 }}\
             {{ $m.Content }}{{ end }}{{ end }}",
            &["$", "$i", "$m", "content", "messages"],
        ),
        (
            "{{- if .Messages }}{{ range .Messages }}{{ .Content }}{{ end }}\
             {{- else }}{{ .System }}{{ .Prompt }}{{ .Response }}{{ end }}",
            &["content", "messages", "prompt", "response", "system"],
        ),
        (
            "{{ define \"t\" }}{{ .Suffix }}{{ end }}{{ template \"t\" .Function.Name }}",
            &["function", "name", "response", "suffix"],
        ),
    ];
    for (text, want) in cases {
        let got = Template::parse(text).unwrap().vars();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "vars of {text:?}");
    }
}

#[test]
fn capabilities_follow_vars() {
    let tools =
        Template::parse("{{ if .Tools }}T{{ end }}{{ range .Messages }}{{ .Content }}{{ end }}")
            .unwrap();
    assert!(tools.supports_tools());
    assert!(!tools.supports_insert());
    assert!(tools.uses_messages());

    let fim = Template::parse("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>").unwrap();
    assert!(fim.supports_insert());
    assert!(!fim.supports_tools());
    assert!(!fim.uses_messages());
    // `$.Tools` is a variable node, which Ollama counts too.
    assert!(Template::parse("{{ $.Tools }}").unwrap().supports_tools());
}

// ---------------------------------------------------------------------------------------------
// Execution paths

#[test]
fn fill_in_middle_mode_needs_prompt_and_suffix() {
    let t = Template::parse(
        "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}",
    )
    .unwrap();
    let fim = Values {
        prompt: "def add(".into(),
        suffix: "return x".into(),
        ..values(Vec::new())
    };
    assert_eq!(
        t.render(&fim).unwrap(),
        "<PRE> def add( <SUF>return x <MID>"
    );
    // Without a suffix the legacy path runs on the messages.
    assert_eq!(t.render(&values(vec![user("hello")])).unwrap(), "hello");
}

const MISTRAL_LEGACY: &str =
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] ";
const MISTRAL_LEGACY_RESPONSE: &str =
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}";
const MISTRAL_MESSAGES: &str = "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\
{{- range .Messages }}\
{{- if eq .Role \"user\" }}{{ .Content }}[/INST] {{ else if eq .Role \"assistant\" }}{{ .Content }}[INST] {{ end }}\
{{- end }}";

#[test]
fn legacy_and_messages_forms_agree() {
    let conversations = [
        (
            vec![
                user("Hello friend!"),
                assistant("Hello human!"),
                user("What is your name?"),
            ],
            "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] ",
        ),
        (
            vec![
                system("Be kind."),
                user("Hello friend!"),
                assistant("Hello human!"),
                user("What is your name?"),
            ],
            "[INST] Be kind.\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] ",
        ),
    ];
    for (messages, want) in conversations {
        for text in [MISTRAL_LEGACY, MISTRAL_LEGACY_RESPONSE, MISTRAL_MESSAGES] {
            assert_eq!(
                render(text, &values(messages.clone())),
                want,
                "template {text:?}"
            );
        }
    }
}

#[test]
fn legacy_last_turn_is_cut_after_response() {
    let text =
        "{{ if .System }}<<{{ .System }}>>{{ end }}[INST] {{ .Prompt }} [/INST]{{ .Response }}</s>";
    // Completed turns keep everything after .Response; the last one stops there.
    let v = values(vec![system("S"), user("a"), assistant("b"), user("c")]);
    assert_eq!(
        render(text, &v),
        "<<S>>[INST] a [/INST]b</s>[INST] c [/INST]"
    );
    // A trailing assistant message is a prefill: it is printed and left open.
    let prefill = values(vec![user("a"), assistant("partial")]);
    assert_eq!(render(text, &prefill), "[INST] a [/INST]partial");
    // A second system message closes the turn before it.
    let two_systems = values(vec![system("S1"), user("a"), system("S2"), user("b")]);
    assert_eq!(
        render(text, &two_systems),
        "<<S1>>[INST] a [/INST]</s><<S2>>[INST] b [/INST]"
    );
    // force_legacy runs a messages template turn by turn (where .Messages is missing).
    let forced = Values {
        force_legacy: true,
        ..values(vec![user("a")])
    };
    assert_eq!(
        render("{{ range .Messages }}M{{ end }}{{ .Prompt }}", &forced),
        "a"
    );
}

#[test]
fn cut_removes_the_rest_of_the_pipeline_and_later_branches() {
    // Arguments after the .Response field and later commands are dropped with their action.
    let text = "{{ .Prompt }}|{{ .Response | printf \"%s!\" }}|tail";
    assert_eq!(render(text, &values(vec![user("p"), assistant("r")])), "p|");
    // An else branch after a cut inside the if body is dropped.
    let text = "{{ if .Prompt }}<{{ .Response }}>{{ else }}E{{ end }}T";
    assert_eq!(render(text, &values(vec![user("p"), assistant("r")])), "<r");
}

#[test]
fn collation_merges_runs_of_one_role_except_tools() {
    let text = "{{ range .Messages }}[{{ .Role }}{{ if .ToolName }}({{ .ToolName }}){{ end }}:\
                {{ .Content }}]{{ end }}|{{ .System }}";
    let tool = |name: &str, content: &str| Message {
        tool_name: name.into(),
        ..Message::new("tool", content)
    };
    let v = values(vec![
        system("s1"),
        system("s2"),
        user("u1"),
        user("u2"),
        tool("a", "t1"),
        tool("b", "t2"),
        assistant("x"),
        assistant("y"),
    ]);
    assert_eq!(
        render(text, &v),
        "[system:s1\n\ns2][user:u1\n\nu2][tool(a):t1][tool(b):t2][assistant:x\n\ny]|s1\n\ns2"
    );
}

#[test]
fn think_values_reach_the_template() {
    let text = "{{ range .Messages }}{{ end }}{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}";
    let v = Values {
        think: true,
        think_level: "high".into(),
        is_think_set: true,
        ..values(vec![user("x")])
    };
    assert_eq!(render(text, &v), "true high true");
    assert_eq!(render(text, &values(vec![user("x")])), "false  false");
}

#[test]
fn missing_top_level_keys_print_no_value() {
    // The data is a map and Ollama sets missingkey=zero: Go prints "<no value>".
    assert_eq!(
        render(
            "{{ range .Messages }}{{ end }}[{{ .Prompt }}]",
            &values(vec![user("x")])
        ),
        "[<no value>]"
    );
    assert_eq!(
        render("{{ .Prompt }}[{{ .Suffix }}]", &values(vec![user("x")])),
        "x[<no value>]"
    );
}

#[test]
fn dates_come_from_the_given_day() {
    let text = "{{ range .Messages }}{{ end }}{{ currentDate }} {{ yesterdayDate \"%Y\" }}";
    assert_eq!(
        render(text, &values(vec![user("x")])),
        "2026-01-02 2026-01-01"
    );
    let march = Values {
        today: NaiveDate::from_ymd_opt(2024, 3, 1),
        ..values(vec![user("x")])
    };
    assert_eq!(render(text, &march), "2024-03-01 2024-02-29");
    // Without a day given, today's local date is used.
    let today = chrono::Local::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let now = Values {
        today: None,
        ..values(vec![user("x")])
    };
    assert_eq!(
        render("{{ range .Messages }}{{ end }}{{ currentDate }}", &now),
        today
    );
}

// ---------------------------------------------------------------------------------------------
// Go-style printing of Ollama's typed values

const WEATHER_JSON: &str = r#"{"type":"function","function":{"name":"get_weather","description":"Weather \u003cnow\u003e \u0026 later","parameters":{"type":"object","required":["location"],"properties":{"location":{"type":["string","null"],"description":"City"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}}}}}"#;

#[test]
fn tools_print_as_go_json() {
    let v = Values {
        tools: vec![weather_tool()],
        ..values(vec![user("x")])
    };
    let tools = render("{{ range .Messages }}{{ end }}{{ .Tools }}", &v);
    assert_eq!(tools, format!("[{WEATHER_JSON}]"));
    let one = render(
        "{{ range .Messages }}{{ end }}{{ range .Tools }}{{ . }}{{ end }}",
        &v,
    );
    assert_eq!(one, WEATHER_JSON);
    assert_eq!(
        render("{{ range .Messages }}{{ end }}{{ json .Tools }}", &v),
        tools
    );

    // Function and parameters print as JSON too (the fix for ollama#14601).
    let function = render(
        "{{ range .Messages }}{{ end }}{{ range .Tools }}{{ .Function }}{{ end }}",
        &v,
    );
    let tool: serde_json::Value = serde_json::from_str(WEATHER_JSON).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&function).unwrap();
    assert_eq!(parsed, tool["function"]);
    assert!(function.starts_with(r#"{"name":"get_weather","description":"#));

    let properties = render(
        "{{ range .Messages }}{{ end }}{{ range .Tools }}{{ .Function.Parameters.Properties }}|\
         {{ range $name, $p := .Function.Parameters.Properties }}{{ $name }}:{{ $p.Type }}:\
         {{ toTypeScriptType $p }};{{ end }}{{ end }}",
        &v,
    );
    assert_eq!(
        properties,
        r#"{"location":{"type":["string","null"],"description":"City"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}}|location:[string null]:string | null;unit:string:string;"#
    );

    let structs = render(
        "{{ range .Messages }}{{ end }}{{ range .Tools }}{{ range .Function.Parameters.Properties }}\
         {{ . }}|{{ end }}{{ end }}{{ toTypeScriptType .Messages }}",
        &v,
    );
    assert_eq!(
        structs,
        "{[] [string null] <nil> City [] <nil> []}|{[] string <nil>  [celsius fahrenheit] <nil> []}|any"
    );

    // No tools: the nil list prints as JSON null and is false.
    let none = render(
        "{{ range .Messages }}{{ end }}{{ .Tools }}{{ if .Tools }}!{{ end }}",
        &values(vec![user("x")]),
    );
    assert_eq!(none, "null");
}

#[test]
fn tool_call_arguments_print_as_sorted_json() {
    let v = values(vec![user("x"), tool_call_message()]);
    let text = "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}|\
                {{ range $k, $v := .Function.Arguments }}{{ $k }}={{ $v }};{{ end }}|\
                {{ printf \"%s\" .Function.Arguments }}|{{ .Function.Arguments | printf \"%v!\" }}|\
                {{ .Function.Name }}#{{ .Function.Index }}{{ end }}{{ end }}";
    let args = r#"{"big":1000000,"days":3,"location":"Paris","unit":"celsius"}"#;
    assert_eq!(
        render(text, &v),
        format!(
            "{args}|big=1e+06;days=3;location=Paris;unit=celsius;|{args}|{args}!|get_weather#0"
        )
    );
    let json = render(
        "{{ range .Messages }}{{ if .ToolCalls }}{{ json . }}{{ end }}{{ end }}",
        &v,
    );
    assert_eq!(
        json,
        format!(
            r#"{{"Role":"assistant","Content":"","Thinking":"","Images":null,"ToolCalls":[{{"ID":"","Function":{{"Index":0,"Name":"get_weather","Arguments":{args}}}}}],"ToolName":"","ToolCallID":""}}"#
        )
    );
    let go_struct = render(
        "{{ range .Messages }}{{ if .ToolCalls }}{{ .ToolCalls }}{{ end }}{{ end }}",
        &v,
    );
    assert_eq!(go_struct, format!("[{{ {{0 get_weather {args}}}}}]"));
}

#[test]
fn go_number_formats() {
    for (f, v, json) in [
        (1.0, "1", "1"),
        (2.5, "2.5", "2.5"),
        (100000.0, "100000", "100000"),
        (1e6, "1e+06", "1000000"),
        (1234567.0, "1.234567e+06", "1234567"),
        (1e21, "1e+21", "1e+21"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "1e-05", "0.00001"),
        (1e-7, "1e-07", "1e-7"),
        (-0.5, "-0.5", "-0.5"),
    ] {
        assert_eq!(goval::go_float(f), v, "%v of {f}");
        assert_eq!(goval::go_json_float(f).unwrap(), json, "json of {f}");
    }
    assert_eq!(goval::go_json_float(f64::NAN), None);
    let mut s = String::new();
    goval::go_json_string("a\"b\\c\n\t<&>\u{1}\u{2028}é", &mut s);
    assert_eq!(s, r#""a\"b\\c\n\t\u003c\u0026\u003e\u0001\u2028é""#);
}

// ---------------------------------------------------------------------------------------------
// Tags inferred from the tree

const QWEN3_LIKE: &str = r#"{{- if .Tools }}<|im_start|>system
<tools>{{ range .Tools }}{"type": "function", "function": {{ .Function }}}{{ end }}</tools><|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if and $last .Thinking }}
<think>{{ .Thinking }}</think>
{{ end }}
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"#;

#[test]
fn thinking_tags_are_inferred_around_thinking_in_messages() {
    let t = Template::parse(QWEN3_LIKE).unwrap();
    assert_eq!(
        t.thinking_tags(),
        Some(("<think>".to_string(), "</think>".to_string()))
    );
    // Around a .Thinking outside a range over .Messages: nothing.
    let outside = Template::parse("{{ if .Thinking }}<t>{{ .Thinking }}</t>{{ end }}").unwrap();
    assert_eq!(outside.thinking_tags(), None);
    // Text is trimmed.
    let trimmed = Template::parse(
        "{{ range .Messages }}{{ if .Thinking }}  [[ {{ .Thinking }} ]]\n{{ end }}{{ end }}",
    )
    .unwrap();
    assert_eq!(
        trimmed.thinking_tags(),
        Some(("[[".to_string(), "]]".to_string()))
    );
    assert_eq!(
        Template::parse("{{ .Prompt }}").unwrap().thinking_tags(),
        None
    );
}

#[test]
fn tool_call_tags_are_inferred_from_the_tool_calls_block() {
    let tag = |text: &str| Template::parse(text).unwrap().tool_call_tag();
    assert_eq!(tag(QWEN3_LIKE).as_deref(), Some("<tool_call>"));
    let mistral = "{{- range .Messages }}{{ if .ToolCalls }}[TOOL_CALLS] [{{ range .ToolCalls }}\
                   {\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}\
                   {{ end }}]</s>{{ end }}{{ end }}";
    assert_eq!(tag(mistral).as_deref(), Some("[TOOL_CALLS] ["));
    let llama32 = "{{- range .Messages }}{{- if .ToolCalls }}{{ range .ToolCalls }}\
                   {\"name\": \"{{ .Function.Name }}\", \"parameters\": {{ .Function.Arguments }}}\
                   {{ end }}{{ end }}{{ end }}";
    assert_eq!(tag(llama32).as_deref(), Some("{"));
    // The first text wins, even before a nested block; an action first means no tag.
    assert_eq!(
        tag("{{ if .ToolCalls }}First{{ if .X }}inner{{ end }}Second{{ end }}").as_deref(),
        Some("First")
    );
    assert_eq!(
        tag("{{ if .ToolCalls }}{{ .X }}<tc>{{ end }}").as_deref(),
        Some("{")
    );
    assert_eq!(
        tag("{{ if .ToolCalls }}\r\n Action: ```json\r\n{{ end }}").as_deref(),
        Some("Action: ```json")
    );
    assert_eq!(tag("{{ .Prompt }}"), None);
    assert_eq!(
        Template::parse("{{ .Prompt }}")
            .unwrap()
            .tool_call_tag_or_default(),
        "{"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn parse_errors_read_like_go() {
    let err = |text: &str| Template::parse(text).unwrap_err().to_string();
    let unclosed = err("Hello\n{{ .Prompt ");
    assert!(unclosed.starts_with("template: :2: "), "{unclosed}");
    assert!(unclosed.contains("unclosed action"), "{unclosed}");
    assert_eq!(
        err("{{ define \"x\" }}{{ template \"x\" }}{{ end }}{{ template \"x\" }}"),
        "undefined template specified"
    );
    assert_eq!(
        err("{{ nope .Prompt }}"),
        "template: :1: function \"nope\" not defined"
    );
    assert_eq!(
        err("a\n{{ $x }}"),
        "template: :2: undefined variable \"$x\""
    );
    assert_eq!(err("a{{ end }}b"), "template: :1: unexpected {{end}}");
    assert_eq!(err("{{ else }}"), "template: :1: unexpected {{else}}");
    assert_eq!(err("{{ if .X }}\nx\n"), "template: :3: unexpected EOF");
    assert_eq!(
        err("{{ if .X }}{{ break }}{{ end }}"),
        "template: :1: {{break}} outside {{range}}"
    );
    // Variables live until the end of the block that declares them.
    assert_eq!(
        err("{{ if .X }}{{ $y := 1 }}{{ end }}{{ $y }}"),
        "template: :1: undefined variable \"$y\""
    );
    assert!(Template::parse("{{ $x := 1 }}{{ if .X }}{{ $x = 2 }}{{ end }}{{ $x }}").is_ok());
    // The printing shims are not callable by name.
    assert!(Template::parse("{{ __ollamars_print 1 }}").is_err());
}

#[test]
fn execution_errors_are_reported() {
    let t = Template::parse("{{ range .Messages }}{{ index .Images 5 }}{{ end }}").unwrap();
    let e = t.render(&values(vec![user("x")])).unwrap_err();
    assert!(matches!(e, TemplateError::Exec(_)), "{e:?}");
    assert!(e.to_string().starts_with("template: executing: "), "{e}");
    let wrong = Template::parse("{{ range .Messages }}{{ currentDate 1 }}{{ end }}").unwrap();
    assert!(wrong.render(&values(vec![user("x")])).is_err());
}

// ---------------------------------------------------------------------------------------------
// Hostile templates: refused or stopped, never a crash

#[test]
fn deep_nesting_is_refused_at_parse_time() {
    let deep = "{{ if .X }}".repeat(5000) + &"{{ end }}".repeat(5000);
    assert!(matches!(
        Template::parse(&deep),
        Err(TemplateError::TooDeep { .. })
    ));
    // A long else-if chain nests as deeply in the parse tree.
    let chain = format!(
        "{{{{ if .A }}}}a{}{{{{ end }}}}",
        "{{ else if .B }}b".repeat(100_000)
    );
    assert!(matches!(
        Template::parse(&chain),
        Err(TemplateError::TooDeep { .. })
    ));
    let parens = format!("{{{{ {}.X{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Template::parse(&parens).is_err());
    // Nesting within the limit is fine.
    let ok = "{{ if .Prompt }}".repeat(50) + "x" + &"{{ end }}".repeat(50);
    assert_eq!(render(&ok, &values(vec![user("p")])), "x");
    // At the limit the template is refused or rendered, without exhausting the stack.
    let edge = "{{ if .Prompt }}".repeat(MAX_NESTING) + "x" + &"{{ end }}".repeat(MAX_NESTING);
    if let Ok(t) = Template::parse(&edge) {
        assert_eq!(t.render(&values(vec![user("p")])).unwrap(), "x");
    }
}

#[test]
fn runaway_execution_is_stopped() {
    let v = values(vec![user("x")]);
    let err = |text: &str| Template::parse(text).unwrap().render(&v).unwrap_err();
    // Output bounded.
    assert!(matches!(
        err("{{ range 100000000 }}{{ printf \"%*s\" 60000 \"\" }}{{ end }}"),
        TemplateError::OutputTooLarge { .. }
    ));
    // A string doubled in a variable is stopped once it passes the limit.
    assert!(matches!(
        err(
            "{{ $x := \"ab\" }}{{ range 100 }}{{ $x = printf \"%s%s\" $x $x }}{{ end }}{{ len $x }}"
        ),
        TemplateError::Exec(_)
    ));
    // Unbounded recursion through {{template}} ends with an error.
    assert!(matches!(
        err("{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}"),
        TemplateError::Exec(_)
    ));
    // Loops are bounded by an iteration budget.
    assert!(matches!(
        err("{{ range 20000 }}{{ range 20000 }}{{ end }}{{ end }}"),
        TemplateError::Exec(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// Wire shapes

#[test]
fn messages_read_and_write_ollamas_json() {
    let m: Message = serde_json::from_value(json!({
        "role": "Assistant", "content": null, "thinking": "hmm", "images": null,
        "tool_calls": [{"id": "c1", "function": {"index": 2, "name": "f",
            "arguments": {"z": 1, "a": [true, null]}}}],
        "unknown": 5
    }))
    .unwrap();
    assert_eq!(m.role, "assistant");
    assert_eq!(m.content, "");
    assert!(m.images.is_empty());
    let call = &m.tool_calls[0];
    assert_eq!((call.id.as_str(), call.function.index), ("c1", 2));
    // Argument order is kept on the wire.
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"role":"assistant","content":"","thinking":"hmm","tool_calls":[{"id":"c1","function":{"index":2,"name":"f","arguments":{"z":1,"a":[true,null]}}}]}"#
    );
    assert_eq!(
        serde_json::to_string(&Message::new("user", "hi")).unwrap(),
        r#"{"role":"user","content":"hi"}"#
    );
    assert!(serde_json::from_value::<Message>(json!({"role": "user", "content": 5})).is_err());
}

#[test]
fn tools_read_and_write_ollamas_json() {
    let tool = weather_tool();
    let props = tool.function.parameters.properties.as_ref().unwrap();
    let names: Vec<&str> = props.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["unit", "location"]);
    assert_eq!(
        props.get("location").unwrap().r#type,
        PropertyType(vec!["string".into(), "null".into()])
    );
    assert_eq!(props.get("unit").unwrap().r#type.to_string(), "string");
    assert_eq!(
        props.get("location").unwrap().r#type.to_string(),
        "[string null]"
    );
    assert_eq!(
        props.get("location").unwrap().to_typescript_type(),
        "string | null"
    );
    assert_eq!(
        serde_json::to_value(&tool).unwrap(),
        json!({"type": "function", "function": {"name": "get_weather",
            "description": "Weather <now> & later", "parameters": {"type": "object",
            "required": ["location"], "properties": {
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "location": {"type": ["string", "null"], "description": "City"}}}}})
    );
    // Unknown schema keywords are dropped, as Go's decoder drops them; a repeated name keeps
    // its place and takes the last value.
    let t: Tool = serde_json::from_str(
        r#"{"type":"function","function":{"name":"f","parameters":{"type":"object",
            "properties":{"a":{"type":"string","default":"x"},"b":{},"a":{"type":"integer"}}}}}"#,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&t.function.parameters).unwrap(),
        r#"{"type":"object","properties":{"a":{"type":"integer"},"b":{}}}"#
    );
    let bare: Tool =
        serde_json::from_str(r#"{"type":"function","function":{"name":"g"}}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&bare).unwrap(),
        r#"{"type":"function","function":{"name":"g","parameters":{"type":"","properties":null}}}"#
    );
}

#[test]
fn templates_are_shareable_between_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Template>();
    shareable::<Values>();
    shareable::<TemplateError>();
}
