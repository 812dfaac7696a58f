//! Raw RLP item access on top of `alloy-rlp`'s canonical header decoder: QBFT needs the exact
//! bytes of every item so that re-encoding reproduces the input.

use crate::QbftError;

/// One RLP item as it appeared on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawItem<'a> {
    /// The full encoding (header and payload).
    pub(crate) raw: &'a [u8],
    /// The payload (for a single byte below 0x80, the byte itself).
    pub(crate) payload: &'a [u8],
    /// Whether the item is a list.
    pub(crate) list: bool,
}

/// Decodes exactly one item spanning all of `bytes`.
pub(crate) fn item<'a>(bytes: &'a [u8], what: &'static str) -> Result<RawItem<'a>, QbftError> {
    let (it, rest) = next_item(bytes)?;
    if !rest.is_empty() {
        return Err(QbftError::TrailingBytes {
            what,
            extra: rest.len(),
        });
    }
    Ok(it)
}

/// Decodes the first item of `bytes` and returns it with the remaining bytes.
pub(crate) fn next_item(bytes: &[u8]) -> Result<(RawItem<'_>, &[u8]), QbftError> {
    let mut buf = bytes;
    let header = alloy_rlp::Header::decode(&mut buf)?;
    let header_len = bytes.len() - buf.len();
    let total = if header_len == 0 {
        // A single byte below 0x80 is its own encoding: the decoder consumed nothing.
        1
    } else {
        header_len + header.payload_length
    };
    if bytes.len() < total {
        return Err(QbftError::Rlp("input too short".into()));
    }
    let raw = &bytes[..total];
    let payload = if header_len == 0 {
        raw
    } else {
        &raw[header_len..]
    };
    Ok((
        RawItem {
            raw,
            payload,
            list: header.list,
        },
        &bytes[total..],
    ))
}

/// Splits a list item into its raw child items.
pub(crate) fn list_items<'a>(
    it: RawItem<'a>,
    what: &'static str,
) -> Result<Vec<RawItem<'a>>, QbftError> {
    if !it.list {
        return Err(QbftError::ItemKind {
            what,
            expected: "list",
        });
    }
    let mut rest = it.payload;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (child, tail) = next_item(rest)?;
        items.push(child);
        rest = tail;
    }
    Ok(items)
}

/// The payload of a string item.
pub(crate) fn string<'a>(it: RawItem<'a>, what: &'static str) -> Result<&'a [u8], QbftError> {
    if it.list {
        return Err(QbftError::ItemKind {
            what,
            expected: "string",
        });
    }
    Ok(it.payload)
}

/// A string item of exactly `N` bytes.
pub(crate) fn fixed<const N: usize>(
    it: RawItem<'_>,
    what: &'static str,
) -> Result<[u8; N], QbftError> {
    let bytes = string(it, what)?;
    bytes.try_into().map_err(|_| QbftError::FieldLength {
        what,
        got: bytes.len(),
        expected: N,
    })
}

/// A minimal big-endian unsigned scalar of at most 8 bytes.
pub(crate) fn scalar_u64(it: RawItem<'_>, what: &'static str) -> Result<u64, QbftError> {
    let bytes = string(it, what)?;
    if bytes.len() > 8 || bytes.first() == Some(&0) {
        return Err(QbftError::BadScalar { what, max_bytes: 8 });
    }
    Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Encodes a list whose children are already encoded.
pub(crate) fn encode_list<'a>(children: impl IntoIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let payload_length: usize = children.clone().into_iter().map(<[u8]>::len).sum();
    let mut out = Vec::with_capacity(payload_length + 9);
    alloy_rlp::Header {
        list: true,
        payload_length,
    }
    .encode(&mut out);
    for child in children {
        out.extend_from_slice(child);
    }
    out
}

/// Encodes a byte string.
pub(crate) fn encode_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 9);
    alloy_rlp::Encodable::encode(bytes, &mut out);
    out
}
