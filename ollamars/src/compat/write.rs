//! Writing a derived GGUF: the header encoded again, the data section laid out again (each
//! tensor at the running offset, padded to the alignment, as upstream's reader requires), verbatim
//! tensors streamed from the source and rewritten ones computed one at a time.

use super::View;
use crate::gguf::{MAGIC, writer};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Writes `view` as a GGUF of `version` with tensor data aligned to `alignment`, reading
/// tensor bytes from `src` (whose data section starts at `data_start`). Returns the bytes
/// written.
pub fn write_view(
    view: &View,
    version: u32,
    alignment: u32,
    src: &File,
    data_start: u64,
    out: &mut File,
) -> io::Result<u64> {
    let align = u64::from(alignment.max(1));
    let mut head = Vec::new();
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&version.to_le_bytes());
    head.extend_from_slice(&(view.tensors().len() as u64).to_le_bytes());
    head.extend_from_slice(&(view.metadata().len() as u64).to_le_bytes());
    for (k, v) in view.metadata() {
        writer::put_str(&mut head, k);
        head.extend_from_slice(&v.type_id().to_le_bytes());
        head.extend_from_slice(&writer::encode(v));
    }
    let mut next = 0u64;
    for t in view.tensors() {
        writer::put_str(&mut head, &t.name);
        head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            head.extend_from_slice(&d.to_le_bytes());
        }
        head.extend_from_slice(&t.ggml_type.id().to_le_bytes());
        head.extend_from_slice(&next.to_le_bytes());
        next = (next + t.data.len()).next_multiple_of(align);
    }
    if !view.tensors().is_empty() {
        head.resize(head.len().next_multiple_of(align as usize), 0);
    }
    out.write_all(&head)?;
    let mut written = head.len() as u64;
    let zeros = vec![0u8; align as usize];
    let mut reader = src;
    for t in view.tensors() {
        let len = t.data.len();
        if let crate::compat::Data::Src { offset, len } = t.data {
            reader.seek(SeekFrom::Start(data_start + offset))?;
            // File to file: std uses copy_file_range here, which shares extents where the
            // filesystem can.
            let copied = io::copy(&mut Read::take(reader, len), out)?;
            if copied != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("source ended inside tensor {}", t.name),
                ));
            }
        } else {
            let bytes = t.data.materialize(&mut reader, data_start)?;
            out.write_all(&bytes)?;
        }
        let pad = len.next_multiple_of(align) - len;
        out.write_all(&zeros[..pad as usize])?;
        written += len + pad;
    }
    out.flush()?;
    Ok(written)
}
