//! `ollamars ps` and `ollamars stop`.

use super::{CliError, table};
use crate::api::{GenerateRequest, KeepAlive, PsResponse, RunParams};
use crate::client::{Client, ClientError};
use crate::format::{human_bytes, human_time};

/// Where a loaded model sits, from its size and the part of it in GPU memory.
pub(crate) fn processor(size: u64, size_vram: u64) -> String {
    if size_vram == 0 {
        "100% CPU".into()
    } else if size_vram == size {
        "100% GPU".into()
    } else if size_vram > size || size == 0 {
        "Unknown".into()
    } else {
        let cpu = ((size - size_vram) as f64 / size as f64 * 100.0).round() as u64;
        format!("{cpu}%/{}% CPU/GPU", 100 - cpu)
    }
}

/// When a loaded model will be unloaded: "Stopping..." once due, "Forever" far ahead,
/// otherwise e.g. "4 minutes from now".
pub(crate) fn until(expires_at: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    match chrono::DateTime::parse_from_rfc3339(expires_at) {
        Ok(t) => {
            let t = t.with_timezone(&chrono::Utc);
            if t < now {
                "Stopping...".into()
            } else {
                human_time(t, now)
            }
        }
        Err(_) => String::new(),
    }
}

/// The `ps` table: a header row, then one row per loaded model whose name starts with
/// `prefix`.
pub(crate) fn rows(
    resp: &PsResponse,
    prefix: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Vec<String>> {
    let mut rows = vec![
        ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
            .map(String::from)
            .to_vec(),
    ];
    for m in &resp.models {
        if prefix.is_some_and(|p| !m.name.starts_with(p)) {
            continue;
        }
        rows.push(vec![
            m.name.clone(),
            m.digest.chars().take(12).collect(),
            human_bytes(m.size),
            processor(m.size, m.size_vram),
            m.context_length.to_string(),
            until(&m.expires_at, now),
        ]);
    }
    rows
}

/// `ollamars ps [PREFIX]`.
pub(crate) async fn ps(client: &Client, prefix: Option<&str>) -> Result<(), CliError> {
    let resp = client.ps().await?;
    print!("{}", table(&rows(&resp, prefix, chrono::Utc::now())));
    Ok(())
}

/// Asks the server to unload `model` now (generate, no prompt, `keep_alive` 0).
pub(crate) async fn unload(client: &Client, model: &str) -> Result<(), ClientError> {
    let req = GenerateRequest {
        run: RunParams {
            model: model.to_string(),
            keep_alive: Some(KeepAlive::For(std::time::Duration::ZERO)),
            ..RunParams::default()
        },
        ..GenerateRequest::default()
    };
    client.generate(&req, |_| {}).await
}

/// `ollamars stop MODEL`.
pub(crate) async fn stop(client: &Client, model: &str) -> Result<(), CliError> {
    match unload(client, model).await {
        Err(e) if e.status() == Some(404) => Err(CliError::Message(format!(
            "couldn't find model \"{model}\" to stop"
        ))),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PsModel;
    use chrono::TimeZone;

    #[test]
    fn processor_split() {
        assert_eq!(processor(1000, 0), "100% CPU");
        assert_eq!(processor(1000, 1000), "100% GPU");
        assert_eq!(processor(1000, 250), "75%/25% CPU/GPU");
        assert_eq!(processor(3, 1), "67%/33% CPU/GPU");
        assert_eq!(processor(1000, 2000), "Unknown");
    }

    #[test]
    fn until_texts() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(until("2026-01-01T12:04:30Z", now), "4 minutes from now");
        assert_eq!(until("2026-01-01T11:59:59Z", now), "Stopping...");
        assert_eq!(until("2318-01-01T00:00:00Z", now), "Forever");
        assert_eq!(
            until("2026-01-01T13:00:00.5+01:00", now),
            "Less than a second from now"
        );
        assert_eq!(until("", now), "");
    }

    #[test]
    fn table_rows() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let resp = PsResponse {
            models: vec![
                PsModel {
                    name: "smol:latest".into(),
                    model: "smol:latest".into(),
                    size: 98_000_000,
                    size_vram: 0,
                    digest: "0123456789abcdef0123".into(),
                    context_length: 4096,
                    expires_at: "2026-01-01T12:05:00Z".into(),
                    ..PsModel::default()
                },
                PsModel {
                    name: "other:latest".into(),
                    size: 2_000_000_000,
                    size_vram: 2_000_000_000,
                    digest: "fedcba9876543210".into(),
                    context_length: 8192,
                    expires_at: "2999-01-01T00:00:00Z".into(),
                    ..PsModel::default()
                },
            ],
        };
        let all = rows(&resp, None, now);
        assert_eq!(
            all[0],
            ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
        );
        assert_eq!(
            all[1],
            [
                "smol:latest",
                "0123456789ab",
                "98 MB",
                "100% CPU",
                "4096",
                "5 minutes from now"
            ]
        );
        assert_eq!(
            all[2],
            [
                "other:latest",
                "fedcba987654",
                "2 GB",
                "100% GPU",
                "8192",
                "Forever"
            ]
        );
        let some = rows(&resp, Some("oth"), now);
        assert_eq!(some.len(), 2);
        assert_eq!(some[1][0], "other:latest");
        let text = table(&all);
        assert!(
            text.starts_with("NAME            ID              SIZE"),
            "{text}"
        );
    }
}
