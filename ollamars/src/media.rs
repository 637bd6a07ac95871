//! Images of vision requests, checked and decoded in Rust.
//!
//! Images arrive as base64 text: the `images` of `/api/generate` and of `/api/chat` messages
//! (bare standard base64, as Ollama's Go `[]byte` JSON fields take it), and OpenAI `image_url`
//! parts (`data:` URIs). llama.cpp's own image loader must never parse those untrusted bytes, so
//! this module does all of it: [`decode_base64`] / [`parse_data_uri`] turn the text into bytes
//! (refusing oversized input before decoding it), [`probe`] reads only the header to learn the
//! format and size (refusing an image with too many pixels before anything is allocated for
//! them), and [`decode`] produces the RGB bitmap handed to the runner.
//!
//! Errors are [`MediaError`]s; their messages are meant for the user. A request with several
//! images names the one at fault with [`MediaError::at`] (`image 2: not a PNG, JPEG, WebP or
//! GIF image`).

use std::io::Cursor;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Bounds on the images of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest encoded image, in bytes (after base64 decoding).
    pub max_bytes: usize,
    /// The most pixels (width × height) of one image.
    pub max_pixels: u64,
    /// The most images in one request.
    pub max_images: usize,
}

impl Limits {
    /// The default [`Limits::max_bytes`]: 20 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 20 * 1024 * 1024;
    /// The default [`Limits::max_pixels`]: 64 Mpx in binary units, 64 × 1024 × 1024 =
    /// 67,108,864 pixels (e.g. 8192 × 8192). Vision projectors resize far below that; the bound
    /// keeps a decoded RGB bitmap under 192 MiB.
    pub const DEFAULT_MAX_PIXELS: u64 = 64 * 1024 * 1024;
    /// The default [`Limits::max_images`]: 64 per request.
    pub const DEFAULT_MAX_IMAGES: usize = 64;
}

impl Default for Limits {
    /// 20 MiB encoded, 64 × 1024 × 1024 pixels, 64 images per request.
    fn default() -> Limits {
        Limits {
            max_bytes: Limits::DEFAULT_MAX_BYTES,
            max_pixels: Limits::DEFAULT_MAX_PIXELS,
            max_images: Limits::DEFAULT_MAX_IMAGES,
        }
    }
}

/// Why an image was refused. The messages are written for the user of the API or CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// No bytes at all.
    #[error("the image is empty (0 bytes)")]
    Empty,
    /// The text is not standard base64 (with `=` padding).
    #[error("invalid base64 image data: {0}")]
    InvalidBase64(String),
    /// A `data:` URI where bare base64 is expected (`/api/generate`, `/api/chat`).
    #[error(
        "invalid base64 image data: it starts with \"data:\"; send the base64 text without the \
         data URI prefix"
    )]
    DataUriNotAllowed,
    /// An `http(s)` URL as an OpenAI image: Ollama's wording.
    #[error("image URLs are not currently supported, please use base64 encoded data instead")]
    UrlNotSupported,
    /// An OpenAI image that is not `data:image/(jpeg|jpg|png|webp);base64,…` or
    /// `data:;base64,…`, or whose base64 does not decode: Ollama's wording.
    #[error("invalid image input")]
    InvalidImageInput,
    /// More encoded bytes than [`Limits::max_bytes`] (`bytes` may be an estimate from the
    /// base64 length).
    #[error(
        "the image is {:.1} MiB, more than the limit of {} MiB",
        *bytes as f64 / 1048576.0,
        *max as f64 / 1048576.0
    )]
    TooLarge {
        /// The image's size in bytes.
        bytes: u64,
        /// [`Limits::max_bytes`].
        max: usize,
    },
    /// More pixels than [`Limits::max_pixels`].
    #[error("the image is {width}x{height} pixels, more than the limit of {max} pixels")]
    TooManyPixels {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// [`Limits::max_pixels`].
        max: u64,
    },
    /// A header with a zero width or height.
    #[error("the image has no pixels ({width}x{height})")]
    NoPixels {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// More images in one request than [`Limits::max_images`].
    #[error("too many images: {count}, the limit is {max} per request")]
    TooManyImages {
        /// How many the request has.
        count: usize,
        /// [`Limits::max_images`].
        max: usize,
    },
    /// The bytes are not one of the supported formats.
    #[error("not a PNG, JPEG, WebP or GIF image")]
    UnsupportedFormat,
    /// The header or the data of a supported format is truncated or corrupt.
    #[error("the {format} image is corrupt or truncated: {detail}")]
    Corrupt {
        /// The format the magic bytes announced.
        format: Format,
        /// What the decoder said.
        detail: String,
    },
}

impl MediaError {
    /// This error about the `index`-th image of a request (counting from 1), for a message
    /// such as `image 2: not a PNG, JPEG, WebP or GIF image`.
    pub fn at(self, index: usize) -> IndexedError {
        IndexedError { index, error: self }
    }
}

/// A [`MediaError`] naming which image of a request it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image {index}: {error}")]
pub struct IndexedError {
    /// The image's position in the request, counting from 1.
    pub index: usize,
    /// What is wrong with it.
    #[source]
    pub error: MediaError,
}

/// An image format this module decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// PNG.
    Png,
    /// JPEG (baseline or progressive).
    Jpeg,
    /// WebP (lossy or lossless; the first frame of an animation).
    WebP,
    /// GIF (the first frame).
    Gif,
}

impl Format {
    /// The media type, e.g. `image/png`.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::WebP => "image/webp",
            Format::Gif => "image/gif",
        }
    }

    /// Recognises the format from the first bytes (magic numbers), or `None`.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Format::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Format::WebP)
        } else {
            None
        }
    }

    fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Png => image::ImageFormat::Png,
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::WebP => image::ImageFormat::WebP,
            Format::Gif => image::ImageFormat::Gif,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::WebP => "WebP",
            Format::Gif => "GIF",
        })
    }
}

/// What [`probe`] learns from an image's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The format, from the magic bytes.
    pub format: Format,
    /// Width in pixels (for GIF, the logical screen).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A decoded image: 8-bit RGB, row-major, no padding (`rgb.len() == width * height * 3`).
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels, `[r, g, b]` each, row after row from the top.
    pub rgb: Vec<u8>,
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitmap")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("rgb", &format_args!("[{} bytes]", self.rgb.len()))
            .finish()
    }
}

/// Go's `base64.StdEncoding` as `encoding/json` decodes a `[]byte`: the standard alphabet, `=`
/// padding required, non-zero trailing bits accepted (Go's decoder is not strict about them).
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Refuses a request with more images than [`Limits::max_images`].
pub fn check_count(count: usize, limits: &Limits) -> Result<(), MediaError> {
    if count > limits.max_images {
        return Err(MediaError::TooManyImages {
            count,
            max: limits.max_images,
        });
    }
    Ok(())
}

/// Decodes one image of `/api/generate` or `/api/chat`: standard base64 with `=` padding, as
/// Ollama accepts it (Go's `base64.StdEncoding`, which skips `\r` and `\n`). A `data:` URI
/// prefix is an error here, as it is in Ollama. Text whose decoded size would exceed
/// [`Limits::max_bytes`] is refused before it is decoded; so is empty text.
pub fn decode_base64(s: &str, limits: &Limits) -> Result<Vec<u8>, MediaError> {
    if s.starts_with("data:") {
        return Err(MediaError::DataUriNotAllowed);
    }
    let newlines = s.bytes().filter(|b| matches!(b, b'\r' | b'\n')).count();
    let chars = s.len() - newlines;
    let padding = s
        .bytes()
        .rev()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .take(2)
        .take_while(|b| *b == b'=')
        .count();
    // The size the text decodes to if it is valid (an upper bound if it is not).
    let decoded = (chars.div_ceil(4) * 3).saturating_sub(padding);
    if decoded == 0 {
        return Err(MediaError::Empty);
    }
    if decoded > limits.max_bytes {
        return Err(MediaError::TooLarge {
            bytes: decoded as u64,
            max: limits.max_bytes,
        });
    }
    let bytes = if newlines == 0 {
        GO_STD.decode(s)
    } else {
        let compact: Vec<u8> = s.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
        GO_STD.decode(compact)
    }
    .map_err(|e| MediaError::InvalidBase64(e.to_string()))?;
    if bytes.is_empty() {
        return Err(MediaError::Empty);
    }
    Ok(bytes)
}

/// Decodes an OpenAI `image_url`: `data:image/jpeg;base64,…` (also `jpg`, `png`, `webp`) or
/// `data:;base64,…`, the prefixes Ollama accepts (case-sensitive, as there). An `http://` or
/// `https://` URL gives [`MediaError::UrlNotSupported`]; any other prefix, or base64 that does
/// not decode, [`MediaError::InvalidImageInput`] (Ollama's texts). Size limits are those of
/// [`decode_base64`].
pub fn parse_data_uri(url: &str, limits: &Limits) -> Result<Vec<u8>, MediaError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(MediaError::UrlNotSupported);
    }
    const PREFIXES: [&str; 5] = [
        "data:;base64,",
        "data:image/jpeg;base64,",
        "data:image/jpg;base64,",
        "data:image/png;base64,",
        "data:image/webp;base64,",
    ];
    let payload = PREFIXES
        .iter()
        .find_map(|p| url.strip_prefix(p))
        .ok_or(MediaError::InvalidImageInput)?;
    match decode_base64(payload, limits) {
        Err(MediaError::InvalidBase64(_) | MediaError::DataUriNotAllowed) => {
            Err(MediaError::InvalidImageInput)
        }
        other => other,
    }
}

/// The `image` crate's limits for reading a header: no strict dimension limits (the pixel
/// count is checked by [`probe`] itself, for a clear error), and at most `max_bytes` of
/// allocations for metadata.
fn header_limits(limits: &Limits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_alloc = Some((limits.max_bytes as u64).max(1 << 20));
    l
}

/// Runs `f`, turning a panic inside a decoder into an error (decoders should not panic on bad
/// input; this keeps a bug in one from taking the server down).
fn guarded<T>(format: Format, f: impl FnOnce() -> Result<T, MediaError>) -> Result<T, MediaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(MediaError::Corrupt {
            format,
            detail: "the decoder failed".into(),
        })
    })
}

fn corrupt(format: Format, e: image::ImageError) -> MediaError {
    MediaError::Corrupt {
        format,
        detail: e.to_string(),
    }
}

/// Refuses a zero or too large pixel count.
fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::NoPixels { width, height });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    Ok(())
}

/// The dimensions a header states at a fixed place, where the format has one: PNG's IHDR, GIF's
/// logical screen, and WebP's `VP8X` canvas, `VP8L` or `VP8 ` frame header. `None` for JPEG
/// (its size is in a frame segment found by walking the segments, which the decoder does) and
/// for a header too short to hold the fields.
fn header_dimensions(format: Format, b: &[u8]) -> Option<(u32, u32)> {
    let be32 = |at: usize| Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?));
    let le16 = |at: usize| {
        Some(u32::from(u16::from_le_bytes(
            b.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let le24 = |at: usize| {
        let x = b.get(at..at + 3)?;
        Some(u32::from(x[0]) | u32::from(x[1]) << 8 | u32::from(x[2]) << 16)
    };
    match format {
        Format::Png if b.get(12..16)? == b"IHDR" => Some((be32(16)?, be32(20)?)),
        Format::Gif => Some((le16(6)?, le16(8)?)),
        Format::WebP => match b.get(12..16)? {
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            b"VP8L" if *b.get(20)? == 0x2F => {
                let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
                Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            }
            b"VP8 " if b.get(23..26)? == [0x9D, 0x01, 0x2A] => {
                Some((le16(26)? & 0x3FFF, le16(28)? & 0x3FFF))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Learns an image's format and size from its magic bytes and header alone, without
/// allocating anything for its pixels. Refuses empty input, more than [`Limits::max_bytes`],
/// a format other than PNG, JPEG, WebP or GIF, a header that does not parse, a zero width or
/// height, and more than [`Limits::max_pixels`] pixels.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(MediaError::TooLarge {
            bytes: bytes.len() as u64,
            max: limits.max_bytes,
        });
    }
    let format = Format::sniff(bytes).ok_or(MediaError::UnsupportedFormat)?;
    // The fixed-place header fields first: a header claiming too many pixels is refused even
    // when the rest of the file is missing (the decoders want more than the header).
    if let Some((width, height)) = header_dimensions(format, bytes) {
        check_pixels(width, height, limits)?;
    }
    let (width, height) = guarded(format, || {
        let mut reader = image::ImageReader::new(Cursor::new(bytes));
        reader.set_format(format.image_format());
        reader.limits(header_limits(limits));
        reader.into_dimensions().map_err(|e| corrupt(format, e))
    })?;
    check_pixels(width, height, limits)?;
    Ok(Probe {
        format,
        width,
        height,
    })
}

/// Decodes an image to an 8-bit RGB [`Bitmap`]: PNG, JPEG, WebP, or the first frame of a GIF
/// (or of an animated WebP).
///
/// [`probe`] runs first, so nothing is decoded beyond the limits; the decoder then runs with
/// the `image` crate's limits set to the probed width and height and to an allocation budget
/// of 8 bytes a pixel (16-bit RGBA) plus 64 MiB, as a second guard.
///
/// Alpha is dropped, not composited: a pixel `(r, g, b, a)` becomes `(r, g, b)` whatever `a`
/// is, as stb_image does when llama.cpp asks it for 3 channels. Grey becomes `(v, v, v)`;
/// 16-bit samples are scaled to 8 bits. Truncated or corrupt data is an error.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Bitmap, MediaError> {
    let p = probe(bytes, limits)?;
    let format = p.format;
    guarded(format, || {
        let mut l = image::Limits::default();
        l.max_image_width = Some(p.width);
        l.max_image_height = Some(p.height);
        l.max_alloc = Some(
            (u64::from(p.width) * u64::from(p.height))
                .saturating_mul(8)
                .saturating_add(64 << 20),
        );
        let mut reader = image::ImageReader::new(Cursor::new(bytes));
        reader.set_format(format.image_format());
        reader.limits(l);
        let img = reader.decode().map_err(|e| corrupt(format, e))?;
        let (width, height) = (img.width(), img.height());
        let rgb = match img {
            // The common 4-channel case, done here so that the channel drop is explicit.
            image::DynamicImage::ImageRgba8(buf) => buf
                .into_raw()
                .chunks_exact(4)
                .flat_map(|px| [px[0], px[1], px[2]])
                .collect(),
            other => other.into_rgb8().into_raw(),
        };
        Ok(Bitmap { width, height, rgb })
    })
}

#[cfg(test)]
mod tests;
