//! Seeded mutation fuzzing of everything Kiln reads from outside: safetensors checkpoints,
//! graph files, trainer checkpoint directories, and the `kiln` command's arguments and data
//! files. Each target starts from valid inputs Kiln itself writes ([`seeds`]), mutates them
//! ([`mutate`]) and feeds them to the reader; a reader must return for every input, accepting
//! it or refusing it with an error. A panic, abort, crash or hang is a finding.
//!
//! Readers added later (ONNX, HTTP bodies) add their target to [`targets`].
//!
//! Layering: a test harness on top of the readers it fuzzes (`kiln-core`, `kiln-nn`,
//! `kiln-graph`, `kiln-train`, and the `kiln` binary); nothing depends on it.
//!
//! Guide: *Errors and bad input* (`docs/src/errors.md`), the behaviour these targets check.

#![deny(missing_docs)]

pub mod mutate;
pub mod report;
pub mod rng;
pub mod seeds;
pub mod st_file;
pub mod targets;
