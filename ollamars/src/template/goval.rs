//! The data Ollama hands to its templates, as `gotmpl` values, and Go's way of printing them.
//!
//! Go prints values through `fmt` (calling `String()` methods) and marshals them with
//! `encoding/json`; gotmpl has no methods, so maps print as `map[k:v]`. Every map or list built
//! here that stands for one of Ollama's typed values is recorded in a [`GoTypes`] table, keyed by
//! the address of its shared allocation. gotmpl passes maps and lists around by cloning the `Arc`,
//! so the address survives field access, `index`, `range` and variables. The printing functions
//! look values up in the table and print them as Go would.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use gotmpl::Value as GValue;
use serde_json::Value;

use super::types::{Message, Tool, ToolProperties, ToolProperty, typescript_union};

/// Which Go type a recorded map or list stands for.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `templateTools`: `String()` is its JSON.
    Tools,
    /// `templateTool`: `String()` is its JSON.
    Tool,
    /// `templateToolFunction`: printed as JSON (the fix for ollama#14601).
    Function,
    /// `templateToolFunctionParameters`: printed as JSON (the fix for ollama#14601).
    Parameters,
    /// `templateProperties`, a Go map; `nil` when the tool gave no properties.
    Properties { nil: bool },
    /// A property's nested `*ToolPropertiesMap`: JSON keeps the received order.
    NestedProperties { order: Vec<Arc<str>> },
    /// `api.ToolProperty`, a struct.
    Property,
    /// `api.PropertyType`.
    PropertyType,
    /// `templateArgs`, a Go map whose `String()` is its JSON.
    Arguments,
    /// `[]*templateMessage`.
    Messages,
    /// `templateMessage`, a struct without JSON tags.
    Message,
    /// `[]templateToolCall`.
    ToolCalls,
    /// `templateToolCall`.
    ToolCall,
    /// `templateToolCallFunction`.
    CallFunction,
    /// `[]api.ImageData`.
    Images,
}

/// The table of typed values of one render.
#[derive(Debug, Default)]
pub(crate) struct GoTypes {
    kinds: HashMap<usize, Kind>,
}

/// The address identifying a map value.
fn map_addr(m: &Arc<BTreeMap<Arc<str>, GValue>>) -> usize {
    Arc::as_ptr(m) as usize
}

/// The address identifying a list value.
fn list_addr(l: &Arc<[GValue]>) -> usize {
    Arc::as_ptr(l) as *const GValue as usize
}

impl GoTypes {
    /// The Go type recorded for `v`, if any.
    fn kind(&self, v: &GValue) -> Option<&Kind> {
        match v {
            GValue::Map(m) => self.kinds.get(&map_addr(m)),
            GValue::List(l) => self.kinds.get(&list_addr(l)),
            _ => None,
        }
    }

    /// Builds a map (a Go struct or map) and records its type.
    fn map(&mut self, kind: Option<Kind>, entries: Vec<(&str, GValue)>) -> GValue {
        let map: BTreeMap<Arc<str>, GValue> = entries
            .into_iter()
            .map(|(k, v)| (Arc::from(k), v))
            .collect();
        let map = Arc::new(map);
        if let Some(kind) = kind {
            self.kinds.insert(map_addr(&map), kind);
        }
        GValue::Map(map)
    }

    /// Builds a list and records its type.
    fn list(&mut self, kind: Option<Kind>, items: Vec<GValue>) -> GValue {
        let list: Arc<[GValue]> = Arc::from(items);
        if let Some(kind) = kind {
            self.kinds.insert(list_addr(&list), kind);
        }
        GValue::List(list)
    }

    /// The top-level data: a Go `map[string]any`.
    pub(crate) fn root(&mut self, entries: Vec<(&str, GValue)>) -> GValue {
        self.map(None, entries)
    }

    /// `convertMessagesForTemplate`.
    pub(crate) fn messages(&mut self, messages: &[Message]) -> GValue {
        let items = messages.iter().map(|m| self.message(m)).collect();
        self.list(Some(Kind::Messages), items)
    }

    fn message(&mut self, m: &Message) -> GValue {
        let images = m.images.iter().map(|i| string(i)).collect();
        let images = self.list(Some(Kind::Images), images);
        let calls = m
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = c
                    .function
                    .arguments
                    .iter()
                    .map(|(k, v)| (k.as_str(), json_value(v)))
                    .collect();
                let arguments = self.map(Some(Kind::Arguments), arguments);
                let index = i64::try_from(c.function.index).unwrap_or(i64::MAX);
                let function = self.map(
                    Some(Kind::CallFunction),
                    vec![
                        ("Index", GValue::Int(index)),
                        ("Name", string(&c.function.name)),
                        ("Arguments", arguments),
                    ],
                );
                self.map(
                    Some(Kind::ToolCall),
                    vec![("ID", string(&c.id)), ("Function", function)],
                )
            })
            .collect();
        let calls = self.list(Some(Kind::ToolCalls), calls);
        self.map(
            Some(Kind::Message),
            vec![
                ("Role", string(&m.role)),
                ("Content", string(&m.content)),
                ("Thinking", string(&m.thinking)),
                ("Images", images),
                ("ToolCalls", calls),
                ("ToolName", string(&m.tool_name)),
                ("ToolCallID", string(&m.tool_call_id)),
            ],
        )
    }

    /// `convertToolsForTemplate`.
    pub(crate) fn tools(&mut self, tools: &[Tool]) -> GValue {
        let items = tools.iter().map(|t| self.tool(t)).collect();
        self.list(Some(Kind::Tools), items)
    }

    fn tool(&mut self, t: &Tool) -> GValue {
        let p = &t.function.parameters;
        let properties = match &p.properties {
            Some(props) => {
                let entries = props
                    .iter()
                    .map(|(name, prop)| (name, self.property(prop)))
                    .collect();
                self.map(Some(Kind::Properties { nil: false }), entries)
            }
            None => self.map(Some(Kind::Properties { nil: true }), Vec::new()),
        };
        let required = p.required.iter().map(|r| string(r)).collect();
        let required = self.list(None, required);
        let parameters = self.map(
            Some(Kind::Parameters),
            vec![
                ("Type", string(&p.r#type)),
                ("Defs", opt_json(&p.defs)),
                ("Items", opt_json(&p.items)),
                ("Required", required),
                ("Properties", properties),
            ],
        );
        let function = self.map(
            Some(Kind::Function),
            vec![
                ("Name", string(&t.function.name)),
                ("Description", string(&t.function.description)),
                ("Parameters", parameters),
            ],
        );
        self.map(
            Some(Kind::Tool),
            vec![
                ("Type", string(&t.r#type)),
                ("Items", opt_json(&t.items)),
                ("Function", function),
            ],
        )
    }

    fn property(&mut self, p: &ToolProperty) -> GValue {
        let any_of = p.any_of.iter().map(|a| self.property(a)).collect();
        let any_of = self.list(None, any_of);
        let types = p.r#type.0.iter().map(|t| string(t)).collect();
        let types = self.list(Some(Kind::PropertyType), types);
        let values = p.r#enum.iter().map(json_value).collect();
        let values = self.list(None, values);
        let nested = match &p.properties {
            Some(props) => self.nested_properties(props),
            None => GValue::Nil,
        };
        let required = p.required.iter().map(|r| string(r)).collect();
        let required = self.list(None, required);
        self.map(
            Some(Kind::Property),
            vec![
                ("AnyOf", any_of),
                ("Type", types),
                ("Items", opt_json(&p.items)),
                ("Description", string(&p.description)),
                ("Enum", values),
                ("Properties", nested),
                ("Required", required),
            ],
        )
    }

    fn nested_properties(&mut self, props: &ToolProperties) -> GValue {
        let order = props.iter().map(|(name, _)| Arc::from(name)).collect();
        let entries = props
            .iter()
            .map(|(name, prop)| (name, self.property(prop)))
            .collect();
        self.map(Some(Kind::NestedProperties { order }), entries)
    }

    /// What a printing action shows for `v`: Go's `fmt.Print`. Strings, numbers other than
    /// floats, booleans and missing values are left to gotmpl, which prints them as Go does.
    pub(crate) fn printable(&self, v: &GValue) -> GValue {
        match v {
            GValue::Nil
            | GValue::Bool(_)
            | GValue::Int(_)
            | GValue::Uint(_)
            | GValue::String(_)
            | GValue::Function(_) => v.clone(),
            _ => {
                let mut out = String::new();
                self.write_v(v, &mut out);
                GValue::String(Arc::from(out))
            }
        }
    }

    /// An argument of `print`, `printf` and the like: typed values with a `String()` method
    /// become that string; everything else is passed on unchanged.
    pub(crate) fn stringer_arg(&self, v: &GValue) -> GValue {
        match self.kind(v) {
            Some(
                Kind::Tools
                | Kind::Tool
                | Kind::Function
                | Kind::Parameters
                | Kind::Properties { .. }
                | Kind::NestedProperties { .. }
                | Kind::PropertyType
                | Kind::Arguments,
            ) => {
                let mut out = String::new();
                self.write_v(v, &mut out);
                GValue::String(Arc::from(out))
            }
            _ => v.clone(),
        }
    }

    /// `toTypeScriptType`: a tool property as a TypeScript type, anything else as `any`.
    pub(crate) fn typescript_type(&self, v: &GValue) -> String {
        if !matches!(self.kind(v), Some(Kind::Property)) {
            return "any".to_string();
        }
        let any_of = list_items(field(v, "AnyOf"));
        if !any_of.is_empty() {
            return any_of
                .iter()
                .map(|a| self.typescript_type(a))
                .collect::<Vec<_>>()
                .join(" | ");
        }
        let types = list_items(field(v, "Type"));
        typescript_union(types.iter().filter_map(GValue::as_str))
    }

    /// Go's `%v` of `v`, with `String()` methods of Ollama's types.
    fn write_v(&self, v: &GValue, out: &mut String) {
        match self.kind(v) {
            Some(
                Kind::Tools
                | Kind::Tool
                | Kind::Function
                | Kind::Parameters
                | Kind::NestedProperties { .. },
            ) => self.write_json(v, out),
            Some(Kind::Properties { nil: true }) => out.push_str("{}"),
            Some(Kind::Properties { nil: false } | Kind::Arguments) => {
                if is_empty_map(v) {
                    out.push_str("{}");
                } else {
                    self.write_json(v, out);
                }
            }
            Some(Kind::PropertyType) => {
                let names = list_items(v);
                match names {
                    [] => {}
                    [one] => self.write_v(one, out),
                    many => self.write_list(many, out),
                }
            }
            Some(Kind::Property) => self.write_struct(
                v,
                &[
                    "AnyOf",
                    "Type",
                    "Items",
                    "Description",
                    "Enum",
                    "Properties",
                    "Required",
                ],
                out,
            ),
            Some(Kind::Message) => self.write_struct(
                v,
                &[
                    "Role",
                    "Content",
                    "Thinking",
                    "Images",
                    "ToolCalls",
                    "ToolName",
                    "ToolCallID",
                ],
                out,
            ),
            Some(Kind::ToolCall) => self.write_struct(v, &["ID", "Function"], out),
            Some(Kind::CallFunction) => self.write_struct(v, &["Index", "Name", "Arguments"], out),
            Some(Kind::Messages | Kind::ToolCalls | Kind::Images) | None => match v {
                GValue::Nil => out.push_str("<nil>"),
                GValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                GValue::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                GValue::Uint(n) => {
                    let _ = write!(out, "{n}");
                }
                GValue::Float(f) => out.push_str(&go_float(*f)),
                GValue::String(s) => out.push_str(s),
                GValue::List(items) => self.write_list(items, out),
                GValue::Map(m) => {
                    out.push_str("map[");
                    for (i, (k, item)) in m.iter().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        out.push_str(k);
                        out.push(':');
                        self.write_v(item, out);
                    }
                    out.push(']');
                }
                other => {
                    let _ = write!(out, "{other}");
                }
            },
        }
    }

    fn write_list(&self, items: &[GValue], out: &mut String) {
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            self.write_v(item, out);
        }
        out.push(']');
    }

    /// Go's `%v` of a struct: `{field field …}`.
    fn write_struct(&self, v: &GValue, fields: &[&str], out: &mut String) {
        out.push('{');
        for (i, name) in fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            self.write_v(field(v, name), out);
        }
        out.push('}');
    }

    /// Go's `json.Marshal` of `v`; `None` where Go fails (NaN, infinities, functions).
    pub(crate) fn json(&self, v: &GValue) -> Option<String> {
        let mut out = String::new();
        self.try_write_json(v, &mut out).then_some(out)
    }

    /// Writes JSON for values known to marshal (Ollama's typed values).
    fn write_json(&self, v: &GValue, out: &mut String) {
        let mut json = String::new();
        if self.try_write_json(v, &mut json) {
            out.push_str(&json);
        }
    }

    fn try_write_json(&self, v: &GValue, out: &mut String) -> bool {
        match self.kind(v) {
            Some(Kind::Tools | Kind::Messages | Kind::ToolCalls | Kind::Images) => {
                let items = list_items(v);
                if items.is_empty() {
                    out.push_str("null");
                    return true;
                }
                self.try_write_json_list(items, out)
            }
            Some(Kind::Tool) => {
                let mut obj = JsonObject::new(out);
                obj.field(self, "type", field(v, "Type"))
                    && obj.field_unless_nil(self, "items", field(v, "Items"))
                    && obj.field(self, "function", field(v, "Function"))
                    && obj.end()
            }
            Some(Kind::Function) => {
                let mut obj = JsonObject::new(out);
                obj.field(self, "name", field(v, "Name"))
                    && obj.field(self, "description", field(v, "Description"))
                    && obj.field(self, "parameters", field(v, "Parameters"))
                    && obj.end()
            }
            Some(Kind::Parameters) => {
                let mut obj = JsonObject::new(out);
                obj.field(self, "type", field(v, "Type"))
                    && obj.field_unless_nil(self, "$defs", field(v, "Defs"))
                    && obj.field_unless_nil(self, "items", field(v, "Items"))
                    && obj.field_unless_empty(self, "required", field(v, "Required"))
                    && obj.field(self, "properties", field(v, "Properties"))
                    && obj.end()
            }
            Some(Kind::Properties { nil: true }) => {
                out.push_str("null");
                true
            }
            Some(Kind::NestedProperties { order }) => {
                let mut obj = JsonObject::new(out);
                order
                    .iter()
                    .all(|name| obj.field(self, name, field(v, name)))
                    && obj.end()
            }
            Some(Kind::Property) => {
                let mut obj = JsonObject::new(out);
                obj.field_unless_empty(self, "anyOf", field(v, "AnyOf"))
                    && obj.field_unless_empty(self, "type", field(v, "Type"))
                    && obj.field_unless_nil(self, "items", field(v, "Items"))
                    && obj.field_unless_empty(self, "description", field(v, "Description"))
                    && obj.field_unless_empty(self, "enum", field(v, "Enum"))
                    && obj.field_unless_nil(self, "properties", field(v, "Properties"))
                    && obj.field_unless_empty(self, "required", field(v, "Required"))
                    && obj.end()
            }
            Some(Kind::PropertyType) => match list_items(v) {
                [] => {
                    out.push_str("null");
                    true
                }
                [one] => self.try_write_json(one, out),
                many => self.try_write_json_list(many, out),
            },
            Some(Kind::Message) => {
                let mut obj = JsonObject::new(out);
                [
                    "Role",
                    "Content",
                    "Thinking",
                    "Images",
                    "ToolCalls",
                    "ToolName",
                    "ToolCallID",
                ]
                .iter()
                .all(|name| obj.field(self, name, field(v, name)))
                    && obj.end()
            }
            Some(Kind::ToolCall) => {
                let mut obj = JsonObject::new(out);
                obj.field(self, "ID", field(v, "ID"))
                    && obj.field(self, "Function", field(v, "Function"))
                    && obj.end()
            }
            Some(Kind::CallFunction) => {
                let mut obj = JsonObject::new(out);
                obj.field(self, "Index", field(v, "Index"))
                    && obj.field(self, "Name", field(v, "Name"))
                    && obj.field(self, "Arguments", field(v, "Arguments"))
                    && obj.end()
            }
            Some(Kind::Properties { nil: false } | Kind::Arguments) | None => match v {
                GValue::Nil => {
                    out.push_str("null");
                    true
                }
                GValue::Bool(b) => {
                    out.push_str(if *b { "true" } else { "false" });
                    true
                }
                GValue::Int(n) => {
                    let _ = write!(out, "{n}");
                    true
                }
                GValue::Uint(n) => {
                    let _ = write!(out, "{n}");
                    true
                }
                GValue::Float(f) => match go_json_float(*f) {
                    Some(s) => {
                        out.push_str(&s);
                        true
                    }
                    None => false,
                },
                GValue::String(s) => {
                    go_json_string(s, out);
                    true
                }
                GValue::List(items) => self.try_write_json_list(items, out),
                GValue::Map(m) => {
                    let mut obj = JsonObject::new(out);
                    m.iter().all(|(k, item)| obj.field(self, k, item)) && obj.end()
                }
                _ => false,
            },
        }
    }

    fn try_write_json_list(&self, items: &[GValue], out: &mut String) -> bool {
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if !self.try_write_json(item, out) {
                return false;
            }
        }
        out.push(']');
        true
    }
}

/// Writes a JSON object field by field.
struct JsonObject<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        JsonObject { out, first: true }
    }

    fn field(&mut self, types: &GoTypes, name: &str, v: &GValue) -> bool {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        go_json_string(name, self.out);
        self.out.push(':');
        types.try_write_json(v, self.out)
    }

    /// A field tagged `omitempty` whose Go type is an interface or a pointer.
    fn field_unless_nil(&mut self, types: &GoTypes, name: &str, v: &GValue) -> bool {
        matches!(v, GValue::Nil) || self.field(types, name, v)
    }

    /// A field tagged `omitempty` whose Go type is a string or a slice.
    fn field_unless_empty(&mut self, types: &GoTypes, name: &str, v: &GValue) -> bool {
        let empty = match v {
            GValue::Nil => true,
            GValue::String(s) => s.is_empty(),
            GValue::List(l) => l.is_empty(),
            _ => false,
        };
        empty || self.field(types, name, v)
    }

    fn end(self) -> bool {
        self.out.push('}');
        true
    }
}

/// A missing field reads as nil.
static NIL: GValue = GValue::Nil;

/// The field `name` of a map value (nil when absent).
fn field<'a>(v: &'a GValue, name: &str) -> &'a GValue {
    v.field(name).unwrap_or(&NIL)
}

/// The items of a list value (none for other values).
fn list_items(v: &GValue) -> &[GValue] {
    match v {
        GValue::List(items) => items,
        _ => &[],
    }
}

fn is_empty_map(v: &GValue) -> bool {
    matches!(v, GValue::Map(m) if m.is_empty())
}

/// A Go string value.
pub(crate) fn string(s: &str) -> GValue {
    GValue::String(Arc::from(s))
}

/// An optional JSON value held in a Go `any` (nil when absent).
fn opt_json(v: &Option<Value>) -> GValue {
    v.as_ref().map_or(GValue::Nil, json_value)
}

/// A JSON value as Go's `json.Unmarshal` into `any` makes it: numbers are `float64`, objects are
/// `map[string]any` (ranged and marshalled in sorted key order).
pub(crate) fn json_value(v: &Value) -> GValue {
    match v {
        Value::Null => GValue::Nil,
        Value::Bool(b) => GValue::Bool(*b),
        Value::Number(n) => GValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => string(s),
        Value::Array(items) => GValue::List(items.iter().map(json_value).collect()),
        Value::Object(map) => GValue::Map(Arc::new(
            map.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), json_value(v)))
                .collect(),
        )),
    }
}

/// Splits Rust's shortest `{:e}` form of a finite float into its digits and decimal exponent.
fn mantissa_exponent(f: f64) -> (String, i32) {
    let e = format!("{f:e}");
    match e.split_once('e') {
        Some((mantissa, exp)) => (mantissa.to_string(), exp.parse().unwrap_or(0)),
        None => (e, 0),
    }
}

/// Go's `%v` of a `float64` (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits that
/// round-trip, in exponent form (`1e+06`) when the decimal exponent is below -4 or at least 6
/// (for the shortest form, `%g` decides with precision 6).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let (mantissa, exp) = mantissa_exponent(f);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{f}")
    }
}

/// Go's `encoding/json` form of a `float64`; `None` for NaN and infinities, which Go refuses.
pub(crate) fn go_json_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mantissa, exp) = mantissa_exponent(f);
        let sign = if exp < 0 { '-' } else { '+' };
        Some(format!("{mantissa}e{sign}{}", exp.unsigned_abs()))
    } else {
        Some(format!("{f}"))
    }
}

/// Go's `encoding/json` string, with its default HTML escaping (`<`, `>`, `&` as `\u003c`…) and
/// U+2028 / U+2029 escaped.
pub(crate) fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if let Some(e) = crate::format::c_escape(c) {
            out.push_str(e);
            continue;
        }
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
