//! Image files named in a prompt, attached to the message for vision models, as Ollama's CLI
//! does: a path starting with `./`, `.\`, `/`, `\`, `~/` or a drive letter (`C:\`), ending in
//! `.jpg`, `.jpeg`, `.png` or `.webp` (any case), possibly quoted or with shell-escaped spaces
//! (`my\ cat.png`), is read, checked with [`crate::media::probe`], sent base64 in the message's
//! `images` and taken out of its text. A candidate that is not a file is left in the text and
//! reported; so is a file that is not a usable image.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

use crate::api::Message;
use crate::media::{self, Limits};

/// A path-looking run of text ending in an image extension. Like Ollama's, it may span spaces
/// (`./my cat.png`) and is lazy, so each candidate ends at the first extension; text that only
/// looks like a path is weeded out by checking the file.
static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[a-zA-Z]:)?(?:\./|\.\\|~/|/|\\)[\S ]+?\.(?i:jpg|jpeg|png|webp)\b")
        .expect("the pattern is valid")
});

/// The candidate file names in `input`, as Ollama's CLI finds them (before any check).
pub(crate) fn file_names(input: &str) -> Vec<&str> {
    CANDIDATE.find_iter(input).map(|m| m.as_str()).collect()
}

/// Undoes shell escapes in a path as typed: `\ `, `\(`, `\)`, `\[`, `\]`, `\{`, `\}`, `\$`,
/// `\&`, `\;`, `\'`, `\\`, `\*`, `\?`, `\~`, and `'\''` (a single quote inside single quotes).
pub(crate) fn unescape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix(r"'\''") {
            out.push('\'');
            rest = after;
            continue;
        }
        if c == '\\'
            && let Some(next) = rest[1..].chars().next()
            && " ()[]{}$&;'\\*?~".contains(next)
        {
            out.push(next);
            rest = &rest[1 + next.len_utf8()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `~/…` with the home directory in its place (as it is without one).
fn expand(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(path),
    }
}

/// A prompt with its images taken out.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Attachments {
    /// The prompt without the attached paths (and their quotes), trimmed.
    pub text: String,
    /// The attached files, base64-encoded, in the order they appear.
    pub images: Vec<String>,
    /// What to tell the user, in order: `Added image '…'` for each attached file, and why a
    /// path was not attached.
    pub notes: Vec<String>,
}

/// Why a candidate path was not attached.
enum Skip {
    /// There is no such file: maybe the text only looked like a path.
    Missing,
    /// A file, but not one to send.
    Unusable(String),
}

/// Reads and checks one image file.
fn load(path: &Path, limits: &Limits) -> Result<Vec<u8>, Skip> {
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Skip::Missing),
        Err(e) => return Err(Skip::Unusable(e.to_string())),
        Ok(m) => m,
    };
    if meta.is_dir() {
        return Err(Skip::Unusable("it is a directory".into()));
    }
    if meta.len() > limits.max_bytes as u64 {
        return Err(Skip::Unusable(
            media::MediaError::TooLarge {
                bytes: meta.len(),
                max: limits.max_bytes,
            }
            .to_string(),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Skip::Unusable(e.to_string()))?;
    media::probe(&bytes, limits).map_err(|e| Skip::Unusable(e.to_string()))?;
    Ok(bytes)
}

/// Whether `at` begins a word: the start of `input`, or after a space or an opening quote or
/// bracket. A missing candidate that starts inside a word (`a/b and c.png`) was most likely
/// never meant as a path, so it is not reported.
fn word_start(input: &str, at: usize) -> bool {
    input[..at]
        .chars()
        .next_back()
        .is_none_or(|c| c.is_whitespace() || "'\"([<".contains(c))
}

/// Finds the image paths in `input`, reads and checks them, and takes the attached ones out of
/// the text. `home` expands `~/`.
///
/// Where a candidate is not a file, the search goes on from just after its first character, so
/// that `this/that and ./cat.png` still finds `./cat.png`; a missing candidate is reported only
/// when it starts a word, nothing was attached from inside it, and it is not itself inside a
/// reported one.
pub(crate) fn attach(input: &str, home: Option<&Path>, limits: &Limits) -> Attachments {
    let mut out = Attachments::default();
    // (start, end, as typed) of attached and of missing candidates.
    let mut attached: Vec<(usize, usize, &str, String)> = Vec::new();
    let mut missing: Vec<(usize, usize, String)> = Vec::new();
    let mut notes: Vec<(usize, String)> = Vec::new();
    let mut pos = 0;
    while pos <= input.len() {
        let Some(m) = CANDIDATE.find_at(input, pos) else {
            break;
        };
        let typed = m.as_str();
        let path = unescape(typed);
        match load(&expand(&path, home), limits) {
            Ok(bytes) if out.images.len() >= limits.max_images => {
                notes.push((
                    m.start(),
                    format!(
                        "Couldn't add image '{path}': at most {} images can be sent at once",
                        limits.max_images
                    ),
                ));
                pos = m.end();
                drop(bytes);
            }
            Ok(bytes) => {
                notes.push((m.start(), format!("Added image '{path}'")));
                out.images
                    .push(base64::engine::general_purpose::STANDARD.encode(bytes));
                attached.push((m.start(), m.end(), typed, path));
                pos = m.end();
            }
            Err(Skip::Unusable(why)) => {
                notes.push((m.start(), format!("Couldn't add image '{path}': {why}")));
                pos = m.end();
            }
            Err(Skip::Missing) => {
                missing.push((m.start(), m.end(), path));
                let first = typed.chars().next().map_or(1, char::len_utf8);
                pos = m.start() + first;
            }
        }
    }
    for (i, (start, end, path)) in missing.iter().enumerate() {
        let inner_attached = attached.iter().any(|a| a.0 >= *start && a.1 <= *end);
        let inside_missing = missing[..i].iter().any(|o| o.0 <= *start && o.1 >= *end);
        if word_start(input, *start) && !inner_attached && !inside_missing {
            notes.push((
                *start,
                format!("Couldn't add image '{path}': there is no such file"),
            ));
        }
    }
    notes.sort_by_key(|n| n.0);
    out.notes = notes.into_iter().map(|n| n.1).collect();
    let mut text = input.to_string();
    for (_, _, typed, path) in &attached {
        for quoted in [
            format!("'{path}'"),
            format!("'{typed}'"),
            format!("\"{path}\""),
            format!("\"{typed}\""),
        ] {
            text = text.replace(&quoted, "");
        }
        text = text.replace(typed, "");
    }
    out.text = text.trim().to_string();
    out
}

/// The user message for `text`: with a vision model, the images its paths name attached (what
/// happened to each is said on stderr); otherwise the text as it is.
pub(crate) fn user_message(text: &str, vision: bool) -> Message {
    if !vision {
        return Message::new("user", text);
    }
    let home = crate::config::home_dir();
    let found = attach(text, home.as_deref(), &Limits::default());
    for note in &found.notes {
        eprintln!("{note}");
    }
    let mut msg = Message::new("user", found.text);
    msg.images = found.images;
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::engine::general_purpose::STANDARD;

    /// A real 2x2 PNG.
    fn png_bytes() -> Vec<u8> {
        let img = image::RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn write_png(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, png_bytes()).unwrap();
        p
    }

    fn run(input: &str, home: Option<&Path>) -> Attachments {
        attach(input, home, &Limits::default())
    }

    #[test]
    fn candidates_are_found_as_ollama_finds_them() {
        assert_eq!(file_names("describe ./cat.png"), ["./cat.png"]);
        assert_eq!(file_names("what is /a/b.JPG?"), ["/a/b.JPG"]);
        assert_eq!(
            file_names("compare /x/a.jpeg and ./b.webp"),
            ["/x/a.jpeg", "./b.webp"]
        );
        assert_eq!(file_names(r"see C:\pics\a.png"), [r"C:\pics\a.png"]);
        assert_eq!(file_names(r"see .\a.png"), [r".\a.png"]);
        assert_eq!(file_names("see ~/a.png"), ["~/a.png"]);
        assert_eq!(file_names(r"see /my\ pics/a.png"), [r"/my\ pics/a.png"]);
        // No path start, another extension, or the extension inside a longer word.
        assert!(file_names("cat.png").is_empty());
        assert!(file_names("./notes.txt").is_empty());
        assert!(file_names("./a.pngx").is_empty());
        assert!(file_names("a .gif: ./anim.gif").is_empty());
    }

    #[test]
    fn unescapes_shell_escapes() {
        assert_eq!(unescape(r"/a\ b\(1\).png"), "/a b(1).png");
        assert_eq!(unescape(r"/it'\''s.png"), "/it's.png");
        assert_eq!(unescape(r"/a\\b.png"), r"/a\b.png");
        assert_eq!(unescape(r"C:\pics\a.png"), r"C:\pics\a.png");
        assert_eq!(unescape("/é\\ ü.png"), "/é ü.png");
    }

    #[test]
    fn attaches_an_image_and_removes_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_png(dir.path(), "cat.png");
        let got = run(&format!("describe {} please", p.display()), None);
        assert_eq!(got.text, "describe  please");
        assert_eq!(got.images, [STANDARD.encode(png_bytes())]);
        assert_eq!(got.notes, [format!("Added image '{}'", p.display())]);
    }

    #[test]
    fn quoted_and_escaped_paths_with_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_png(dir.path(), "my cat.png");
        let shown = p.display().to_string();
        for input in [
            format!("describe '{shown}'"),
            format!("describe \"{shown}\""),
            format!("describe {}", shown.replace(' ', "\\ ")),
            format!("describe {shown}"),
        ] {
            let got = run(&input, None);
            assert_eq!(got.text, "describe", "{input}");
            assert_eq!(got.images.len(), 1, "{input}");
            assert_eq!(got.notes, [format!("Added image '{shown}'")], "{input}");
        }
    }

    #[test]
    fn tilde_is_the_home_directory() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("pics")).unwrap();
        write_png(&home.path().join("pics"), "a.png");
        let got = run("what is ~/pics/a.png", Some(home.path()));
        assert_eq!(got.text, "what is");
        assert_eq!(got.images.len(), 1);
        assert_eq!(got.notes, ["Added image '~/pics/a.png'"]);
        // Without a home directory the path stays as typed, and there is no such file.
        let got = run("what is ~/pics/a.png", None);
        assert!(got.images.is_empty());
        assert_eq!(got.text, "what is ~/pics/a.png");
    }

    #[test]
    fn several_images_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_png(dir.path(), "a.png");
        let b = dir.path().join("b.JPEG");
        let img = image::RgbImage::from_pixel(3, 1, image::Rgb([9, 9, 9]));
        img.save_with_format(&b, image::ImageFormat::Jpeg).unwrap();
        let got = run(
            &format!("compare {} with {}", a.display(), b.display()),
            None,
        );
        assert_eq!(got.text, "compare  with");
        assert_eq!(got.images.len(), 2);
        assert_eq!(got.images[0], STANDARD.encode(png_bytes()));
        assert_eq!(got.images[1], STANDARD.encode(std::fs::read(&b).unwrap()));
        assert_eq!(
            got.notes,
            [
                format!("Added image '{}'", a.display()),
                format!("Added image '{}'", b.display())
            ]
        );
    }

    #[test]
    fn nonexistent_and_unusable_files_are_reported_and_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.png");
        let fake = dir.path().join("fake.png");
        std::fs::write(&fake, b"not an image at all").unwrap();
        let input = format!("look at {} and {}", missing.display(), fake.display());
        let got = run(&input, None);
        assert!(got.images.is_empty());
        assert_eq!(got.text, input);
        assert_eq!(
            got.notes,
            [
                format!(
                    "Couldn't add image '{}': there is no such file",
                    missing.display()
                ),
                format!(
                    "Couldn't add image '{}': not a PNG, JPEG, WebP or GIF image",
                    fake.display()
                ),
            ]
        );
        // A directory named like an image.
        let d = dir.path().join("dir.png");
        std::fs::create_dir(&d).unwrap();
        let got = run(&format!("see {}", d.display()), None);
        assert!(got.images.is_empty());
        assert_eq!(
            got.notes,
            [format!(
                "Couldn't add image '{}': it is a directory",
                d.display()
            )]
        );
    }

    #[test]
    fn a_path_looking_prefix_does_not_hide_a_real_image() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_png(dir.path(), "a.png");
        // "/that with <p>" is the first candidate; it is no file, so the search goes on.
        let input = format!("this/that with {}", p.display());
        let got = run(&input, None);
        assert_eq!(got.images.len(), 1);
        assert_eq!(got.text, "this/that with");
        assert_eq!(got.notes, [format!("Added image '{}'", p.display())]);
    }

    #[test]
    fn too_many_images_are_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_png(dir.path(), "a.png");
        let limits = Limits {
            max_images: 1,
            ..Limits::default()
        };
        let got = attach(&format!("{} {}", a.display(), a.display()), None, &limits);
        assert_eq!(got.images.len(), 1);
        assert_eq!(got.notes.len(), 2);
        assert!(got.notes[1].contains("at most 1 images"), "{:?}", got.notes);
    }

    #[test]
    fn text_only_models_get_the_prompt_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_png(dir.path(), "cat.png");
        let text = format!("describe {}", p.display());
        let msg = user_message(&text, false);
        assert_eq!(msg.content, text);
        assert!(msg.images.is_empty());
        let msg = user_message(&text, true);
        assert_eq!(msg.content, "describe");
        assert_eq!(msg.images.len(), 1);
    }

    #[test]
    fn no_candidates_leave_the_text_alone() {
        let got = run("  just words, a/b and c.png  ", None);
        assert_eq!(got.text, "just words, a/b and c.png");
        assert!(got.images.is_empty() && got.notes.is_empty());
    }
}
