//! `ollamars show`.

use serde_json::Value;

use super::CliError;
use crate::api::{ShowRequest, ShowResponse};
use crate::client::Client;

/// Which single field to print instead of the overview.
#[derive(Debug, Clone, Copy, Default)]
pub struct Which {
    pub license: bool,
    pub modelfile: bool,
    pub parameters: bool,
    pub template: bool,
    pub system: bool,
}

pub async fn run(
    client: &Client,
    model: &str,
    which: Which,
    verbose: bool,
) -> Result<(), CliError> {
    let req = ShowRequest {
        verbose,
        ..ShowRequest::new(model)
    };
    let info = client.show(&req).await?;
    let field = if which.license {
        Some(("license", &info.license))
    } else if which.modelfile {
        Some(("modelfile", &info.modelfile))
    } else if which.parameters {
        Some(("parameters", &info.parameters))
    } else if which.template {
        Some(("template", &info.template))
    } else if which.system {
        Some(("system", &info.system))
    } else {
        None
    };
    if let Some((f, text)) = field {
        if text.is_empty() && f != "modelfile" {
            println!("No {f} was specified for this model.");
        } else {
            println!("{text}");
        }
        return Ok(());
    }
    print!("{}", overview(&info, verbose));
    Ok(())
}

/// The default `show` view: sections of two-column rows.
pub fn overview(info: &ShowResponse, verbose: bool) -> String {
    let mut out = String::new();
    let details = &info.details;
    let mi = &info.model_info;
    let arch = mi
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or(&details.family);
    let mut model_rows: Vec<(String, String)> = vec![("architecture".into(), arch.to_string())];
    model_rows.push(("parameters".into(), details.parameter_size.clone()));
    for (label, key) in [
        ("context length", "context_length"),
        ("embedding length", "embedding_length"),
    ] {
        if let Some(v) = mi.get(&format!("{arch}.{key}")) {
            model_rows.push((label.into(), v.to_string()));
        }
    }
    model_rows.push(("quantization".into(), details.quantization_level.clone()));
    if let Some(r) = &info.requires {
        model_rows.push(("requires".into(), r.clone()));
    }
    section(&mut out, "Model", &model_rows);

    let caps: Vec<(String, String)> = info
        .capabilities
        .iter()
        .map(|c| (c.clone(), String::new()))
        .collect();
    if !caps.is_empty() {
        section(&mut out, "Capabilities", &caps);
    }
    if let Some(pi) = info.projector_info.as_ref().filter(|p| !p.is_empty()) {
        section(&mut out, "Projector", &projector_rows(pi));
    }
    if let Some(c) = &info.compat {
        section(&mut out, "Compatibility", &compat_rows(c, verbose));
    }
    let params: Vec<(String, String)> = info
        .parameters
        .lines()
        .filter_map(|l| {
            l.split_once(char::is_whitespace)
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        })
        .collect();
    if !params.is_empty() {
        section(&mut out, "Parameters", &params);
    }
    for (title, text) in [("System", &info.system), ("License", &info.license)] {
        if !text.is_empty() {
            let mut lines: Vec<(String, String)> = text
                .lines()
                .map(|l| (l.to_string(), String::new()))
                .collect();
            if !verbose && lines.len() > 2 {
                lines.truncate(2);
                lines.push(("...".into(), String::new()));
            }
            section(&mut out, title, &lines);
        }
    }
    if verbose {
        let rows: Vec<(String, String)> =
            mi.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        section(&mut out, "Metadata", &rows);
    }
    out
}

/// Ollama's Projector table: architecture, parameters, embedding length, dimensions (of the
/// vision encoder, else the audio encoder).
fn projector_rows(pi: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let arch = pi
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("clip");
    let mut rows = vec![("architecture".to_string(), arch.to_string())];
    if let Some(n) = pi.get("general.parameter_count").and_then(Value::as_u64) {
        rows.push(("parameters".into(), crate::gguf::human_number(n)));
    }
    let modality = if pi.contains_key(&format!("{arch}.vision.embedding_length")) {
        "vision"
    } else {
        "audio"
    };
    for (label, key) in [
        ("embedding length", "embedding_length"),
        ("dimensions", "projection_dim"),
    ] {
        if let Some(v) = pi.get(&format!("{arch}.{modality}.{key}")) {
            rows.push((label.into(), v.to_string()));
        }
    }
    rows
}

fn section(out: &mut String, title: &str, rows: &[(String, String)]) {
    out.push_str(&format!("  {title}\n"));
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        let line = if v.is_empty() {
            format!("    {k}")
        } else {
            format!("    {k:<width$}    {v}")
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
}

/// ollamars's `Compatibility` section: which Ollama-layout translation the model gets and, with
/// `-v`, every edit and the derived files once they exist.
fn compat_rows(c: &serde_json::Map<String, Value>, verbose: bool) -> Vec<(String, String)> {
    let text = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut rows = vec![("translation".to_string(), text("summary"))];
    if !verbose {
        return rows;
    }
    for (label, key) in [("text", "text_changes"), ("projector", "projector_changes")] {
        for change in c.get(key).and_then(Value::as_array).into_iter().flatten() {
            rows.push((
                label.to_string(),
                change.as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    if let Some(d) = c.get("derived") {
        for key in ["text", "projector"] {
            if let (Some(file), Some(size)) = (d[key]["file"].as_str(), d[key]["size"].as_u64()) {
                rows.push((format!("derived {key}"), format!("{file} ({size} bytes)")));
            }
        }
    }
    rows
}
