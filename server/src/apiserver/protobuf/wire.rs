//! The protobuf wire format: varints, tags and length-delimited fields.

use thiserror::Error;

/// How a field's value is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl WireType {
    fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

impl std::fmt::Display for WireType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with the bytes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The data ends inside a varint.
    #[error("truncated varint at byte {0}")]
    TruncatedVarint(usize),
    /// A varint longer than 10 bytes.
    #[error("varint longer than 10 bytes at byte {0}")]
    VarintTooLong(usize),
    /// A length or fixed-size value runs past the end.
    #[error("{needed} bytes wanted at byte {at}, only {left} left")]
    Truncated {
        /// Where the value starts.
        at: usize,
        /// Its length.
        needed: u64,
        /// What is left of the data.
        left: usize,
    },
    /// Wire types 3 and 4 (groups) or 6 and 7 (undefined).
    #[error("unsupported wire type {wire_type} at byte {at}")]
    UnsupportedWireType {
        /// Where the field key starts.
        at: usize,
        /// The wire type.
        wire_type: u8,
    },
    /// Field number 0 or above 2^29 - 1.
    #[error("invalid field number {tag} at byte {at}")]
    InvalidTag {
        /// Where the field key starts.
        at: usize,
        /// The field number.
        tag: u64,
    },
    /// The schema wants another wire type for the field.
    #[error("field {tag} is {found}, expected {expected}")]
    WrongWireType {
        /// The field number.
        tag: u32,
        /// What the schema wants.
        expected: &'static str,
        /// What the data has.
        found: &'static str,
    },
}

/// One field read from a message.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Len(&'a [u8]),
}

impl Value<'_> {
    pub fn wire_type(&self) -> WireType {
        match self {
            Value::Varint(_) => WireType::Varint,
            Value::Fixed64(_) => WireType::Fixed64,
            Value::Fixed32 => WireType::Fixed32,
            Value::Len(_) => WireType::Len,
        }
    }

    /// An error for a field whose value is not what the schema wants.
    pub fn wrong(&self, tag: u32, expected: WireType) -> WireError {
        WireError::WrongWireType {
            tag,
            expected: expected.name(),
            found: self.wire_type().name(),
        }
    }
}

/// Reads fields off a message's bytes.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next varint.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.data.get(self.pos) else {
                return Err(WireError::TruncatedVarint(start));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::VarintTooLong(start))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        let left = self.data.len() - self.pos;
        if len > left as u64 {
            return Err(WireError::Truncated {
                at: self.pos,
                needed: len,
                left,
            });
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.data[start..self.pos])
    }

    /// The next 8 bytes, little-endian (a packed double).
    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(fixed(self.take(8)?)))
    }

    /// The next field: its number and value.
    pub fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let at = self.pos;
        let key = self.varint()?;
        let tag = key >> 3;
        if tag == 0 || tag > (1 << 29) - 1 {
            return Err(WireError::InvalidTag { at, tag });
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(self.fixed64()?),
            2 => {
                let len = self.varint()?;
                Value::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            other => {
                return Err(WireError::UnsupportedWireType {
                    at,
                    wire_type: other as u8,
                });
            }
        };
        Ok((tag as u32, value))
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varints_of_every_length() {
        let mut r = Reader::new(&[
            0x00, 0x96, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
        assert_eq!(r.varint(), Ok(0));
        assert_eq!(r.varint(), Ok(150));
        assert_eq!(r.varint(), Ok(u64::MAX));
        assert!(r.at_end());
    }

    #[test]
    fn rejects_bad_data() {
        assert_eq!(
            Reader::new(&[0x80]).varint(),
            Err(WireError::TruncatedVarint(0))
        );
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(WireError::VarintTooLong(0))
        );
        assert_eq!(
            Reader::new(&[0x0a, 0x05, b'a']).field().unwrap_err(),
            WireError::Truncated {
                at: 2,
                needed: 5,
                left: 1
            }
        );
        assert_eq!(
            Reader::new(&[0x0b]).field().unwrap_err(),
            WireError::UnsupportedWireType {
                at: 0,
                wire_type: 3
            }
        );
        assert_eq!(
            Reader::new(&[0x02, 0x00]).field().unwrap_err(),
            WireError::InvalidTag { at: 0, tag: 0 }
        );
    }
}
