//! Unit tests of the template module.

use super::*;
use serde_json::json;

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
