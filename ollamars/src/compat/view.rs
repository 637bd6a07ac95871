//! The editable picture of one output file (its metadata and tensor table), and the edit
//! primitives the handlers are written in (spec §2.1). Every primitive that changes something
//! records one line in [`View::changes`], which `show -v` and the load log print.

use super::{CompatError, Data};
use crate::gguf::{Array, GgmlType, Gguf, TensorInfo, Value};

/// One tensor of the output.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Its name in the output.
    pub name: String,
    /// Its dims, innermost first.
    pub dims: Vec<u64>,
    /// Its element type in the output.
    pub ggml_type: GgmlType,
    /// Where its bytes come from.
    pub data: Data,
}

impl Tensor {
    /// `ne[i]`, or 1 past the last dim.
    pub fn ne(&self, i: usize) -> u64 {
        self.dims.get(i).copied().unwrap_or(1)
    }

    /// The byte size its dims and type call for.
    pub fn expected_len(&self) -> Option<u64> {
        let t = self.ggml_type;
        let n0 = *self.dims.first()?;
        if n0 % t.block_size() != 0 {
            return None;
        }
        let rows: u64 = self.dims.iter().skip(1).product();
        Some(n0 / t.block_size() * t.type_size() * rows)
    }
}

/// A file being translated: metadata, tensors, and the log of what changed.
#[derive(Debug, Clone)]
pub struct View {
    /// The architecture string as it stands (handlers test it in order).
    pub arch: String,
    kv: Vec<(String, Value)>,
    tensors: Vec<Tensor>,
    /// The source's tensors by original name (load ops always read original bytes).
    source: Vec<TensorInfo>,
    changes: Vec<String>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::F32(_) | Value::F64(_) => "float",
        Value::Bool(_) => "bool",
        _ => "integer",
    }
}

impl View {
    /// The view of `g` as it is.
    pub fn new(g: &Gguf) -> View {
        View {
            arch: g.architecture().unwrap_or_default().to_string(),
            kv: g.metadata().to_vec(),
            tensors: g
                .tensors()
                .iter()
                .map(|t| Tensor {
                    name: t.name.clone(),
                    dims: t.dims.clone(),
                    ggml_type: t.ggml_type,
                    data: Data::src(t.offset, t.size),
                })
                .collect(),
            source: g.tensors().to_vec(),
            changes: Vec::new(),
        }
    }

    /// What was changed, one line per edit, in order.
    pub fn changes(&self) -> &[String] {
        &self.changes
    }

    /// Records a change made outside the primitives.
    pub fn note(&mut self, line: impl Into<String>) {
        self.changes.push(line.into());
    }

    /// Whether anything was changed.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Whether the tensor table (names, shapes, types, bytes or count) differs from the source.
    pub fn tensors_changed(&self) -> bool {
        self.tensors.len() != self.source.len()
            || self.tensors.iter().zip(&self.source).any(|(t, s)| {
                t.name != s.name
                    || t.dims != s.dims
                    || t.ggml_type != s.ggml_type
                    || t.data != Data::src(s.offset, s.size)
            })
    }

    /// The metadata, in order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.kv
    }

    /// The output tensors, in order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// A key's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether a key exists.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A string key.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// An unsigned integer key (any integer width, non-negative).
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// A float key (f32 or f64).
    pub fn f32(&self, key: &str) -> Option<f32> {
        match self.get(key)? {
            Value::F32(v) => Some(*v),
            Value::F64(v) => Some(*v as f32),
            _ => None,
        }
    }

    /// An array key.
    pub fn array(&self, key: &str) -> Option<&Array> {
        match self.get(key)? {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// An integer array read as u64s (negative entries dropped), or `None`.
    pub fn u64s(&self, key: &str) -> Option<Vec<u64>> {
        Some(match self.array(key)? {
            Array::U8(v) => v.iter().map(|&x| x.into()).collect(),
            Array::U16(v) => v.iter().map(|&x| x.into()).collect(),
            Array::U32(v) => v.iter().map(|&x| x.into()).collect(),
            Array::U64(v) => v.clone(),
            Array::I8(v) => v.iter().filter_map(|&x| u64::try_from(x).ok()).collect(),
            Array::I16(v) => v.iter().filter_map(|&x| u64::try_from(x).ok()).collect(),
            Array::I32(v) => v.iter().filter_map(|&x| u64::try_from(x).ok()).collect(),
            Array::I64(v) => v.iter().filter_map(|&x| u64::try_from(x).ok()).collect(),
            _ => return None,
        })
    }

    /// Token `id` of `tokenizer.ggml.tokens`.
    pub fn token(&self, id: usize) -> Option<&str> {
        match self.array("tokenizer.ggml.tokens")? {
            Array::String(v) => v.get(id).map(String::as_str),
            _ => None,
        }
    }

    /// **set**: writes `key`, replacing any value.
    pub fn set(&mut self, key: &str, v: Value) {
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) if *old == v => {}
            Some((_, old)) => {
                self.changes
                    .push(format!("set {key} ({} replaced)", type_name(old)));
                *old = v;
            }
            None => {
                self.changes.push(format!("set {key}"));
                self.kv.push((key.to_string(), v));
            }
        }
    }

    /// **inject**: writes `key` only if it is absent.
    pub fn inject(&mut self, key: &str, v: Value) {
        if !self.has(key) {
            self.changes.push(format!("inject {key}"));
            self.kv.push((key.to_string(), v));
        }
    }

    /// Removes `key` if present.
    pub fn remove(&mut self, key: &str) {
        let before = self.kv.len();
        self.kv.retain(|(k, _)| k != key);
        if self.kv.len() != before {
            self.changes.push(format!("remove {key}"));
        }
    }

    /// **copy**: `to` gets `from`'s value if `from` exists and `to` does not.
    pub fn copy(&mut self, from: &str, to: &str) {
        if let (Some(v), false) = (self.get(from).cloned(), self.has(to)) {
            self.changes.push(format!("copy {from} -> {to}"));
            self.kv.push((to.to_string(), v));
        }
    }

    /// **prefix copy**: every key under `old` is copied to the same suffix under `new`; the
    /// old keys stay.
    pub fn copy_prefix(&mut self, old: &str, new: &str) {
        let keys: Vec<String> = self
            .kv
            .iter()
            .filter(|(k, _)| k.starts_with(old))
            .map(|(k, _)| k.clone())
            .collect();
        let mut n = 0;
        for k in keys {
            let to = format!("{new}{}", &k[old.len()..]);
            if !self.has(&to) {
                let v = self.get(&k).cloned().expect("key listed above");
                self.kv.push((to, v));
                n += 1;
            }
        }
        if n > 0 {
            self.changes.push(format!("copy {n} keys {old}* -> {new}*"));
        }
    }

    /// Keeps only the keys for which `keep` holds.
    pub fn retain_keys(&mut self, keep: impl Fn(&str) -> bool) {
        let before = self.kv.len();
        self.kv.retain(|(k, _)| keep(k));
        let n = before - self.kv.len();
        if n > 0 {
            self.changes.push(format!("drop {n} keys"));
        }
    }

    /// Switches the architecture string and `general.architecture`.
    pub fn set_arch(&mut self, arch: &str) {
        if self.arch != arch {
            self.changes
                .push(format!("architecture {} -> {arch}", self.arch));
            self.arch = arch.to_string();
        }
        let v = Value::String(arch.to_string());
        match self
            .kv
            .iter_mut()
            .find(|(k, _)| k == "general.architecture")
        {
            Some((_, old)) => *old = v,
            None => self.kv.push(("general.architecture".into(), v)),
        }
    }

    /// **truncate array**: shortens `key` to `n` elements when it is longer.
    pub fn truncate_array(&mut self, key: &str, n: usize) {
        let Some((_, Value::Array(a))) = self.kv.iter_mut().find(|(k, _)| k == key) else {
            return;
        };
        let len = a.len();
        if n >= len {
            return;
        }
        match a {
            Array::U8(v) => v.truncate(n),
            Array::I8(v) => v.truncate(n),
            Array::U16(v) => v.truncate(n),
            Array::I16(v) => v.truncate(n),
            Array::U32(v) => v.truncate(n),
            Array::I32(v) => v.truncate(n),
            Array::F32(v) => v.truncate(n),
            Array::Bool(v) => v.truncate(n),
            Array::String(v) => v.truncate(n),
            Array::Array(v) => v.truncate(n),
            Array::U64(v) => v.truncate(n),
            Array::I64(v) => v.truncate(n),
            Array::F64(v) => v.truncate(n),
        }
        self.changes.push(format!("truncate {key} {len} -> {n}"));
    }

    /// An output tensor by its current name.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// An output tensor by its current name, mutable.
    pub fn tensor_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        self.tensors.iter_mut().find(|t| t.name == name)
    }

    /// A source tensor by its original name.
    pub fn source(&self, name: &str) -> Option<&TensorInfo> {
        self.source.iter().find(|t| t.name == name)
    }

    /// The source's tensors.
    pub fn sources(&self) -> &[TensorInfo] {
        &self.source
    }

    /// Whether any output tensor's name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.tensors.iter().any(|t| t.name.starts_with(prefix))
    }

    /// Whether any output tensor's name ends with `suffix`.
    pub fn has_suffix(&self, suffix: &str) -> bool {
        self.tensors.iter().any(|t| t.name.ends_with(suffix))
    }

    /// **exact rename**; a no-op when `from` is absent.
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(t) = self.tensors.iter_mut().find(|t| t.name == from) {
            t.name = to.to_string();
            self.changes.push(format!("rename {from} -> {to}"));
        }
    }

    /// **substring rename**: the first occurrence of `needle` in every matching name becomes
    /// `with`.
    pub fn rename_substr(&mut self, needle: &str, with: &str) {
        let mut n = 0;
        for t in &mut self.tensors {
            if let Some(at) = t.name.find(needle) {
                t.name.replace_range(at..at + needle.len(), with);
                n += 1;
            }
        }
        if n > 0 {
            self.changes
                .push(format!("rename {n} tensors *{needle}* -> *{with}*"));
        }
    }

    /// Renames every tensor whose name ends with `old` to end with `new` instead.
    pub fn rename_suffix(&mut self, old: &str, new: &str) {
        let mut n = 0;
        for t in &mut self.tensors {
            if let Some(stem) = t.name.strip_suffix(old) {
                t.name = format!("{stem}{new}");
                n += 1;
            }
        }
        if n > 0 {
            self.changes
                .push(format!("rename {n} tensors *{old} -> *{new}"));
        }
    }

    /// **hide by prefix**: drops every tensor whose name starts with `prefix`.
    pub fn hide_prefix(&mut self, prefix: &str) {
        let before = self.tensors.len();
        self.tensors.retain(|t| !t.name.starts_with(prefix));
        let n = before - self.tensors.len();
        if n > 0 {
            self.changes.push(format!("hide {n} tensors {prefix}*"));
        }
    }

    /// Keeps only the tensors for which `keep` holds (the clip side keeps `v.`, `mm.`, `a.`).
    pub fn retain(&mut self, what: &str, keep: impl Fn(&Tensor) -> bool) {
        let before = self.tensors.len();
        self.tensors.retain(|t| keep(t));
        let n = before - self.tensors.len();
        if n > 0 {
            self.changes.push(format!("drop {n} tensors ({what})"));
        }
    }

    /// Appends a new tensor.
    pub fn add_tensor(&mut self, t: Tensor) {
        self.changes.push(format!(
            "add tensor {} {:?} {}",
            t.name,
            t.dims,
            t.ggml_type.name()
        ));
        self.tensors.push(t);
    }

    /// **promote F16→F32**, only when the tensor is F16 now.
    pub fn promote_f32(&mut self, name: &str) {
        let Some(t) = self.tensors.iter_mut().find(|t| t.name == name) else {
            return;
        };
        if t.ggml_type != GgmlType::F16 {
            return;
        }
        t.ggml_type = GgmlType::F32;
        t.data = Data::ToF32 {
            from: GgmlType::F16,
            data: Box::new(std::mem::replace(&mut t.data, Data::Zeros { len: 0 })),
        };
        self.changes.push(format!("promote {name} F16 -> F32"));
    }

    /// Replaces a tensor's shape, type and data (a reshape, a merge, a dequantization).
    pub fn rewrite(
        &mut self,
        name: &str,
        dims: Vec<u64>,
        ggml_type: GgmlType,
        data: Data,
        why: &str,
    ) {
        if let Some(t) = self.tensors.iter_mut().find(|t| t.name == name) {
            t.dims = dims;
            t.ggml_type = ggml_type;
            t.data = data;
            self.changes.push(format!("{why}: {name}"));
        }
    }

    /// Checks that every output tensor's bytes match its dims and type and that names are
    /// unique: a blob that claims a layout but does not have its shapes fails here, with
    /// the reason.
    pub fn verify(&self) -> Result<(), CompatError> {
        let mut seen = std::collections::HashSet::new();
        for t in &self.tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(CompatError::Layout {
                    tensor: t.name.clone(),
                    reason: "two tensors would have this name".into(),
                });
            }
            t.data.check(&t.name)?;
            let want = t.expected_len().ok_or_else(|| CompatError::Layout {
                tensor: t.name.clone(),
                reason: format!("dims {:?} do not fit type {}", t.dims, t.ggml_type.name()),
            })?;
            if t.data.len() != want {
                return Err(CompatError::Layout {
                    tensor: t.name.clone(),
                    reason: format!(
                        "{} bytes where {:?} {} needs {want}",
                        t.data.len(),
                        t.dims,
                        t.ggml_type.name()
                    ),
                });
            }
        }
        Ok(())
    }

    /// An error for a tensor that does not have the shape or type a handler needs.
    pub fn mismatch(tensor: &str, reason: impl Into<String>) -> CompatError {
        CompatError::Layout {
            tensor: tensor.to_string(),
            reason: reason.into(),
        }
    }
}
