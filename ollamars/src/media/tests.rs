use super::*;

use base64::engine::general_purpose::STANDARD;
use image::{ImageEncoder, RgbImage, RgbaImage};

/// A small image with distinct pixels: red rises along x, green along y, blue alternates.
fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w.max(2).saturating_sub(1)) as u8,
            (y * 255 / h.max(2).saturating_sub(1)) as u8,
            if (x + y) % 2 == 0 { 40 } else { 200 },
        ])
    })
}

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn png(img: &RgbImage) -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgb8(img.clone()),
        image::ImageFormat::Png,
    )
}

/// A PNG signature and IHDR chunk (with a correct CRC) claiming `w`×`h`, 8-bit RGB, and no
/// image data at all.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, no filter, no interlace
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    out
}

#[test]
fn png_round_trips_exactly() {
    let img = pattern(7, 5);
    let bytes = png(&img);
    let l = Limits::default();
    assert_eq!(
        probe(&bytes, &l).unwrap(),
        Probe {
            format: Format::Png,
            width: 7,
            height: 5
        }
    );
    let bmp = decode(&bytes, &l).unwrap();
    assert_eq!((bmp.width, bmp.height), (7, 5));
    assert_eq!(bmp.rgb.len(), 7 * 5 * 3);
    assert_eq!(bmp.rgb, img.into_raw());
}

#[test]
fn rgba_png_drops_alpha_without_compositing() {
    let img = RgbaImage::from_fn(3, 2, |x, y| {
        image::Rgba([
            10 * x as u8 + 1,
            20 * y as u8 + 2,
            99,
            [0, 128, 255][x as usize],
        ])
    });
    let bytes = encode(
        &image::DynamicImage::ImageRgba8(img.clone()),
        image::ImageFormat::Png,
    );
    let bmp = decode(&bytes, &Limits::default()).unwrap();
    let want: Vec<u8> = img.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
    assert_eq!(bmp.rgb, want);
    // A fully transparent pixel keeps its colour (no blending towards black or white).
    assert_eq!(&bmp.rgb[..3], &[1, 2, 99]);
}

#[test]
fn grey_alpha_png_becomes_grey_rgb() {
    let img =
        image::GrayAlphaImage::from_fn(2, 2, |x, y| image::LumaA([(x * 100 + y * 50) as u8, 0]));
    let bytes = encode(
        &image::DynamicImage::ImageLumaA8(img.clone()),
        image::ImageFormat::Png,
    );
    let bmp = decode(&bytes, &Limits::default()).unwrap();
    let want: Vec<u8> = img.pixels().flat_map(|p| [p[0], p[0], p[0]]).collect();
    assert_eq!(bmp.rgb, want);
}

#[test]
fn jpeg_round_trips_to_size_and_roughly_the_colours() {
    let img = RgbImage::from_pixel(16, 8, image::Rgb([200, 30, 90]));
    let bytes = encode(
        &image::DynamicImage::ImageRgb8(img),
        image::ImageFormat::Jpeg,
    );
    let l = Limits::default();
    assert_eq!(probe(&bytes, &l).unwrap().format, Format::Jpeg);
    let bmp = decode(&bytes, &l).unwrap();
    assert_eq!((bmp.width, bmp.height), (16, 8));
    assert_eq!(bmp.rgb.len(), 16 * 8 * 3);
    for px in bmp.rgb.chunks_exact(3) {
        for (got, want) in px.iter().zip([200u8, 30, 90]) {
            assert!(got.abs_diff(want) <= 8, "pixel {px:?}");
        }
    }
}

#[test]
fn lossless_webp_round_trips_exactly() {
    let img = pattern(9, 4);
    let mut bytes = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut bytes)
        .write_image(img.as_raw(), 9, 4, image::ExtendedColorType::Rgb8)
        .unwrap();
    let l = Limits::default();
    assert_eq!(probe(&bytes, &l).unwrap().format, Format::WebP);
    let bmp = decode(&bytes, &l).unwrap();
    assert_eq!((bmp.width, bmp.height), (9, 4));
    assert_eq!(bmp.rgb, img.into_raw());
}

#[test]
fn gif_decodes_its_first_frame() {
    // Few colours, so that the palette keeps them exactly.
    let colours = [[255u8, 0, 0, 255], [0, 0, 255, 255]];
    let frame = |flip: usize| {
        RgbaImage::from_fn(6, 3, |x, _| image::Rgba(colours[(x as usize + flip) % 2]))
    };
    let mut bytes = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut bytes);
        enc.encode_frames([image::Frame::new(frame(0)), image::Frame::new(frame(1))])
            .unwrap();
    }
    let l = Limits::default();
    assert_eq!(
        probe(&bytes, &l).unwrap(),
        Probe {
            format: Format::Gif,
            width: 6,
            height: 3
        }
    );
    let bmp = decode(&bytes, &l).unwrap();
    assert_eq!((bmp.width, bmp.height), (6, 3));
    let want: Vec<u8> = frame(0).pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
    assert_eq!(bmp.rgb, want);
}

#[test]
fn truncated_png_is_an_error() {
    let bytes = png(&pattern(32, 32));
    let l = Limits::default();
    for cut in [bytes.len() / 2, bytes.len() - 13, 40, 20, 9] {
        let err = decode(&bytes[..cut], &l).unwrap_err();
        assert!(
            matches!(
                err,
                MediaError::Corrupt {
                    format: Format::Png,
                    ..
                }
            ),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn corrupt_data_after_a_valid_header_is_an_error() {
    let mut bytes = png(&pattern(32, 32));
    // Scramble everything after the IHDR chunk (signature 8 + IHDR 25 bytes).
    for (i, b) in bytes.iter_mut().enumerate().skip(33) {
        *b = (i as u8).wrapping_mul(151) ^ 0x5A;
    }
    assert!(matches!(
        decode(&bytes, &Limits::default()),
        Err(MediaError::Corrupt { .. })
    ));
}

#[test]
fn huge_png_header_is_refused_without_decoding() {
    let bytes = png_header(20000, 20000);
    let l = Limits::default();
    let want = MediaError::TooManyPixels {
        width: 20000,
        height: 20000,
        max: Limits::DEFAULT_MAX_PIXELS,
    };
    assert_eq!(probe(&bytes, &l), Err(want.clone()));
    assert_eq!(decode(&bytes, &l), Err(want));
    // The same header within the limits fails for want of data (no panic): the refusal
    // above is the pixel count.
    let small = png_header(640, 480);
    assert!(matches!(probe(&small, &l), Err(MediaError::Corrupt { .. })));
    assert!(matches!(
        decode(&small, &l),
        Err(MediaError::Corrupt { .. })
    ));
    // A GIF logical screen of 65535x65535 is refused from its first 10 bytes.
    let gif = b"GIF89a\xff\xff\xff\xff\0\0\0";
    assert!(matches!(
        probe(gif, &l),
        Err(MediaError::TooManyPixels {
            width: 65535,
            height: 65535,
            ..
        })
    ));
}

#[test]
fn pixel_limit_is_configurable() {
    let bytes = png(&pattern(10, 10));
    let l = Limits {
        max_pixels: 99,
        ..Limits::default()
    };
    assert!(matches!(
        probe(&bytes, &l),
        Err(MediaError::TooManyPixels {
            width: 10,
            height: 10,
            max: 99
        })
    ));
    let l = Limits {
        max_pixels: 100,
        ..Limits::default()
    };
    assert!(decode(&bytes, &l).is_ok());
}

#[test]
fn zero_width_header_is_refused() {
    let err = probe(&png_header(0, 10), &Limits::default()).unwrap_err();
    // The png crate already rejects it as invalid; either way it is refused.
    assert!(
        matches!(
            err,
            MediaError::NoPixels { .. } | MediaError::Corrupt { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn empty_and_non_images_are_refused() {
    let l = Limits::default();
    assert_eq!(probe(&[], &l), Err(MediaError::Empty));
    assert_eq!(decode(&[], &l), Err(MediaError::Empty));
    // Deterministic pseudo-random bytes (an LCG), whose first bytes are no image magic.
    let mut x: u32 = 12345;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    assert_eq!(Format::sniff(&noise), None);
    assert_eq!(probe(&noise, &l), Err(MediaError::UnsupportedFormat));
    assert_eq!(decode(&noise, &l), Err(MediaError::UnsupportedFormat));
    assert_eq!(
        decode(b"hello, world", &l),
        Err(MediaError::UnsupportedFormat)
    );
    // Magic bytes followed by noise: a format, but corrupt.
    for magic in [
        &b"\x89PNG\r\n\x1a\n"[..],
        b"GIF89a",
        &[0xFF, 0xD8, 0xFF],
        b"RIFF\0\0\0\0WEBP",
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&noise);
        let err = decode(&bytes, &l).unwrap_err();
        assert!(
            matches!(err, MediaError::Corrupt { .. }),
            "{magic:?}: {err:?}"
        );
    }
    // Only the magic, nothing after it.
    for magic in [
        &b"\x89PNG\r\n\x1a\n"[..],
        b"GIF89a",
        &[0xFF, 0xD8, 0xFF],
        b"RIFF\0\0\0\0WEBP",
    ] {
        assert!(decode(magic, &l).is_err());
    }
}

#[test]
fn encoded_size_limit_applies_to_bytes() {
    let bytes = png(&pattern(8, 8));
    let l = Limits {
        max_bytes: bytes.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        probe(&bytes, &l),
        Err(MediaError::TooLarge {
            bytes: bytes.len() as u64,
            max: bytes.len() - 1
        })
    );
}

#[test]
fn base64_decodes_as_go_does() {
    let l = Limits::default();
    let bytes = png(&pattern(4, 4));
    let text = STANDARD.encode(&bytes);
    assert_eq!(decode_base64(&text, &l).unwrap(), bytes);
    // Go's decoder skips \r and \n (wrapped base64).
    let wrapped: String = text
        .as_bytes()
        .chunks(19)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    assert_eq!(decode_base64(&wrapped, &l).unwrap(), bytes);
    assert_eq!(decode_base64("QQ==", &l).unwrap(), b"A");
    // Non-zero trailing bits are accepted, as Go's non-strict decoder does.
    assert_eq!(decode_base64("QR==", &l).unwrap(), b"A");
}

#[test]
fn invalid_base64_is_refused() {
    let l = Limits::default();
    for bad in ["QQ", "QQ=", "Q", "@@@@", "QUJD-w==", "QUJD_w==", "QU JD"] {
        assert!(
            matches!(decode_base64(bad, &l), Err(MediaError::InvalidBase64(_))),
            "{bad:?}"
        );
    }
    assert_eq!(decode_base64("", &l), Err(MediaError::Empty));
    assert_eq!(decode_base64("\r\n", &l), Err(MediaError::Empty));
    assert_eq!(
        decode_base64("data:image/png;base64,QQ==", &l),
        Err(MediaError::DataUriNotAllowed)
    );
}

#[test]
fn oversized_base64_is_refused_before_decoding() {
    let l = Limits::default();
    // 50 MiB of data as base64, with an invalid character at the end: decoding it would fail
    // with InvalidBase64, so TooLarge shows the size was checked first.
    let mut text = "A".repeat(50 * 1024 * 1024 / 3 * 4);
    text.push_str("!!!!");
    assert!(matches!(
        decode_base64(&text, &l),
        Err(MediaError::TooLarge { max, .. }) if max == Limits::DEFAULT_MAX_BYTES
    ));
    // Exactly at the limit is fine.
    let l = Limits {
        max_bytes: 6,
        ..Limits::default()
    };
    assert_eq!(decode_base64("QUJDREVG", &l).unwrap(), b"ABCDEF");
    assert_eq!(decode_base64("QUJDREU=", &l).unwrap(), b"ABCDE");
    assert!(matches!(
        decode_base64("QUJDREVGRw==", &l),
        Err(MediaError::TooLarge { bytes: 7, max: 6 })
    ));
}

#[test]
fn data_uris_with_each_accepted_prefix() {
    let l = Limits::default();
    let bytes = png(&pattern(3, 3));
    let b64 = STANDARD.encode(&bytes);
    for prefix in [
        "data:image/jpeg;base64,",
        "data:image/jpg;base64,",
        "data:image/png;base64,",
        "data:image/webp;base64,",
        "data:;base64,",
    ] {
        assert_eq!(
            parse_data_uri(&format!("{prefix}{b64}"), &l).unwrap(),
            bytes,
            "{prefix}"
        );
    }
}

#[test]
fn data_uri_refusals() {
    let l = Limits::default();
    let b64 = STANDARD.encode(png(&pattern(3, 3)));
    for url in [
        format!("data:image/gif;base64,{b64}"),
        format!("data:text/plain;base64,{b64}"),
        format!("data:image/png,{b64}"),
        format!("DATA:image/png;base64,{b64}"),
        b64.clone(),
        "data:image/png;base64,@@@@".to_string(),
        "ftp://example.invalid/cat.png".to_string(),
    ] {
        assert_eq!(
            parse_data_uri(&url, &l),
            Err(MediaError::InvalidImageInput),
            "{url:.40}"
        );
    }
    for url in [
        "http://example.invalid/cat.png",
        "https://example.invalid/cat.png",
    ] {
        let err = parse_data_uri(url, &l).unwrap_err();
        assert_eq!(err, MediaError::UrlNotSupported);
        assert_eq!(
            err.to_string(),
            "image URLs are not currently supported, please use base64 encoded data instead"
        );
    }
    assert_eq!(parse_data_uri("data:;base64,", &l), Err(MediaError::Empty));
}

#[test]
fn counts_and_messages() {
    let l = Limits::default();
    assert!(check_count(64, &l).is_ok());
    assert_eq!(
        check_count(65, &l),
        Err(MediaError::TooManyImages { count: 65, max: 64 })
    );
    assert_eq!(
        MediaError::UnsupportedFormat.at(2).to_string(),
        "image 2: not a PNG, JPEG, WebP or GIF image"
    );
    assert_eq!(
        MediaError::TooManyPixels {
            width: 20000,
            height: 20000,
            max: 67_108_864
        }
        .at(1)
        .to_string(),
        "image 1: the image is 20000x20000 pixels, more than the limit of 67108864 pixels"
    );
}

#[test]
fn huge_lossless_webp_header_is_refused() {
    let mut bytes = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut bytes)
        .write_image(&[1, 2, 3], 1, 1, image::ExtendedColorType::Rgb8)
        .unwrap();
    assert_eq!(&bytes[12..16], b"VP8L");
    assert_eq!(bytes[20], 0x2F);
    // 14 bits of width - 1 and 14 of height - 1: 16384 x 16384.
    let mut bits = u32::from_le_bytes(bytes[21..25].try_into().unwrap());
    bits |= 0x0FFF_FFFF;
    bytes[21..25].copy_from_slice(&bits.to_le_bytes());
    assert!(matches!(
        probe(&bytes, &Limits::default()),
        Err(MediaError::TooManyPixels {
            width: 16384,
            height: 16384,
            ..
        })
    ));
}
