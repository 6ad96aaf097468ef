//! A safetensors file split into its JSON header and data section, for mutations that keep the
//! framing valid and reach the checks behind the parser.

use serde_json::Value;

/// The header (parsed) and the bytes after it.
pub struct Parts {
    /// The JSON header: tensor entries and `__metadata__`.
    pub header: Value,
    /// The data section.
    pub data: Vec<u8>,
}

/// Splits a well-formed file (seeds are).
pub fn split(bytes: &[u8]) -> Option<Parts> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    Some(Parts {
        header,
        data: bytes[8 + n..].to_vec(),
    })
}

/// Joins a header and data section into a file, the header padded to 8 bytes.
pub fn join(parts: &Parts) -> Vec<u8> {
    let mut json = serde_json::to_vec(&parts.header).expect("a Value serializes");
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&parts.data);
    out
}

/// Mutates the JSON document stored as the string `key` of a file's `__metadata__` (the graph
/// of a graph file, the training state of a trainer checkpoint); `None` when there is none.
pub fn mutate_metadata_json(
    rng: &mut crate::rng::Rng,
    file: &[u8],
    key: &str,
    names: &[&str],
) -> Option<Vec<u8>> {
    let mut parts = split(file)?;
    let text = parts.header["__metadata__"][key].as_str()?;
    let mut doc: Value = serde_json::from_str(text).ok()?;
    crate::mutate::json(rng, &mut doc, names);
    parts.header["__metadata__"][key] = Value::String(doc.to_string());
    Some(join(&parts))
}
