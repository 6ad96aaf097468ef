//! Helpers shared by the `kiln` integration tests.

use std::path::Path;

/// Rewrites the header metadata of a safetensors file (the tensor bytes after the header
/// are addressed relative to its end, so the header may change length).
pub fn edit_metadata(
    file: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let bytes = std::fs::read(file).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    edit(header["__metadata__"].as_object_mut().unwrap());
    let mut header = header.to_string();
    // Padded to 8 bytes as safetensors writers do, and clear of the lengths whose first two
    // bytes (0x80, 2..=5) kiln-runtime's loader takes for a PyTorch pickle's signature.
    while !header.len().is_multiple_of(8) || matches!(header.len().to_le_bytes(), [0x80, 2..=5, ..])
    {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes[8 + len..]);
    std::fs::write(file, out).unwrap();
}
