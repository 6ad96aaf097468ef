//! TFRecord framing, the container format of TensorBoard event files.
//!
//! Each record is
//!
//! ```text
//! u64 length (little-endian)
//! u32 masked_crc32c(length bytes)
//! [u8; length] data
//! u32 masked_crc32c(data)
//! ```
//!
//! where the masked CRC is the CRC-32C (Castagnoli) rotated right by 15 bits plus
//! `0xa282ead8`, all modulo 2^32.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::error::{Result, TensorBoardError};

const MASK_DELTA: u32 = 0xa282_ead8;

/// The masked CRC-32C of `data` used by TFRecord framing.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    // ((crc >> 15) | (crc << 17)) + 0xa282ead8, as in TensorFlow's crc32c::Mask.
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Writes `data` as one framed record to `w`.
pub fn write_record<W: Write>(w: &mut W, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    let mut header = [0u8; 12];
    header[..8].copy_from_slice(&len);
    header[8..].copy_from_slice(&masked_crc32c(&len).to_le_bytes());
    w.write_all(&header)?;
    w.write_all(data)?;
    w.write_all(&masked_crc32c(data).to_le_bytes())
}

/// Reads framed records from a byte stream, verifying both CRCs of every record.
///
/// Errors (IO, truncation, CRC mismatch) name the file and the byte offset of the record.
/// After the first error the reader yields nothing more.
#[derive(Debug)]
pub struct RecordReader<R> {
    inner: R,
    path: PathBuf,
    offset: u64,
    done: bool,
}

impl<R: Read> RecordReader<R> {
    /// Wraps `inner`; `path` is used in error messages only.
    pub fn new(inner: R, path: impl AsRef<Path>) -> Self {
        RecordReader {
            inner,
            path: path.as_ref().to_path_buf(),
            offset: 0,
            done: false,
        }
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record's data, `Ok(None)` at a clean end of file (between records).
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_one();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn read_one(&mut self) -> Result<Option<Vec<u8>>> {
        let start = self.offset;
        let mut header = [0u8; 12];
        let n = self.read_full(&mut header)?;
        if n == 0 {
            return Ok(None);
        }
        if n < header.len() {
            return Err(self.truncated(start, "length header"));
        }
        let len_bytes: [u8; 8] = header[..8].try_into().expect("8-byte slice");
        let stored = u32::from_le_bytes(header[8..].try_into().expect("4-byte slice"));
        let computed = masked_crc32c(&len_bytes);
        if stored != computed {
            return Err(self.checksum(start, "length", stored, computed));
        }
        let len = u64::from_le_bytes(len_bytes);

        // The length is CRC-checked, but still never trust it for an up-front allocation.
        let mut data = Vec::with_capacity(len.min(1 << 20) as usize);
        let got = (&mut self.inner)
            .take(len)
            .read_to_end(&mut data)
            .map_err(|source| self.read_error(source))?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(self.truncated(start, "data"));
        }

        let mut crc = [0u8; 4];
        if self.read_full(&mut crc)? < crc.len() {
            return Err(self.truncated(start, "data CRC"));
        }
        let stored = u32::from_le_bytes(crc);
        let computed = masked_crc32c(&data);
        if stored != computed {
            return Err(self.checksum(start, "data", stored, computed));
        }
        Ok(Some(data))
    }

    /// Reads until `buf` is full or end of file; returns the number of bytes read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.read_error(source)),
            }
        }
        self.offset += filled as u64;
        Ok(filled)
    }

    fn read_error(&self, source: io::Error) -> TensorBoardError {
        TensorBoardError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn truncated(&self, offset: u64, what: &'static str) -> TensorBoardError {
        TensorBoardError::Truncated {
            path: self.path.clone(),
            offset,
            what,
        }
    }

    fn checksum(
        &self,
        offset: u64,
        what: &'static str,
        stored: u32,
        computed: u32,
    ) -> TensorBoardError {
        TensorBoardError::Checksum {
            path: self.path.clone(),
            offset,
            what,
            stored,
            computed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vector() {
        // The CRC-32C check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn masked_crc_matches_tensorflow() {
        // Masking as in tensorflow/core/lib/hash/crc32c.h, computed independently.
        let crc: u32 = 0xe306_9283;
        let want = crc.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), want);
        // Empty input: crc 0 masks to the delta itself.
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    }

    #[test]
    fn round_trip_records() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"hello").unwrap();
        write_record(&mut buf, b"").unwrap();
        write_record(&mut buf, &[7u8; 1000]).unwrap();
        assert_eq!(buf.len(), 3 * 16 + 5 + 1000);
        let mut r = RecordReader::new(&buf[..], "mem");
        assert_eq!(r.next_record().unwrap().unwrap(), b"hello");
        assert_eq!(r.next_record().unwrap().unwrap(), b"");
        assert_eq!(r.next_record().unwrap().unwrap(), vec![7u8; 1000]);
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(r.offset(), buf.len() as u64);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"some record data").unwrap();
        for cut in 1..buf.len() {
            let mut r = RecordReader::new(&buf[..cut], "mem");
            let err = r.next_record().unwrap_err();
            assert!(
                matches!(err, TensorBoardError::Truncated { offset: 0, .. }),
                "cut {cut}: {err}"
            );
            assert!(
                r.next_record().unwrap().is_none(),
                "reader stops after an error"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"payload").unwrap();
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                let res = RecordReader::new(&bad[..], "mem").next_record();
                assert!(
                    matches!(res, Err(TensorBoardError::Checksum { offset: 0, .. })),
                    "flip byte {byte} bit {bit}: {res:?}"
                );
            }
        }
    }

    #[test]
    fn huge_length_with_valid_crc_does_not_allocate_it() {
        let len = u64::MAX.to_le_bytes();
        let mut buf = len.to_vec();
        buf.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        buf.extend_from_slice(b"short");
        let err = RecordReader::new(&buf[..], "mem")
            .next_record()
            .unwrap_err();
        assert!(
            matches!(err, TensorBoardError::Truncated { what: "data", .. }),
            "{err}"
        );
    }
}
