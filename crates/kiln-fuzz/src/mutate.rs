//! Mutations: raw bytes (bit flips, boundary values, truncation, splices, repeated chunks) and
//! JSON values (numbers replaced by boundary values, keys dropped, subtrees swapped, enum tags
//! renamed), the latter to get past parsers to the checks behind them.

use crate::rng::Rng;
use serde_json::Value;

/// Integers at the edges of every width a reader might compute in.
pub const INTERESTING: &[i128] = &[
    0,
    1,
    2,
    3,
    -1,
    7,
    8,
    255,
    256,
    65535,
    65536,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    (1 << 32) + 1,
    1 << 53,
    (1 << 61) + 1,
    (1 << 62) + 3,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX as i128,
];

/// Mutates `data` in place with one to four byte-level edits.
pub fn bytes(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        if data.is_empty() {
            data.push(rng.next_u64() as u8);
            continue;
        }
        let at = rng.below(data.len());
        match rng.below(7) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'0', b'9', b'-', b'"']),
            2 => data.truncate(at),
            3 => {
                let len = 1 + rng.below(16.min(data.len() - at));
                data.drain(at..at + len);
            }
            4 => {
                let len = 1 + rng.below(16);
                let chunk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, chunk);
            }
            5 => {
                // Overwrite 8 bytes with a little-endian boundary value (lengths, offsets).
                let v = *rng.pick(INTERESTING) as u64;
                for (k, b) in v.to_le_bytes().iter().enumerate() {
                    if let Some(d) = data.get_mut(at + k) {
                        *d = *b;
                    }
                }
            }
            _ => {
                // Repeat a chunk (duplicated keys, longer lists).
                let len = 1 + rng.below(32.min(data.len() - at));
                let chunk = data[at..at + len].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, chunk);
            }
        }
    }
}

/// Every value's position in `v` (paths of object keys / array indices), root first.
fn paths(v: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                prefix.push(PathStep::Key(k.clone()));
                paths(c, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                prefix.push(PathStep::Index(i));
                paths(c, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// One step of a path into a JSON value.
#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at_mut<'a>(v: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            PathStep::Key(k) => cur.get_mut(k.as_str())?,
            PathStep::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

fn boundary_number(rng: &mut Rng) -> Value {
    let v = *rng.pick(INTERESTING);
    if v < 0 {
        Value::from(v as i64)
    } else if rng.one_in(8) {
        serde_json::json!(v as f64 * 1.5)
    } else {
        Value::from(v as u64)
    }
}

/// Mutates a JSON value in place with one to three structural edits. `names` are strings
/// worth swapping in (enum tags such as op names and dtypes).
pub fn json(rng: &mut Rng, v: &mut Value, names: &[&str]) {
    for _ in 0..1 + rng.below(3) {
        let mut all = Vec::new();
        paths(v, &mut Vec::new(), &mut all);
        let path = rng.pick(&all).clone();
        let donor = {
            let p = rng.pick(&all).clone();
            at_mut(v, &p).cloned()
        };
        let Some(target) = at_mut(v, &path) else {
            continue;
        };
        match (rng.below(8), &mut *target) {
            (0 | 1, Value::Number(_)) => *target = boundary_number(rng),
            (0, Value::Array(a)) if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            (1, Value::Array(a)) if !a.is_empty() => {
                let i = rng.below(a.len());
                let dup = a[i].clone();
                a.insert(rng.below(a.len() + 1), dup);
            }
            (2, Value::Object(m)) if !m.is_empty() => {
                let key = m.keys().nth(rng.below(m.len())).cloned().unwrap();
                if rng.one_in(2) {
                    m.remove(&key);
                } else if let Some(name) = names.get(rng.below(names.len().max(1))) {
                    // Rename an enum tag: {"Exp": …} → {"Gather": …}.
                    let val = m.remove(&key).unwrap();
                    m.insert(name.to_string(), val);
                }
            }
            (3, Value::String(s)) if !names.is_empty() => *s = rng.pick(names).to_string(),
            (4, _) => *target = boundary_number(rng),
            (5, _) => {
                if let Some(d) = donor {
                    *target = d;
                }
            }
            (6, Value::Array(a)) => a.push(boundary_number(rng)),
            (_, Value::Array(a)) if a.len() > 1 => {
                let (i, j) = (rng.below(a.len()), rng.below(a.len()));
                a.swap(i, j);
            }
            (_, t) => {
                *t = match rng.below(4) {
                    0 => Value::Null,
                    1 => Value::Bool(true),
                    2 => Value::from(-1),
                    _ => Value::Array(vec![]),
                }
            }
        }
    }
}
