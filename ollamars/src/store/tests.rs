use super::*;
use crate::gguf::{GgmlType, Gguf, GgufWriter, Value};
use std::time::Duration;

fn name(s: &str) -> ModelName {
    ModelName::parse(s).unwrap()
}

fn hex64(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn digest_to_path_table() {
    let s = Store::new("/models");
    let good = hex64('a');
    let want = PathBuf::from(format!("/models/blobs/sha256-{good}"));
    assert_eq!(s.blob_path(&format!("sha256:{good}")).unwrap(), want);
    assert_eq!(s.blob_path(&format!("sha256-{good}")).unwrap(), want);
    let d0 = "0123456789abcdef".repeat(4);
    assert!(s.blob_path(&format!("sha256:{d0}")).is_ok());
    let bad = [
        String::new(),
        "sha256:".into(),
        format!("sha256:{}", &good[..63]),
        format!("sha256:{good}a"),
        format!("sha256:{}", hex64('A')),
        format!("sha256:{}", hex64('g')),
        format!("SHA256:{good}"),
        format!("sha512:{good}"),
        format!("sha256_{good}"),
        format!("sha256::{good}"),
        format!(" sha256:{good}"),
        format!("sha256:{good}\n"),
        format!("sha256:{good}/"),
        good.clone(),
        "sha256:../../../tmp/pwn".into(),
        "sha256-../x".into(),
        format!("sha256:../{}", &good[..61]),
        format!("sha256:{}/..", &good[..61]),
        format!("../blobs/sha256-{good}"),
        format!("/etc/sha256:{good}"),
    ];
    for b in &bad {
        assert!(
            matches!(s.blob_path(b), Err(StoreError::InvalidDigest)),
            "{b:?} accepted"
        );
        assert!(Digest::parse(b).is_err());
    }
    assert_eq!(
        StoreError::InvalidDigest.to_string(),
        "invalid digest format"
    );
}

#[test]
fn blob_write_verify_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::new(dir.path());
    let data = b"hello blob".repeat(100_000);
    let d = Digest::of(&data);
    assert_eq!(
        s.write_blob(d.as_ref(), &data[..]).unwrap(),
        BlobWrite::Created(data.len() as u64)
    );
    assert!(s.has_blob(d.as_ref()).unwrap());
    assert_eq!(s.read_blob(d.as_ref()).unwrap(), data);
    // The file form of the digest works too; an existing blob is not re-read.
    struct Boom;
    impl Read for Boom {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("existing blob was re-read")
        }
    }
    assert_eq!(
        s.write_blob(&d.file_name(), Boom).unwrap(),
        BlobWrite::Existed
    );
    // A mismatch publishes nothing and leaves no temp file.
    let other = Digest::of(b"other");
    let e = s.write_blob(other.as_ref(), &b"not other"[..]).unwrap_err();
    let got = Digest::of(b"not other");
    assert_eq!(
        e.to_string(),
        format!("digest mismatch, expected \"{other}\", got \"{got}\"")
    );
    assert!(!s.has_blob(other.as_ref()).unwrap());
    assert_eq!(
        files_under(&dir.path().join("blobs")),
        vec![s.blob_path(d.as_ref()).unwrap()]
    );
    // import computes the digest.
    let (d2, n) = s.import_blob(&b"abc"[..]).unwrap();
    assert_eq!(
        (d2.hex(), n),
        (
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            3
        )
    );
    assert_eq!(s.read_blob(d2.as_ref()).unwrap(), b"abc");
    assert!(matches!(
        s.read_blob(other.as_ref()),
        Err(StoreError::BlobNotFound(_))
    ));
}

#[test]
fn traversal_digests_create_nothing() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("models");
    let s = Store::new(&root);
    for d in [
        "sha256:../../pwn",
        "sha256-../pwn",
        "sha256:/tmp/pwn",
        "sha256:..%2fpwn",
    ] {
        assert!(matches!(
            s.write_blob(d, &b"x"[..]),
            Err(StoreError::InvalidDigest)
        ));
    }
    assert!(!top.path().join("pwn").exists());
    assert!(!root.exists(), "nothing at all was created");
}

#[cfg(unix)]
#[test]
fn symlinks_in_blobs_are_not_followed_or_deleted_through() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("models");
    let s = Store::new(&root);
    let outside = top.path().join("secret");
    fs::write(&outside, b"secret").unwrap();
    let d = Digest::of(b"secret");
    fs::create_dir_all(root.join("blobs")).unwrap();
    let link = s.blob_path(d.as_ref()).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    assert!(!s.has_blob(d.as_ref()).unwrap());
    assert!(matches!(
        s.read_blob(d.as_ref()),
        Err(StoreError::NotRegularFile(_))
    ));
    // Pruning leaves the symlink and its target alone.
    s.prune(Duration::ZERO).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Writing the real blob replaces the link, not the file it points to.
    s.write_blob(d.as_ref(), &b"secret"[..]).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
    assert_eq!(fs::read(&outside).unwrap(), b"secret");
}

/// A store laid out by hand exactly as Ollama writes one.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    root: PathBuf,
    model: Vec<u8>,
    manifest_bytes: Vec<u8>,
    digests: Vec<String>,
}

fn put_blob(root: &Path, bytes: &[u8]) -> String {
    let d = Digest::of(bytes);
    fs::create_dir_all(root.join("blobs")).unwrap();
    fs::write(
        root.join("blobs").join(format!("sha256-{}", d.hex())),
        bytes,
    )
    .unwrap();
    d.to_string()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    let model = GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("general.file_type", Value::U32(15))
        .tensor_filled("token_embd.weight", &[256, 4], GgmlType::Q4_K)
        .to_bytes();
    let template = b"{{ if .System }}<|system|>{{ .System }}{{ end }}{{ .Prompt }}".to_vec();
    let params = br#"{"stop":["<|im_end|>"],"temperature":0.7}"#.to_vec();
    let license = b"Apache License 2.0".to_vec();
    let config = br#"{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"134.52M","file_type":"Q4_K_M","renderer":"","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let dm = put_blob(&root, &model);
    let dt = put_blob(&root, &template);
    let dp = put_blob(&root, &params);
    let dl = put_blob(&root, &license);
    let dc = put_blob(&root, &config);
    let manifest = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#,
            r#""config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{dc}","size":{cs}}},"#,
            r#""layers":[{{"mediaType":"application/vnd.ollama.image.model","digest":"{dm}","size":{ms}}},"#,
            r#"{{"mediaType":"application/vnd.ollama.image.template","digest":"{dt}","size":{ts}}},"#,
            r#"{{"mediaType":"application/vnd.ollama.image.license","digest":"{dl}","size":{ls}}},"#,
            r#"{{"mediaType":"application/vnd.ollama.image.params","digest":"{dp}","size":{ps}}}]}}"#
        ),
        dc = dc,
        cs = config.len(),
        dm = dm,
        ms = model.len(),
        dt = dt,
        ts = template.len(),
        dl = dl,
        ls = license.len(),
        dp = dp,
        ps = params.len()
    );
    let mdir = root.join("manifests/registry.ollama.ai/library/smol");
    fs::create_dir_all(&mdir).unwrap();
    fs::write(mdir.join("latest"), manifest.as_bytes()).unwrap();
    Fixture {
        store: Store::new(&root),
        _dir: dir,
        root,
        model,
        manifest_bytes: manifest.into_bytes(),
        digests: vec![dc, dm, dt, dl, dp],
    }
}

#[test]
fn reads_a_store_laid_out_by_ollama() {
    let f = fixture();
    let s = &f.store;
    let m = s.read_manifest(&name("smol")).unwrap();
    assert_eq!(m.name.display_short(), "smol:latest");
    assert_eq!(m.raw, f.manifest_bytes);
    assert_eq!(m.digest, Digest::of(&f.manifest_bytes).hex());
    assert_eq!(m.manifest.schema_version, 2);
    assert_eq!(m.manifest.media_type, MANIFEST_MEDIA_TYPE);
    assert_eq!(m.manifest.config.media_type, CONFIG_MEDIA_TYPE);
    assert_eq!(m.manifest.digests().collect::<Vec<_>>(), f.digests);
    let sizes: u64 = f
        .digests
        .iter()
        .map(|d| s.read_blob(d).unwrap().len() as u64)
        .sum();
    assert_eq!(m.manifest.total_size(), sizes);

    let cfg: Config =
        serde_json::from_slice(&s.read_blob(&m.manifest.config.digest).unwrap()).unwrap();
    assert_eq!(cfg.model_format, "gguf");
    assert_eq!(cfg.model_family, "llama");
    assert_eq!(cfg.model_type, "134.52M");
    assert_eq!(cfg.file_type, "Q4_K_M");
    assert_eq!(cfg.rootfs.as_ref().unwrap().kind, "layers");
    assert_eq!(cfg.extra.get("renderer"), None);
    assert_eq!(cfg.renderer.as_deref(), Some(""));

    let model_layer = m.manifest.layer(MEDIA_MODEL).unwrap();
    let blob = s.read_blob(&model_layer.digest).unwrap();
    assert_eq!(blob, f.model);
    let g = Gguf::from_bytes(&blob).unwrap();
    assert_eq!(g.details().quantization_level, "Q4_K_M");
    // The config we would write for this GGUF carries the same details as Ollama's.
    let ours = Config::for_gguf(&g.details());
    assert_eq!(
        (
            ours.model_format.as_str(),
            ours.model_family.as_str(),
            ours.file_type.as_str()
        ),
        (
            cfg.model_format.as_str(),
            cfg.model_family.as_str(),
            cfg.file_type.as_str()
        )
    );
    assert_eq!(ours.model_families, cfg.model_families);
    assert_eq!(
        (ours.architecture.as_str(), ours.os.as_str()),
        ("amd64", "linux")
    );
    let json = serde_json::to_value(&ours).unwrap();
    assert_eq!(json["model_type"], g.details().parameter_size);
    assert!(json.get("renderer").is_none() && json.get("rootfs").is_none());
    let tpl = s
        .read_blob(&m.manifest.layer(MEDIA_TEMPLATE).unwrap().digest)
        .unwrap();
    assert!(String::from_utf8(tpl).unwrap().contains(".Prompt"));
    let params: serde_json::Value = serde_json::from_slice(
        &s.read_blob(&m.manifest.layer(MEDIA_PARAMS).unwrap().digest)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(params["stop"][0], "<|im_end|>");

    // Entries whose path is not a valid name are not models.
    for bad in [
        "library/bad name/latest",
        "library/.hidden/latest",
        "library/smol/.tmp-x",
        "-ns/m/latest",
    ] {
        let p = f.root.join("manifests/registry.ollama.ai").join(bad);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &f.manifest_bytes).unwrap();
    }
    let all = s.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name.display_short(), "smol:latest");
    // Writing the parsed manifest back gives Ollama's encoding (plus its trailing newline).
    assert_eq!(
        m.manifest.to_json_bytes(),
        [&f.manifest_bytes[..], b"\n"].concat()
    );
}

#[test]
fn case_insensitive_lookup_keeps_the_disk_spelling() {
    let f = fixture();
    let s = &f.store;
    for n in [
        "SMOL",
        "Smol:LATEST",
        "registry.ollama.ai/LIBRARY/smol:latest",
    ] {
        let got = s.resolve(&name(n)).unwrap().expect(n);
        assert_eq!(got.display_short(), "smol:latest");
        assert_eq!(
            s.read_manifest(&name(n)).unwrap().name.display_short(),
            "smol:latest"
        );
    }
    assert!(s.resolve(&name("smol:other")).unwrap().is_none());
    assert!(
        matches!(s.read_manifest(&name("nope")), Err(StoreError::ModelNotFound(n)) if n == "nope:latest")
    );
    // Writing under another case reuses the existing directories and file.
    let m = s.read_manifest(&name("smol")).unwrap();
    s.write_manifest(&name("SMOL:Latest"), &m.manifest).unwrap();
    let listed: Vec<String> = s
        .list()
        .unwrap()
        .iter()
        .map(|m| m.name.display_short())
        .collect();
    assert_eq!(listed, vec!["smol:latest"]);
    assert!(
        f.root
            .join("manifests/registry.ollama.ai/library/smol/latest")
            .is_file()
    );
}

#[test]
fn write_copy_list_delete_round_trip() {
    let f = fixture();
    let s = &f.store;
    let m = s.read_manifest(&name("smol")).unwrap().manifest;
    // A new model sharing every blob but the template.
    let (tpl, size) = s.import_blob(&b"{{ .Prompt }}"[..]).unwrap();
    let mut m2 = m.clone();
    for l in &mut m2.layers {
        if l.media_type == MEDIA_TEMPLATE {
            l.digest = tpl.to_string();
            l.size = size;
        }
    }
    s.write_manifest(&name("user/other:v1"), &m2).unwrap();
    let back = s.read_manifest(&name("user/other:v1")).unwrap();
    assert_eq!(back.manifest, m2);
    assert_eq!(back.raw, m2.to_json_bytes());
    assert!(
        f.root
            .join("manifests/registry.ollama.ai/user/other/v1")
            .is_file()
    );

    s.copy(&name("smol"), &name("example.com:5000/ns/copy:t"))
        .unwrap();
    let c = s
        .read_manifest(&name("example.com:5000/ns/copy:t"))
        .unwrap();
    assert_eq!(c.raw, f.manifest_bytes);
    let mut names: Vec<String> = s
        .list()
        .unwrap()
        .iter()
        .map(|m| m.name.display_short())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["example.com:5000/ns/copy:t", "smol:latest", "user/other:v1"]
    );

    // Deleting the original keeps every blob (the copy uses them all).
    s.delete(&name("smol"), true).unwrap();
    for d in &f.digests {
        assert!(s.has_blob(d).unwrap());
    }
    assert!(
        !f.root.join("manifests/registry.ollama.ai/library").exists(),
        "empty dirs removed"
    );
    // Deleting the copy frees the blobs only it used (the old template, license... not shared
    // with user/other except where digests match).
    s.delete(&name("example.com:5000/ns/copy:t"), true).unwrap();
    let old_template = &f.digests[2];
    assert!(
        !s.has_blob(old_template).unwrap(),
        "unreferenced template deleted"
    );
    for d in m2.digests() {
        assert!(s.has_blob(d).unwrap(), "{d} still used by user/other");
    }
    // With pruning off, nothing but the manifest goes.
    s.delete(&name("user/other:v1"), false).unwrap();
    for d in m2.digests() {
        assert!(s.has_blob(d).unwrap());
    }
    assert!(s.list().unwrap().is_empty());
    assert!(matches!(
        s.delete(&name("user/other:v1"), true),
        Err(StoreError::ModelNotFound(_))
    ));
    // A manifest naming a missing blob is refused.
    let mut m3 = m.clone();
    m3.layers[0].digest = Digest::of(b"missing").to_string();
    assert!(matches!(
        s.write_manifest(&name("x"), &m3),
        Err(StoreError::BlobNotFound(_))
    ));
    assert!(s.resolve(&name("x")).unwrap().is_none());
}

#[test]
fn traversal_digests_in_manifests_touch_nothing_outside() {
    let f = fixture();
    let s = &f.store;
    let top = f.root.parent().unwrap();
    let canary = top.join("canary");
    fs::write(&canary, b"alive").unwrap();
    let shared_model = f.digests[1].clone();
    for (i, evil) in [
        "sha256:../../canary",
        "sha256-../../canary",
        &format!("sha256:{}", hex64('A')),
        &format!("sha512:{}", hex64('a')),
        "../canary",
    ]
    .iter()
    .enumerate()
    {
        let raw = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MEDIA_TYPE}","config":{{"mediaType":"{CONFIG_MEDIA_TYPE}","digest":"{}","size":1}},"layers":[{{"mediaType":"{MEDIA_MODEL}","digest":"{evil}","size":5}},{{"mediaType":"{MEDIA_MODEL}","digest":"{shared_model}","size":5}}]}}"#,
            f.digests[0]
        );
        // Refused as a write...
        let n = name(&format!("evil{i}"));
        assert!(matches!(
            s.write_manifest_raw(&n, raw.as_bytes()),
            Err(StoreError::InvalidManifest(_))
        ));
        assert!(s.resolve(&n).unwrap().is_none());
        // ...and harmless when found on disk: reading fails, listing skips it, pruning is
        // skipped, deleting removes only the manifest.
        let mdir = f
            .root
            .join(format!("manifests/registry.ollama.ai/library/evil{i}"));
        fs::create_dir_all(&mdir).unwrap();
        fs::write(mdir.join("latest"), &raw).unwrap();
        assert!(matches!(
            s.read_manifest(&n),
            Err(StoreError::InvalidManifest(_))
        ));
        assert_eq!(s.list().unwrap().len(), 1);
        let r = s.prune(Duration::ZERO).unwrap();
        assert!(r.skipped.is_some());
        s.delete(&n, true).unwrap();
        assert!(!mdir.exists());
        assert_eq!(fs::read(&canary).unwrap(), b"alive");
        assert!(s.has_blob(&shared_model).unwrap());
    }
    // No file appeared anywhere outside the store.
    let outside: Vec<_> = files_under(top)
        .into_iter()
        .filter(|p| !p.starts_with(&f.root))
        .collect();
    assert_eq!(outside, vec![canary]);
}

#[test]
fn prune_removes_unreferenced_and_junk_after_grace() {
    let f = fixture();
    let s = &f.store;
    let (orphan, _) = s.import_blob(&b"orphan"[..]).unwrap();
    let blobs = f.root.join("blobs");
    fs::write(blobs.join(".tmp-stale"), b"x").unwrap();
    fs::write(blobs.join(format!("sha256-{}-partial", hex64('b'))), b"x").unwrap();
    fs::write(blobs.join("junk"), b"x").unwrap();
    fs::create_dir(blobs.join("a-dir")).unwrap();
    fs::create_dir_all(f.root.join("manifests/h/n/empty")).unwrap();
    fs::create_dir_all(f.root.join("manifests/h/n/crashed")).unwrap();
    fs::write(f.root.join("manifests/h/n/crashed/.tmp-abc"), b"{").unwrap();
    // Within the grace period nothing is deleted (but empty manifest dirs go).
    let r = s.prune(Duration::from_secs(3600)).unwrap();
    assert_eq!((r.blobs, r.junk, r.dirs), (0, 0, 1));
    assert!(f.root.join("manifests/h/n/crashed/.tmp-abc").is_file());
    assert!(s.has_blob(orphan.as_ref()).unwrap());
    assert_eq!(fs::read_dir(&blobs).unwrap().count(), 5 + 1 + 3 + 1);
    // After it, the orphan and junk go; referenced blobs and the directory stay.
    let r = s.prune(Duration::ZERO).unwrap();
    assert_eq!(
        (r.blobs, r.junk, r.dirs, r.skipped.as_deref()),
        (1, 4, 3, None)
    );
    assert!(!s.has_blob(orphan.as_ref()).unwrap());
    for d in &f.digests {
        assert!(s.has_blob(d).unwrap());
    }
    assert!(blobs.join("a-dir").is_dir());
    assert_eq!(fs::read_dir(&blobs).unwrap().count(), 5 + 1);
    assert!(!f.root.join("manifests/h").exists());
}

#[test]
fn concurrent_writers_of_one_blob() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::new(dir.path());
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d = Digest::of(&data);
    /// Delivers the data in small pieces so the writers interleave.
    struct Slow<'a>(&'a [u8]);
    impl Read for Slow<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(4096);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            if n > 0 && self.0.len() % (256 * 1024) < 4096 {
                std::thread::yield_now();
            }
            Ok(n)
        }
    }
    let results: Vec<_> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| s.write_blob(d.as_ref(), Slow(&data))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        assert!(
            matches!(r, Ok(BlobWrite::Created(_) | BlobWrite::Existed)),
            "{r:?}"
        );
    }
    assert_eq!(s.read_blob(d.as_ref()).unwrap(), data);
    assert_eq!(
        files_under(&dir.path().join("blobs")),
        vec![s.blob_path(d.as_ref()).unwrap()]
    );
}

#[test]
fn models_dir_and_noprune_env() {
    // The functions are checked against a configuration built from given variables (setting
    // variables needs `unsafe` in edition 2024, and this crate forbids it).
    use crate::config::{Config, Side};
    let cfg =
        |vars: &[(&str, &str)]| Config::from_vars(Side::Server, vars.iter().copied()).unwrap();
    let dir = models_dir(&cfg(&[
        ("OLLAMA_MODELS", "/srv/models"),
        ("HOME", "/home/u"),
    ]))
    .unwrap();
    assert_eq!(dir, PathBuf::from("/srv/models"));
    let dir = models_dir(&cfg(&[("HOME", "/home/u")])).unwrap();
    assert!(dir.ends_with(".ollama/models"));
    assert!(matches!(
        models_dir(&cfg(&[])),
        Err(StoreError::NoModelsDir)
    ));
    // Pruning is on unless OLLAMA_NOPRUNE is true; `0` and `false` are false, as in Ollama.
    assert!(!cfg(&[]).noprune);
    assert!(cfg(&[("OLLAMA_NOPRUNE", "1")]).noprune);
    assert!(!cfg(&[("OLLAMA_NOPRUNE", "0")]).noprune);
    assert!(!cfg(&[("OLLAMA_NOPRUNE", "false")]).noprune);
}

#[test]
fn one_hasher_for_bytes_streams_files_and_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let want = Digest::of(&data);
    assert_eq!(
        Digest::of_reader(&data[..]).unwrap(),
        (want.clone(), data.len() as u64)
    );
    let p = dir.path().join("f");
    fs::write(&p, &data).unwrap();
    assert_eq!(
        Digest::of_file(&p).unwrap(),
        (want.clone(), data.len() as u64)
    );
    // A hasher continued over the rest gives the digest of the whole.
    let mut h = Hasher::new();
    h.update(&data[..12345]);
    let mut copy = Vec::new();
    assert_eq!(
        h.copy(&data[12345..], &mut copy).unwrap(),
        (data.len() - 12345) as u64
    );
    assert_eq!(copy, &data[12345..]);
    assert_eq!(h.hashed(), data.len() as u64);
    assert_eq!(h.digest(), want);
    assert_ne!(Digest::of(&data[1..]), want);
    assert!(Digest::of_file(&dir.path().join("missing")).is_err());
}

#[test]
fn store_dirs_and_blob_sizes() {
    let top = tempfile::tempdir().unwrap();
    let s = Store::new(top.path().join("models"));
    assert!(!s.is_created());
    s.create_dirs().unwrap();
    assert!(s.is_created());
    assert!(top.path().join("models/blobs").is_dir());
    assert!(top.path().join("models/manifests").is_dir());
    s.create_dirs().unwrap();
    let (d, n) = s.import_blob(&b"twelve bytes"[..]).unwrap();
    assert_eq!(s.blob_size(d.as_ref()).unwrap(), n);
    assert_eq!(n, 12);
    let missing = Digest::of(b"missing");
    assert!(matches!(
        s.blob_size(missing.as_ref()),
        Err(StoreError::BlobNotFound(_))
    ));
    assert!(matches!(
        s.blob_size("sha256:../x"),
        Err(StoreError::InvalidDigest)
    ));
}

#[test]
fn partial_blobs_use_ollamas_names() {
    let s = Store::new("/models");
    let d = hex64('c');
    let p = s.partial_blob(&format!("sha256:{d}")).unwrap();
    assert_eq!(
        p.path(),
        Path::new(&format!("/models/blobs/sha256-{d}-partial"))
    );
    assert_eq!(
        p.state_file(3),
        PathBuf::from(format!("/models/blobs/sha256-{d}-partial-3"))
    );
    assert_eq!(p.digest().hex(), d);
    for bad in ["sha256:../../x", "sha256-x", "", "sha256:"] {
        assert!(matches!(
            s.partial_blob(bad),
            Err(StoreError::InvalidDigest)
        ));
    }
}

#[test]
fn parts_resume_only_when_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::new(dir.path());
    let partial = s.partial_blob(Digest::of(b"x").as_ref()).unwrap();
    let parts = partial.resume_or_plan(25, 10).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2].size, 5);
    assert_eq!(partial.existing_size().unwrap(), Some(25));
    assert_eq!(partial.load_parts(25).unwrap(), parts);
    assert_eq!(partial.resume_or_plan(25, 7).unwrap(), parts, "resumed");
    assert!(partial.load_parts(26).is_none(), "size changed");
    let mut p = parts[1];
    p.completed = 11;
    partial.save_part(&p).unwrap();
    assert!(partial.load_parts(25).is_none(), "completed > size");
    fs::write(partial.state_file(1), b"{").unwrap();
    assert!(partial.load_parts(25).is_none(), "garbage state");
    // An unusable state means a fresh plan.
    let fresh = partial.resume_or_plan(25, 20).unwrap();
    assert_eq!(fresh.len(), 2);
    assert!(!partial.state_file(2).exists(), "old states are removed");
    partial.remove();
    assert!(!partial.path().exists() && !partial.state_file(0).exists());
    assert_eq!(partial.existing_size().unwrap(), None);
    assert!(partial.load_parts(25).is_none());
}

#[test]
fn parts_written_by_ollama_resume() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::new(dir.path());
    let data = b"0123456789abcdefghij".to_vec();
    let d = Digest::of(&data);
    let blobs = dir.path().join("blobs");
    fs::create_dir_all(&blobs).unwrap();
    // Ollama's files: the partial blob at full size and one JSON state per part.
    let mut on_disk = data[..5].to_vec();
    on_disk.resize(data.len(), 0);
    fs::write(blobs.join(format!("{}-partial", d.file_name())), &on_disk).unwrap();
    fs::write(
        blobs.join(format!("{}-partial-0", d.file_name())),
        br#"{"N":0,"Offset":0,"Size":10,"Completed":5}"#,
    )
    .unwrap();
    fs::write(
        blobs.join(format!("{}-partial-1", d.file_name())),
        br#"{"N":1,"Offset":10,"Size":10,"Completed":0}"#,
    )
    .unwrap();
    let partial = s.partial_blob(d.as_ref()).unwrap();
    let parts = partial.load_parts(20).unwrap();
    assert_eq!(
        parts,
        [
            PartState {
                n: 0,
                offset: 0,
                size: 10,
                completed: 5
            },
            PartState {
                n: 1,
                offset: 10,
                size: 10,
                completed: 0
            }
        ]
    );
    assert!(!parts[0].is_complete());
    // The state is written back in the same shape.
    let done = PartState {
        completed: 10,
        ..parts[0]
    };
    partial.save_part(&done).unwrap();
    assert!(done.is_complete());
    assert_eq!(
        fs::read_to_string(partial.state_file(0)).unwrap(),
        r#"{"N":0,"Offset":0,"Size":10,"Completed":10}"#
    );
    // Fill the rest at offsets, then publish.
    let mut f = partial.open_for_writes().unwrap();
    f.seek(io::SeekFrom::Start(5)).unwrap();
    f.write_all(&data[5..]).unwrap();
    drop(f);
    assert_eq!(partial.clone().publish(Hasher::new()).unwrap(), 20);
    assert_eq!(s.read_blob(d.as_ref()).unwrap(), data);
    assert_eq!(files_under(&blobs), vec![s.blob_path(d.as_ref()).unwrap()]);
    // Without a partial file there is nothing to publish or write to.
    assert!(matches!(
        partial.clone().publish(Hasher::new()),
        Err(StoreError::NotRegularFile(_))
    ));
    assert!(matches!(
        partial.open_for_writes(),
        Err(StoreError::NotRegularFile(_))
    ));
}

#[test]
fn publishing_a_partial_blob_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::new(dir.path());
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let d = Digest::of(&data);
    let partial = s.partial_blob(d.as_ref()).unwrap();
    partial.plan(data.len() as u64, 30_000).unwrap();
    let mut f = partial.open_for_writes().unwrap();
    f.write_all(&data).unwrap();
    drop(f);
    // A hasher that has seen a prefix: only the rest is read back.
    let mut prefix = Hasher::new();
    prefix.update(&data[..30_000]);
    assert_eq!(partial.publish(prefix).unwrap(), data.len() as u64);
    assert_eq!(s.read_blob(d.as_ref()).unwrap(), data);
    let blobs = dir.path().join("blobs");
    assert_eq!(files_under(&blobs), vec![s.blob_path(d.as_ref()).unwrap()]);

    // Wrong bytes: a typed error, and the partial file and its states are gone.
    let other = Digest::of(b"other");
    let partial = s.partial_blob(other.as_ref()).unwrap();
    partial.plan(8, 4).unwrap();
    partial
        .open_for_writes()
        .unwrap()
        .write_all(b"not that")
        .unwrap();
    let got = Digest::of(b"not that");
    match partial.publish(Hasher::new()) {
        Err(StoreError::DigestMismatch { expected, got: g }) => {
            assert_eq!((expected, g), (other.to_string(), got.to_string()));
        }
        r => panic!("{r:?}"),
    }
    assert!(!s.has_blob(other.as_ref()).unwrap());
    assert_eq!(files_under(&blobs), vec![s.blob_path(d.as_ref()).unwrap()]);
    // A wrong prefix hasher is caught the same way.
    let partial = s.partial_blob(other.as_ref()).unwrap();
    partial.plan(5, 5).unwrap();
    partial
        .open_for_writes()
        .unwrap()
        .write_all(b"other")
        .unwrap();
    let mut wrong = Hasher::new();
    wrong.update(b"OT");
    assert!(matches!(
        partial.publish(wrong),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert!(!s.has_blob(other.as_ref()).unwrap());
}

#[cfg(unix)]
#[test]
fn partial_blobs_never_follow_symlinks() {
    let top = tempfile::tempdir().unwrap();
    let s = Store::new(top.path().join("models"));
    let outside = top.path().join("outside");
    fs::write(&outside, b"keep me").unwrap();
    s.create_dirs().unwrap();
    let d = Digest::of(b"abcd");
    let partial = s.partial_blob(d.as_ref()).unwrap();
    std::os::unix::fs::symlink(&outside, partial.path()).unwrap();
    std::os::unix::fs::symlink(&outside, partial.state_file(0)).unwrap();
    assert_eq!(partial.existing_size().unwrap(), None);
    assert!(partial.load_parts(7).is_none());
    assert!(matches!(
        partial.open_for_writes(),
        Err(StoreError::NotRegularFile(_))
    ));
    assert!(matches!(
        partial.clone().publish(Hasher::new()),
        Err(StoreError::NotRegularFile(_))
    ));
    // Planning replaces the links with files of its own.
    partial.plan(4, 2).unwrap();
    assert!(fs::symlink_metadata(partial.path()).unwrap().is_file());
    assert!(
        fs::symlink_metadata(partial.state_file(0))
            .unwrap()
            .is_file()
    );
    partial
        .open_for_writes()
        .unwrap()
        .write_all(b"abcd")
        .unwrap();
    partial.publish(Hasher::new()).unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"keep me");
    assert_eq!(s.read_blob(d.as_ref()).unwrap(), b"abcd");
}

#[test]
fn derived_files_stay_with_a_used_source_of_this_version_and_go_otherwise() {
    let f = fixture();
    let s = &f.store;
    let used = f.digests[0].clone();
    let (orphan, _) = s.import_blob(&b"orphan"[..]).unwrap();
    let current = crate::compat::cache::suffix_prefix();
    let put = |d: &str, suffix: &str| {
        let p = s.derived_path(d, suffix).unwrap();
        fs::write(&p, b"x").unwrap();
        p
    };
    let keep = put(&used, &current);
    let keep_record = put(&used, &format!("{current}.json"));
    let stale = put(&used, "compat-v0");
    let of_orphan = put(orphan.as_ref(), &current);
    let r = s.prune(Duration::ZERO).unwrap();
    assert!(keep.is_file() && keep_record.is_file());
    assert!(!stale.exists() && !of_orphan.exists());
    // The orphan and two derived files went; no derived file counts as junk.
    assert_eq!((r.blobs, r.junk), (3, 0));
    // A blob removed after a pull takes its derived files along.
    let (other, _) = s.import_blob(&b"other"[..]).unwrap();
    let derived = put(other.as_ref(), &current);
    assert_eq!(s.remove_unreferenced(&[other]).unwrap(), 1);
    assert!(!derived.exists());
    // Only tame suffixes name derived files.
    for bad in ["", "../x", "a/b", "Upper", ".hidden", "-dash"] {
        assert!(s.derived_path(&used, bad).is_err(), "{bad:?}");
    }
    assert_eq!(derived_source("junk"), None);
    let name = format!("sha256-{}-compat-v1", hex64('c'));
    assert_eq!(derived_source(&name), Some((&name[..71], "compat-v1")));
}
