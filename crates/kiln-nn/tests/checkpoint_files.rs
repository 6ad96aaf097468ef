//! safetensors checkpoints: hostile headers are typed errors, PyTorch pickles are recognized
//! with advice, and the same state dict always gives the same bytes.

use kiln_core::{DType, Tensor};
use kiln_nn::checkpoint::{self, CheckpointError};
use kiln_nn::StateDict;
use std::collections::HashMap;

fn file_with_header(header: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes
}

#[test]
fn a_shape_past_memory_is_an_error_not_a_panic() {
    // The 96-byte file of issue 20: an empty tensor whose second dim is 2^63.
    let bytes = file_with_header(
        br#"{"w":{"dtype":"F32","shape":[0,9223372036854775808],"data_offsets":[0,0]}}"#,
    );
    let err = checkpoint::from_safetensors_bytes(&bytes).unwrap_err();
    assert!(
        matches!(err, CheckpointError::BadTensor { ref name, .. } if name == "w"),
        "{err}"
    );
    assert!(err.to_string().contains("is too large"), "{err}");
}

#[test]
fn a_pytorch_pickle_is_recognized_and_the_message_says_how_to_convert_it() {
    let dir = tempfile::tempdir().unwrap();
    // torch.save since PyTorch 1.6 writes a zip archive; before, a bare pickle (protocol 2).
    for (name, head) in [
        ("zip.pt", &b"PK\x03\x04\x00\x00\x08\x08"[..]),
        (
            "legacy.pth",
            &b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19."[..],
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, head).unwrap();
        let err = checkpoint::load(&p).unwrap_err();
        assert!(
            matches!(err, CheckpointError::PyTorchPickle { .. }),
            "{name}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("safetensors.torch import save_file"), "{msg}");
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn a_checkpoint_whose_header_length_reads_like_a_pickle_loads() {
    // A 640-byte header makes the file start 80 02 00 00 …, a pickle's first two bytes; the
    // `{` at byte 8 says it is safetensors. (A `kiln train` checkpoint once had one.)
    let mut sd = StateDict::new();
    sd.insert("w", Tensor::from_vec(vec![1.0f32, 2.0], [2]));
    for header_len in [640u64, 896, 1152, 1408, 640 + 65536] {
        // Pad the metadata until the header has the length wanted (the JSON grows by one byte
        // per byte of value).
        let mut pad = 0;
        let bytes = loop {
            let meta = HashMap::from([("pad".to_string(), "x".repeat(pad))]);
            let bytes = checkpoint::to_bytes(&sd, &meta);
            let len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            if len >= header_len {
                assert_eq!(len, header_len, "padding overshot");
                break bytes;
            }
            pad += (header_len - len) as usize;
        };
        assert_eq!(bytes[0], 0x80);
        let (back, _) = checkpoint::from_safetensors_bytes(&bytes)
            .unwrap_or_else(|e| panic!("header of {header_len} bytes: {e}"));
        assert_eq!(back.get("w").unwrap().to_vec::<f32>(), [1.0, 2.0]);
    }
}

#[test]
fn the_same_state_dict_and_metadata_always_give_the_same_bytes() {
    let mut sd = StateDict::new();
    sd.insert("b", Tensor::from_vec(vec![1.0f32, 2.0], [2]));
    sd.insert("a.weight", Tensor::from_vec(vec![3i64, 4, 5], [3]));
    // Several metadata keys: safetensors writes its map in hash order, which differs between
    // maps (each HashMap has its own random seed).
    let meta = |order: &[usize]| {
        let kv = [("z", "1"), ("kiln.x", "{\"q\":1}"), ("m", "2"), ("a", "3")];
        let mut m = HashMap::new();
        for &i in order {
            m.insert(kv[i].0.to_string(), kv[i].1.to_string());
        }
        m
    };
    let first = checkpoint::to_bytes(&sd, &meta(&[0, 1, 2, 3]));
    for order in [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
        for _ in 0..4 {
            assert_eq!(checkpoint::to_bytes(&sd, &meta(&order)), first);
        }
    }
    // Still a valid safetensors file, with the header padded to 8 bytes.
    let n = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let (back, m) = checkpoint::from_safetensors_bytes(&first).unwrap();
    assert_eq!(m["kiln.x"], "{\"q\":1}");
    assert_eq!(back.get("b").unwrap().to_vec::<f32>(), vec![1.0, 2.0]);
    assert_eq!(back.get("a.weight").unwrap().dtype(), DType::I64);
}
