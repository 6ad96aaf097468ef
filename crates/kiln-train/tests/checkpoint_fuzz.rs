//! Mutation fuzzing of training checkpoint directories: flipped, truncated and inserted bytes
//! in both files and rewritten values in the `kiln.trainer` JSON must make
//! `checkpoint::load` + `Trainer::resume_from` return an error (or load a still-valid
//! checkpoint), never panic.

use kiln_core::{manual_seed, DType, Tensor};
use kiln_nn::optim::{Adam, Optimizer};
use kiln_nn::{Linear, Module, ModuleBase, Sequential, StateDict};
use kiln_train::checkpoint::{self, Snapshot};
use kiln_train::{History, Logs, Trainer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

const INPUTS: usize = 3000;

/// xorshift64*: a seeded generator, so a failure names an input that can be replayed (up to
/// the order of the safetensors header's metadata keys, which `kiln_nn::checkpoint::to_bytes`
/// writes in `HashMap` order, different in each process).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn model() -> Sequential {
    Sequential::new().append(Linear::new(4, 3))
}

/// A valid checkpoint of 2 epochs (Adam after one step) written into `dir`.
fn valid_checkpoint(dir: &Path) {
    manual_seed(1);
    let m = model();
    let mut opt = Adam::new(m.parameters(), 1e-2);
    let x = Tensor::rand([2, 4], DType::F32);
    m.forward(&x).sum_all().backward();
    opt.step();
    let logs: Logs = [("loss".to_string(), 0.5), ("lr".to_string(), 1e-2)].into();
    let snap = Snapshot {
        epochs_done: 2,
        global_step: 1,
        rng: (1, 64),
        callbacks: [(
            "model_checkpoint".to_string(),
            json!({"best": 0.5, "best_epoch": 2}),
        )]
        .into_iter()
        .collect(),
        callback_tensors: StateDict::new(),
        history: History {
            epochs: vec![logs.clone(), logs],
        },
    };
    checkpoint::save(dir, &m, &opt, &snap, &HashMap::new()).unwrap();
}

/// A JSON value that breaks expectations in some way.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => json!(-1),
        1 => json!(1e300),
        2 => json!("nan"),
        3 => json!(u64::MAX),
        4 => json!(null),
        5 => json!("x"),
        6 => json!([2.0, 0.999]),
        7 => json!({}),
        8 => json!(-0.5),
        _ => json!(1_000_000_000_000u64),
    }
}

/// Replaces one randomly chosen value anywhere in `v`.
fn mutate_json(v: &mut Value, rng: &mut Rng) {
    let children = match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    if children == 0 || rng.below(4) == 0 {
        *v = odd_value(rng);
        return;
    }
    let i = rng.below(children);
    match v {
        Value::Object(m) => {
            let key = m.keys().nth(i).unwrap().clone();
            if rng.below(8) == 0 {
                m.remove(&key);
            } else {
                mutate_json(m.get_mut(&key).unwrap(), rng);
            }
        }
        Value::Array(a) => mutate_json(&mut a[i], rng),
        _ => unreachable!(),
    }
}

/// Writes a fresh file: ext4 flushes a file truncated and rewritten in place on close (like
/// an fsync), which made thousands of rewrites take most of the test's time.
fn put(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap();
}

enum Mutation {
    Bytes,
    Truncate,
    Json,
}

#[test]
fn mutated_checkpoints_are_errors_never_panics() {
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good");
    valid_checkpoint(&good);
    let files = ["model.safetensors", "trainer.safetensors"];
    let originals: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(good.join(f)).unwrap())
        .collect();
    let (trainer_tensors, trainer_meta) =
        kiln_nn::checkpoint::load_with_metadata(good.join("trainer.safetensors")).unwrap();
    let trainer_json: Value = serde_json::from_str(&trainer_meta["kiln.trainer"]).unwrap();

    let dir = root.path().join("mutant");
    std::fs::create_dir(&dir).unwrap();
    let mut rng = Rng(0x5eed_2020);
    let (mut errors, mut loaded, mut truncations) = (0, 0, 0);
    let started = std::time::Instant::now();
    for input in 0..INPUTS {
        let which = rng.below(2);
        let mutation = match rng.below(4) {
            0 => Mutation::Truncate,
            1 => Mutation::Json,
            _ => Mutation::Bytes,
        };
        for (f, bytes) in files.iter().zip(&originals) {
            put(&dir.join(f), bytes);
        }
        match mutation {
            Mutation::Truncate => {
                truncations += 1;
                let mut bytes = originals[which].clone();
                bytes.truncate(rng.below(bytes.len()));
                put(&dir.join(files[which]), &bytes);
            }
            Mutation::Bytes => {
                let mut bytes = originals[which].clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len());
                    match rng.below(3) {
                        0 => bytes[at] ^= 1 << rng.below(8),
                        1 => bytes[at] = rng.next() as u8,
                        _ => bytes.insert(at, rng.next() as u8),
                    }
                }
                put(&dir.join(files[which]), &bytes);
            }
            Mutation::Json => {
                let mut v = trainer_json.clone();
                for _ in 0..1 + rng.below(3) {
                    mutate_json(&mut v, &mut rng);
                }
                let meta: HashMap<String, String> =
                    [("kiln.trainer".to_string(), v.to_string())].into();
                // `put`, not write_atomic: thousands of fsyncs would take most of the time.
                let bytes = kiln_nn::checkpoint::to_bytes(&trainer_tensors, &meta);
                put(&dir.join("trainer.safetensors"), &bytes);
            }
        }
        let is_truncation = matches!(mutation, Mutation::Truncate);
        let outcome = std::panic::catch_unwind(|| {
            let m = model();
            let mut opt = Adam::new(m.parameters(), 1e-3);
            Trainer::new().resume_from(&dir, &m, &mut opt).map(|_| ())
        });
        match outcome {
            Err(_) => panic!("input {input}: resume panicked (seed 0x5eed_2020)"),
            Ok(Err(_)) => errors += 1,
            Ok(Ok(())) => {
                assert!(!is_truncation, "input {input}: a truncated file loaded");
                loaded += 1;
            }
        }
    }
    assert!(errors > INPUTS / 2, "{errors} errors of {INPUTS}");
    eprintln!(
        "{INPUTS} mutated checkpoints ({truncations} truncations): {errors} refused, {loaded} \
         still valid, 0 panics, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
