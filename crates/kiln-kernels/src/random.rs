//! Seedable random generators. A generator is a (seed, offset) pair over a counter-based
//! stream: each draw takes the next block of counters, so results are deterministic for a seed
//! whatever the number of threads.

use crate::cpu::random_counters;
use parking_lot::Mutex;

/// A random stream: seed plus the next unused counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generator {
    seed: u64,
    offset: u64,
}

/// The seed the global generator starts with (PyTorch's default seed).
pub const DEFAULT_SEED: u64 = 67_280_421_310_721;

static GLOBAL: Mutex<Generator> = Mutex::new(Generator {
    seed: DEFAULT_SEED,
    offset: 0,
});

impl Generator {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Generator {
        Generator { seed, offset: 0 }
    }

    /// Resets the stream to the start of `seed`.
    pub fn manual_seed(&mut self, seed: u64) {
        *self = Generator::new(seed);
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next unused counter.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Restores a saved (seed, offset) state.
    pub fn set_state(&mut self, seed: u64, offset: u64) {
        self.seed = seed;
        self.offset = offset;
    }

    /// Reserves the counters for `n` samples, returning (seed, first counter).
    pub fn reserve(&mut self, n: usize) -> (u64, u64) {
        let start = self.offset;
        self.offset += random_counters(n);
        (self.seed, start)
    }
}

/// Seeds the global generator (like `torch.manual_seed`).
pub fn manual_seed(seed: u64) {
    GLOBAL.lock().manual_seed(seed);
}

/// Runs `f` with the global generator locked.
pub fn with_global<R>(f: impl FnOnce(&mut Generator) -> R) -> R {
    f(&mut GLOBAL.lock())
}
