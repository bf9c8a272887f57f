//! The IDX format of MNIST and Fashion-MNIST (`yann.lecun.com/exdb/mnist`): a 4-byte magic
//! (`0, 0, type, ndims`), `ndims` big-endian `u32` sizes, then the data. Files may be gzipped.

use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::GzBuilder;
use flate2::read::GzDecoder;

use crate::error::DataError;

/// An unsigned-byte IDX array.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// Sizes of each dimension.
    pub dims: Vec<usize>,
    /// Row-major bytes.
    pub data: Vec<u8>,
}

/// Reads an unsigned-byte IDX file, gunzipping it when it starts with the gzip magic.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip stream: {e}")))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|m| DataError::format(path, m))
}

/// Parses IDX bytes (not gzipped).
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file: expected magic 00 00 <type> <ndims>".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "IDX type 0x{:02x}: only unsigned bytes (0x08) are supported",
            bytes[2]
        ));
    }
    let ndims = bytes[3] as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(format!(
            "truncated IDX header: {} bytes for {ndims} dimensions",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().unwrap()) as usize)
        .collect();
    let expected: usize = dims.iter().product();
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(format!(
            "IDX dims {dims:?} need {expected} data bytes, found {}",
            data.len()
        ));
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

/// Writes an unsigned-byte IDX file, gzipped (deterministically: no name, mtime 0) when
/// `gzip` is set.
pub fn write_idx(path: &Path, array: &IdxArray, gzip: bool) -> Result<(), DataError> {
    let mut bytes = vec![0, 0, 0x08, array.dims.len() as u8];
    for &d in &array.dims {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(&array.data);
    let out = if gzip {
        let mut enc = GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), Compression::best());
        enc.write_all(&bytes).map_err(|e| DataError::io(path, e))?;
        enc.finish().map_err(|e| DataError::io(path, e))?
    } else {
        bytes
    };
    std::fs::write(path, out).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_gzip_and_raw() {
        let dir = std::env::temp_dir().join(format!("unmix-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = IdxArray {
            dims: vec![2, 2, 3],
            data: (0..12).collect(),
        };
        for gz in [true, false] {
            let p = dir.join(format!("a{gz}.idx"));
            write_idx(&p, &a, gz).unwrap();
            assert_eq!(read_idx(&p).unwrap(), a);
        }
    }

    #[test]
    fn bad_files_name_the_problem() {
        assert!(parse_idx(&[1, 2, 3]).unwrap_err().contains("magic"));
        let short = [0, 0, 8, 1, 0, 0, 0, 5, 1, 2];
        assert!(
            parse_idx(&short)
                .unwrap_err()
                .contains("need 5 data bytes, found 2")
        );
        let dir = std::env::temp_dir();
        let p = dir.join(format!("unmix-bad-{}.gz", std::process::id()));
        std::fs::write(&p, [0x1f, 0x8b, 0, 1, 2]).unwrap();
        let err = read_idx(&p).unwrap_err().to_string();
        assert!(
            err.contains(p.to_str().unwrap()) && err.contains("gzip"),
            "{err}"
        );
    }
}
